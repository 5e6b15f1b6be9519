"""Compliance checks on a production run: the waterfall tiers, species, scan-back, yield.

Pure: a :class:`~rules.model.RunContext` (and what the gateway has counted) in, findings out.
:func:`check_run` returns an active **or inactive** finding for every subject it can judge,
so the alert book can clear an alert once the run is corrected (e.g. the ERP fixes a tier).

Rules (ids, severities):

* ``compliance_gg_in_premium`` CRITICAL: a GG-certified batch feeds a Premium product
  (GG material must not appear in Premium-labelled output).
* ``compliance_tails_in_premium`` CRITICAL: the run or the product description mentions
  tails (whole word ``tail``/``tails``) and the product is Premium.
* ``compliance_species_mismatch`` CRITICAL: a batch's declared species, or a product's
  species, differs from the run's species (case and spacing ignored).
* ``compliance_scanback_orphan`` MAJOR: OCM start/end labels scanned back with no parent
  batch mapping.
* ``compliance_yield`` WARNING: packed kg / raw material kg below ``yield_warn_pct``.
* ``compliance_tier_cascade`` CRITICAL: material cascading **up** the waterfall (a product of
  a higher tier than a batch's certified tier), other than GG into Premium, which is
  ``compliance_gg_in_premium`` already (one cause, one alert).

Subjects: ``{line}/{run}`` for run-wide checks, ``{line}/{run}/{plu}`` for product checks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Protocol

from rules import ids
from rules.model import Finding, Product, RunContext, Severity, Tier

__all__ = [
    "GG_IN_PREMIUM",
    "SCANBACK_ORPHAN",
    "SPECIES_MISMATCH",
    "TAILS_IN_PREMIUM",
    "TIER_CASCADE",
    "YIELD",
    "check_run",
    "mentions_tails",
]

GG_IN_PREMIUM = ids.COMPLIANCE_GG_IN_PREMIUM
TAILS_IN_PREMIUM = ids.COMPLIANCE_TAILS_IN_PREMIUM
SPECIES_MISMATCH = ids.COMPLIANCE_SPECIES_MISMATCH
SCANBACK_ORPHAN = ids.COMPLIANCE_SCANBACK_ORPHAN
YIELD = ids.COMPLIANCE_YIELD
TIER_CASCADE = ids.COMPLIANCE_TIER_CASCADE

_TIER_RANK = {Tier.PREMIUM: 1, Tier.GG: 2, Tier.EXPORT: 3}
"""Position in the waterfall: material may move to a larger rank, never a smaller one."""
_TAILS = re.compile(r"\btails?\b", re.IGNORECASE)
_MAX_LISTED = 20
"""Scan-back labels listed in a finding's detail (the count is always complete)."""


def mentions_tails(text: str) -> bool:
    """Whether a description mentions tails as a whole word (``tail``, ``Tails``)."""
    return _TAILS.search(text) is not None


def check_run(
    run: RunContext,
    ts_us: int,
    *,
    yield_warn_pct: Decimal = Decimal("90"),
    packed_kg: Decimal | None = None,
    scans_without_parent: Sequence[str] = (),
) -> list[Finding]:
    """All compliance findings for one run at ``ts_us``, active and inactive.

    Args:
        run: the run as the rules see it.
        ts_us: the time of the check.
        yield_warn_pct: yield (%) below which ``compliance_yield`` is raised.
        packed_kg: net kg packed on the run. Pass it when the yield is meaningful (the run
            has ended, or is being reconciled): mid-run the yield climbs from 0 %. With
            ``packed_kg`` or ``run.raw_material_kg`` unknown (or raw kg not positive) no
            yield finding is made, so an alert from an earlier check stands.
        scans_without_parent: OCM label codes scanned back on this run that map to no
            parent batch code.
    """
    run_subject = f"{run.line}/{run.run_number}"

    def finding(
        rule: str,
        subject: str,
        active: bool,
        severity: Severity,
        message: str,
        **detail: object,
    ) -> Finding:
        return Finding(
            rule=rule,
            subject=subject,
            active=active,
            severity=severity,
            message=message,
            ts_us=ts_us,
            line=run.line,
            detail={"run_number": run.run_number, **detail},
        )

    batches = _batches(run)
    findings: list[Finding] = []
    for product in run.products:
        subject = f"{run_subject}/{product.plu}"
        findings.append(_gg_in_premium(run, product, batches, subject, finding))
        findings.append(_tails_in_premium(run, product, subject, finding))
        findings.append(_tier_cascade(run, product, batches, subject, finding))
    findings.extend(_species(run, run_subject, finding))
    findings.append(_scanback(scans_without_parent, run_subject, finding))
    yield_finding = _yield(run, packed_kg, yield_warn_pct, run_subject, finding)
    if yield_finding is not None:
        findings.append(yield_finding)
    return findings


class _Make(Protocol):
    """The finding factory :func:`check_run` hands its helpers."""

    def __call__(
        self,
        rule: str,
        subject: str,
        active: bool,
        severity: Severity,
        message: str,
        **detail: object,
    ) -> Finding: ...


def _batches(run: RunContext) -> list[str]:
    """Batch codes on the run, declared first, then any only known by tier or species."""
    seen = dict.fromkeys(run.batch_codes)
    seen.update(dict.fromkeys(run.batch_tiers))
    seen.update(dict.fromkeys(run.batch_species))
    return list(seen)


def _gg_in_premium(
    run: RunContext, product: Product, batches: list[str], subject: str, make: _Make
) -> Finding:
    gg = [b for b in batches if run.batch_tiers.get(b) == Tier.GG]
    active = product.tier == Tier.PREMIUM and bool(gg)
    message = (
        f"GG-certified batch {', '.join(gg)} in Premium product {product.plu} "
        f"(run {run.run_number})"
        if active
        else f"no GG material in Premium product {product.plu}"
    )
    return make(
        GG_IN_PREMIUM,
        subject,
        active,
        Severity.CRITICAL,
        message,
        plu=product.plu,
        product_tier=str(product.tier),
        gg_batches=gg if active else [],
    )


def _tails_in_premium(run: RunContext, product: Product, subject: str, make: _Make) -> Finding:
    sources = [
        name
        for name, text in (("run", run.description), ("product", product.description))
        if mentions_tails(text)
    ]
    active = product.tier == Tier.PREMIUM and bool(sources)
    message = (
        f"tails in Premium product {product.plu} (run {run.run_number}; "
        f"{' and '.join(sources)} description)"
        if active
        else f"no tails in Premium product {product.plu}"
    )
    return make(
        TAILS_IN_PREMIUM,
        subject,
        active,
        Severity.CRITICAL,
        message,
        plu=product.plu,
        product_tier=str(product.tier),
        mentioned_in=sources if active else [],
    )


def _tier_cascade(
    run: RunContext, product: Product, batches: list[str], subject: str, make: _Make
) -> Finding:
    up = [
        b
        for b in batches
        if (tier := run.batch_tiers.get(b)) is not None
        and _TIER_RANK[product.tier] < _TIER_RANK[tier]
        and not (tier == Tier.GG and product.tier == Tier.PREMIUM)
    ]
    active = bool(up)
    message = (
        f"material cascading up: batch {', '.join(up)} "
        f"({', '.join(sorted({str(run.batch_tiers[b]) for b in up}))}) "
        f"in {product.tier} product {product.plu} (run {run.run_number})"
        if active
        else f"no material cascading up into {product.plu}"
    )
    return make(
        TIER_CASCADE,
        subject,
        active,
        Severity.CRITICAL,
        message,
        plu=product.plu,
        product_tier=str(product.tier),
        batch_tiers={b: str(run.batch_tiers[b]) for b in up},
    )


def _norm(species: str | None) -> str | None:
    if species is None:
        return None
    text = " ".join(species.split()).casefold()
    return text or None


def _species(run: RunContext, run_subject: str, make: _Make) -> list[Finding]:
    """Batches against the run (one run-wide finding) and each product against the run.

    Without a run species, the batches' declared species is the reference when they agree;
    batches that disagree among themselves are then the mismatch.
    """
    declared = {b: s for b, s in run.batch_species.items() if _norm(s) is not None}
    reference = _norm(run.species)
    batch_species = {_norm(s) for s in declared.values()}
    if reference is None and len(batch_species) == 1:
        reference = next(iter(batch_species))
    if reference is not None:
        odd = {b: s for b, s in declared.items() if _norm(s) != reference}
    else:
        odd = dict(declared) if len(batch_species) > 1 else {}
    findings = [
        make(
            SPECIES_MISMATCH,
            run_subject,
            bool(odd),
            Severity.CRITICAL,
            (
                f"batch species differ from run {run.run_number}"
                f" ({run.species or 'species not declared'}): "
                + ", ".join(f"{b} {s}" for b, s in odd.items())
                if odd
                else f"batch species agree with run {run.run_number}"
            ),
            run_species=run.species,
            batch_species=odd,
        )
    ]
    for product in run.products:
        species = _norm(product.species)
        active = reference is not None and species is not None and species != reference
        findings.append(
            make(
                SPECIES_MISMATCH,
                f"{run_subject}/{product.plu}",
                active,
                Severity.CRITICAL,
                (
                    f"product {product.plu} is {product.species} but run "
                    f"{run.run_number} is {run.species or reference}"
                    if active
                    else f"product {product.plu} species agrees with run {run.run_number}"
                ),
                plu=product.plu,
                product_species=product.species,
                run_species=run.species or reference,
            )
        )
    return findings


def _scanback(labels: Sequence[str], run_subject: str, make: _Make) -> Finding:
    orphans = sorted(set(labels))
    active = bool(orphans)
    message = (
        f"{len(orphans)} scan-back label(s) with no parent batch mapping"
        if active
        else "every scan-back label maps to a parent batch"
    )
    return make(
        SCANBACK_ORPHAN,
        run_subject,
        active,
        Severity.MAJOR,
        message,
        count=len(orphans),
        labels=orphans[:_MAX_LISTED],
    )


def _yield(
    run: RunContext,
    packed_kg: Decimal | None,
    warn_pct: Decimal,
    run_subject: str,
    make: _Make,
) -> Finding | None:
    raw = run.raw_material_kg
    if packed_kg is None or raw is None or raw <= 0:
        return None
    # Quantised so the detail (and so the alert) only changes when the figure does.
    exact = packed_kg / raw * 100
    pct = exact.quantize(Decimal("0.1"), rounding=ROUND_FLOOR)
    active = exact < warn_pct
    message = (
        f"yield {pct} % below {warn_pct} % on run {run.run_number}"
        if active
        else f"yield {pct} % on run {run.run_number}"
    )
    return make(
        YIELD,
        run_subject,
        active,
        Severity.WARNING,
        message,
        yield_pct=str(pct),
        warn_pct=str(warn_pct),
        packed_kg=str(packed_kg.quantize(Decimal("0.001"))),
        raw_material_kg=str(raw),
    )
