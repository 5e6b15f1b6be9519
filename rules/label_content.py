"""What a label says, against its run and its pack: the batch (AI 10) and the net weight
(AI 310n). Why these matter for traceability is set out in :mod:`rules.labels`."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from gateway.core.records import LabelScan
from rules.label_subjects import (
    RULE_BATCH,
    RULE_WEIGHT,
    batch_subject,
    label_name,
    product_by_gtin,
    weight_subject,
)
from rules.model import Finding, RunContext, Severity

__all__ = ["GS1_CSET82", "check_label_content"]

GS1_CSET82: Final = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
"""The characters an AI 10 batch may contain (GS1 General Specifications, CSET 82)."""

_BATCH_MAX_LEN: Final = 20
"""AI 10 is X..20 (GS1 Barcode Syntax Dictionary; docs/reference/domain-rules.md §4.1)."""


def _batch_problem(batch: str | None, run: RunContext) -> str | None:
    if batch is None or not batch.strip():
        return "absent"
    if len(batch) > _BATCH_MAX_LEN or not set(batch) <= GS1_CSET82:
        return "invalid"
    if batch not in run.batch_codes:
        return "not_in_run"
    return None


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def check_label_content(
    scan: LabelScan, run: RunContext, pack_net_g: float | None, tolerance_g: Decimal
) -> list[Finding]:
    """What a label says against its run and its pack; only failed checks are returned.

    * ``label_batch`` (CRITICAL): the batch (AI 10) is absent, not a valid AI 10 value
      (1-20 characters of GS1 CSET 82) or not one of the run's batch codes — the pack
      cannot be traced to its raw material. Codes are compared exactly. Subject
      :func:`batch_subject` (per batch printed), an event: each label one occurrence.
    * ``label_weight`` (WARNING): the label's net weight (AI 310n) differs by more than
      ``tolerance_g`` from the checkweigher's net weight of the same pack (``pack_net_g``).
      For a fixed-weight product of the run (found by GTIN, ``catch_weight=False`` with a
      nominal quantity) the label must declare Qn instead: its pack weighs Qn plus giveaway,
      which the average-quantity rules judge (docs/reference/domain-rules.md §1). Skipped
      when the label has no weight or there is nothing to compare it with. Subject
      :func:`weight_subject` (per product), an event: each label one occurrence, the latest
      in the detail.

    Messages name the label (its serial, else its raw read).
    """
    if tolerance_g < 0:
        raise ValueError(f"tolerance_g must be >= 0, got {tolerance_g}")
    name = label_name(scan)
    findings: list[Finding] = []
    base_detail: dict[str, object] = {
        "device": scan.device,
        "run_number": run.run_number,
        "serial": scan.serial,
        "gtin": scan.gtin,
        "scan_us": scan.ts_us,
    }
    problem = _batch_problem(scan.batch, run)
    if problem is not None:
        why = {
            "absent": "carries no batch code",
            "invalid": f"carries an invalid batch code {scan.batch!r}",
            "not_in_run": (
                f"batch {scan.batch!r} is not a batch of run {run.run_number} "
                f"({', '.join(run.batch_codes) or 'none'})"
            ),
        }[problem]
        findings.append(
            Finding(
                rule=RULE_BATCH,
                subject=batch_subject(scan, run),
                active=True,
                severity=Severity.CRITICAL,
                message=f"label {name} {why}: the pack cannot be traced",
                ts_us=scan.ts_us,
                line=scan.line,
                event=True,
                detail={
                    **base_detail,
                    "reason": problem,
                    "batch": scan.batch,
                    "run_batch_codes": list(run.batch_codes),
                },
            )
        )
    if scan.net_weight_g is not None:
        label_g = _decimal(scan.net_weight_g)
        product = product_by_gtin(scan.gtin, run)
        reference: tuple[str, Decimal] | None = None
        if product is not None and not product.catch_weight and product.nominal_g is not None:
            # A fixed-weight (℮) label declares Qn; the pack's own weight is above it by the
            # giveaway and is judged by the average-quantity rules, not against the label.
            reference = ("nominal", product.nominal_g)
        elif pack_net_g is not None:
            reference = ("checkweigher", _decimal(pack_net_g))
        if reference is not None:
            source, reference_g = reference
            difference = label_g - reference_g
            if abs(difference) > tolerance_g:
                said = (
                    f"the checkweigher weighed {reference_g} g"
                    if source == "checkweigher"
                    else f"the product's nominal quantity is {reference_g} g"
                )
                findings.append(
                    Finding(
                        rule=RULE_WEIGHT,
                        subject=weight_subject(scan, run),
                        active=True,
                        severity=Severity.WARNING,
                        message=(
                            f"label {name} says {label_g} g, {said} "
                            f"({difference:+} g, tolerance ±{tolerance_g} g)"
                        ),
                        ts_us=scan.ts_us,
                        line=scan.line,
                        event=True,
                        detail={
                            **base_detail,
                            "compared_with": source,
                            "label_g": float(label_g),
                            "reference_g": float(reference_g),
                            "pack_g": pack_net_g,
                            "difference_g": float(difference),
                            "tolerance_g": float(tolerance_g),
                        },
                    )
                )
    return findings
