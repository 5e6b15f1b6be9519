"""The per-run analytics row, taken from the run report (gateway/report.py) so that every
figure in it is the one the gateway's own ``lineside report`` shows."""

from __future__ import annotations

from typing import Any

from central.db import to_us
from central.rows import ProductSummary, RunSummary
from gateway.report import RunReport
from gateway.report_output import RunLosses
from rules import ids


def product_summary(line: Any) -> ProductSummary:
    return ProductSummary(
        plu=line.plu,
        description=line.description,
        nominal_g=line.nominal_g,
        catch_weight=line.catch_weight,
        packs=line.packs,
        kg=line.kg,
        mean_g=line.mean_g,
        sd_g=line.sd_g,
        giveaway_g=line.giveaway_g,
        giveaway_pct=line.giveaway_pct,
        giveaway_kg=line.giveaway_kg,
        below_t1=line.below_t1,
        below_t2=line.below_t2,
        rejected=line.rejected,
    )


def _raised(alerts: tuple[dict[str, Any], ...]) -> int:
    return sum(a["state"] == "raised" for a in alerts)


def breach_seconds(alerts: tuple[dict[str, Any], ...], end_us: int | None) -> float:
    """Summed raise-to-clear time of the breaches (per rule and subject, in commit order);
    one still open counts to ``end_us`` (the run's end, else its last transition)."""
    opened: dict[tuple[str, str], int] = {}
    total = 0
    last = max((int(a["ts_us"]) for a in alerts), default=0)
    for a in alerts:
        key = (a["rule"], a["subject"])
        if a["state"] == "raised" and key not in opened:
            opened[key] = int(a["ts_us"])
        elif a["state"] == "cleared" and key in opened:
            total += int(a["ts_us"]) - opened.pop(key)
    close = end_us if end_us is not None else last
    total += sum(max(close - since, 0) for since in opened.values())
    return total / 1_000_000


def run_summary(report: RunReport, losses: RunLosses, *, gateway: str, site: str) -> RunSummary:
    """The summary row of one run from its report and its losses."""
    run = report.run
    products = tuple(product_summary(p) for p in report.products)
    counted = [p for p in products if p.packs]
    packs = sum(p.packs for p in counted)
    grams = sum(p.kg for p in counted) * 1000
    fixed = [p for p in counted if not p.catch_weight and p.nominal_g is not None]
    fixed_packs = sum(p.packs for p in fixed)
    given_kg = sum(p.giveaway_kg or 0.0 for p in fixed)
    nominal_g = sum(float(p.nominal_g or 0) * p.packs for p in fixed)
    failed = sum(b["verdict"] == "fail" for b in report.emark_batches)
    batches = len(report.emark_batches)
    return RunSummary(
        gateway=gateway,
        site=site,
        line=run.line,
        run_number=run.run_number,
        status=str(run.status),
        packs=report.packs,
        kg=report.kg,
        uncertain_packs=report.uncertain_packs,
        packs_without_product=report.packs_without_product,
        products=products,
        mean_g=grams / packs if packs else None,
        sd_g=counted[0].sd_g if len(counted) == 1 else None,
        giveaway_g=given_kg * 1000 / fixed_packs if fixed_packs else None,
        giveaway_pct=given_kg * 1000 / nominal_g * 100 if nominal_g else None,
        giveaway_kg=given_kg if fixed else None,
        emark_batches=batches,
        emark_failed=failed,
        emark_verdict=None if not batches else ("fail" if failed else "pass"),
        below_t2=sum(p.below_t2 for p in products),
        yield_pct=report.yield_pct,
        missed_packs=losses.missed_packs,
        label_gaps=_raised(report.label_gaps),
        use_by_errors=_raised(
            tuple(a for a in report.alerts if a["rule"] == ids.SHELF_LIFE_USE_BY)
        ),
        haccp_breaches=_raised(report.temperature_breaches),
        haccp_breach_s=breach_seconds(
            report.temperature_breaches, to_us(run.actual_end) if run.actual_end else None
        ),
        use_by=report.use_by,
    )
