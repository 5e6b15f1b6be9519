"""The compliance checks of a run, as the seed pipeline made them (docs/warehouse-analytics.md,
"Compliance"): GG batch in Premium, tails in Premium, species mismatch, OCM scan-back
without a parent batch, yield below 90 %, temperature breach, giveaway over 3 %, label gaps.

The run's own checks are the gateway's pure rules (rules/compliance.py ``check_run`` over
the run's context, built by the gateway's own ``run_context``); the scan-back check needs
the gateway's label state, so it is read from the alerts it raised; the rest are judged on
the run report (gateway/report.py), so the figures are the report's.
"""

from __future__ import annotations

from decimal import Decimal

from central.db import Db, to_us
from central.rows import ComplianceCheck
from gateway.config import RulesSection
from gateway.report import RunReport
from gateway.rules_engine.run_context import run_context
from rules import ids
from rules.compliance import check_run
from sync.ingest.migrations.analytics_ddl import GIVEAWAY_MAX_PCT, YIELD_MIN_PCT

CHECK_NAMES = {
    ids.COMPLIANCE_GG_IN_PREMIUM: "gg_in_premium",
    ids.COMPLIANCE_TAILS_IN_PREMIUM: "tails_in_premium",
    ids.COMPLIANCE_SPECIES_MISMATCH: "species_mismatch",
    ids.COMPLIANCE_TIER_CASCADE: "tier_cascade",
    ids.COMPLIANCE_YIELD: "yield",
}


def compliance(db: Db, gateway: str, report: RunReport) -> list[ComplianceCheck]:
    """Every check of the run; ``db`` and ``gateway`` name where it was read (unused by the
    pure checks, kept for the reader's one signature)."""
    del db, gateway
    run = report.run
    subject = f"{run.line}/{run.run_number}"
    ended = run.actual_end is not None
    at = to_us(run.actual_end) if run.actual_end else 0
    findings = check_run(
        run_context(run, RulesSection()),
        at,
        yield_warn_pct=Decimal(YIELD_MIN_PCT),
        packed_kg=Decimal(str(report.kg)) if ended else None,
    )
    checks = [
        ComplianceCheck(
            check=CHECK_NAMES.get(f.rule, f.rule),
            subject=f.subject,
            passed=not f.active,
            severity=str(f.severity),
            message=f.message,
        )
        for f in findings
    ]
    if not any(f.rule == ids.COMPLIANCE_YIELD for f in findings):
        checks.append(
            ComplianceCheck("yield", subject, True, "warning", "not judged: run open or no raw kg")
        )
    orphans = [
        a
        for a in report.alerts
        if a["rule"] == ids.COMPLIANCE_SCANBACK_ORPHAN and a["state"] == "raised"
    ]
    checks.append(
        ComplianceCheck(
            "scanback_orphan",
            subject,
            not orphans,
            "major",
            orphans[-1]["message"] if orphans else "every scanned-back label has a parent batch",
        )
    )
    checks += _report_checks(report, subject)
    return checks


def _report_checks(report: RunReport, subject: str) -> list[ComplianceCheck]:
    breaches = sum(a["state"] == "raised" for a in report.temperature_breaches)
    gaps = sum(a["state"] == "raised" for a in report.label_gaps)
    checks = [
        ComplianceCheck(
            "temperature_breach",
            subject,
            breaches == 0,
            "critical",
            f"{breaches} temperature breach(es) during the run",
        ),
        ComplianceCheck(
            "label_gaps", subject, gaps == 0, "major", f"{gaps} label gap(s) during the run"
        ),
    ]
    for product in report.products:
        if product.catch_weight or product.giveaway_pct is None:
            continue
        share = product.giveaway_pct
        checks.append(
            ComplianceCheck(
                "giveaway",
                f"{subject}/{product.plu}",
                share <= GIVEAWAY_MAX_PCT,
                "warning",
                f"giveaway {share:.2f} % of Qn (limit {GIVEAWAY_MAX_PCT} %)",
            )
        )
    return checks
