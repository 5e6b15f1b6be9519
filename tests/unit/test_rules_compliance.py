"""Compliance checks on a run: each rule positive and negative, and how they feed the book."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.alerts import AlertBook
from rules.compliance import (
    GG_IN_PREMIUM,
    SCANBACK_ORPHAN,
    SPECIES_MISMATCH,
    TAILS_IN_PREMIUM,
    TIER_CASCADE,
    YIELD,
    check_run,
    mentions_tails,
)
from rules.model import AlertEvent, Finding, Product, RunContext, Severity, Tier

PREMIUM = Product("10120", Decimal(120), Tier.PREMIUM, species="salmon", description="")
GG = Product("20280", Decimal(280), Tier.GG, species="salmon")
EXPORT = Product("30999", None, Tier.EXPORT, catch_weight=True, species="salmon")


def run(**changes: object) -> RunContext:
    base = RunContext(
        run_number="R42",
        line="L1",
        batch_codes=("B1",),
        species="Salmon",
        products=(PREMIUM, GG, EXPORT),
        pack_date=date(2025, 3, 1),
        raw_material_kg=Decimal(1000),
        batch_species={"B1": "salmon"},
        batch_tiers={"B1": Tier.PREMIUM},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def by(findings: list[Finding], rule: str, subject: str) -> Finding:
    (found,) = [x for x in findings if x.rule == rule and x.subject == subject]
    return found


def active(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(x.rule, x.subject) for x in findings if x.active}


def test_a_clean_run_has_only_inactive_findings() -> None:
    findings = check_run(run(), 5, packed_kg=Decimal(950))
    assert active(findings) == set()
    assert all(x.ts_us == 5 and x.line == "L1" for x in findings)
    assert all(x.detail["run_number"] == "R42" for x in findings)
    rules = {x.rule for x in findings}
    assert rules == {
        GG_IN_PREMIUM,
        TAILS_IN_PREMIUM,
        SPECIES_MISMATCH,
        SCANBACK_ORPHAN,
        YIELD,
        TIER_CASCADE,
    }
    # Product checks per product, run checks per run.
    assert by(findings, GG_IN_PREMIUM, "L1/R42/10120").severity is Severity.CRITICAL
    assert by(findings, SCANBACK_ORPHAN, "L1/R42").severity is Severity.MAJOR
    assert by(findings, YIELD, "L1/R42").severity is Severity.WARNING


# -- GG in Premium -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tiers", "expected"),
    [
        ({"B1": Tier.GG}, {(GG_IN_PREMIUM, "L1/R42/10120")}),
        ({"B1": Tier.PREMIUM, "B2": Tier.GG}, {(GG_IN_PREMIUM, "L1/R42/10120")}),
        ({"B1": Tier.PREMIUM}, set()),
        ({}, set()),
    ],
)
def test_gg_in_premium(tiers: dict[str, Tier], expected: set[tuple[str, str]]) -> None:
    findings = check_run(run(batch_codes=("B1", "B2"), batch_tiers=tiers), 1)
    assert active(findings) == expected
    if expected:
        hit = by(findings, GG_IN_PREMIUM, "L1/R42/10120")
        assert hit.detail["gg_batches"] == [b for b, t in tiers.items() if t is Tier.GG]
        assert "GG-certified batch" in hit.message


def test_gg_batch_in_gg_and_export_products_is_fine() -> None:
    findings = check_run(run(products=(GG, EXPORT), batch_tiers={"B1": Tier.GG}), 1)
    assert active(findings) == set()


# -- tails in Premium --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Salmon tails 1kg", True),
        ("TAIL pieces", True),
        ("tail-on portions", True),
        ("salmon (tails)", True),
        ("cocktail mix", False),
        ("tailored portions", False),
        ("retail pack", False),
        ("", False),
    ],
)
def test_mentions_tails(text: str, expected: bool) -> None:
    assert mentions_tails(text) is expected


@pytest.mark.parametrize(
    ("run_desc", "product_desc", "expected"),
    [
        ("Salmon tails", "", {"run"}),
        ("", "Premium salmon tail portions", {"product"}),
        ("Tails", "tail", {"run", "product"}),
        ("Salmon portions", "Premium 120g", None),
        ("retail cocktail", "", None),
    ],
)
def test_tails_in_premium(run_desc: str, product_desc: str, expected: set[str] | None) -> None:
    premium = replace(PREMIUM, description=product_desc)
    findings = check_run(run(description=run_desc, products=(premium, GG)), 1)
    hit = by(findings, TAILS_IN_PREMIUM, "L1/R42/10120")
    assert hit.active is (expected is not None)
    if expected:
        assert set(hit.detail["mentioned_in"]) == expected  # type: ignore[call-overload]
    # Tails in a GG product are allowed.
    assert not by(findings, TAILS_IN_PREMIUM, "L1/R42/20280").active


# -- species -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_species", "batch_species", "product_species", "expected"),
    [
        ("Salmon", {"B1": "salmon"}, "SALMON", set()),
        ("Salmon", {"B1": " Salmon "}, None, set()),
        ("Salmon", {"B1": "trout"}, "salmon", {"L1/R42"}),
        ("Salmon", {"B1": "salmon", "B2": "cod"}, "salmon", {"L1/R42"}),
        ("Salmon", {"B1": "salmon"}, "trout", {"L1/R42/10120"}),
        ("Salmon", {}, "trout", {"L1/R42/10120"}),
        (None, {"B1": "cod"}, "salmon", {"L1/R42/10120"}),
        (None, {"B1": "cod", "B2": "hake"}, None, {"L1/R42"}),
        (None, {}, "salmon", set()),
    ],
)
def test_species_mismatch(
    run_species: str | None,
    batch_species: dict[str, str],
    product_species: str | None,
    expected: set[str],
) -> None:
    product = replace(PREMIUM, species=product_species)
    findings = check_run(
        run(species=run_species, batch_species=batch_species, products=(product,)), 1
    )
    assert {s for r, s in active(findings) if r == SPECIES_MISMATCH} == expected
    assert all(x.severity is Severity.CRITICAL for x in findings if x.rule == SPECIES_MISMATCH)


def test_species_mismatch_names_the_batch() -> None:
    findings = check_run(run(batch_species={"B1": "salmon", "B7": "Cod"}), 1)
    hit = by(findings, SPECIES_MISMATCH, "L1/R42")
    assert hit.detail["batch_species"] == {"B7": "Cod"}
    assert "B7 Cod" in hit.message


# -- scan-back ---------------------------------------------------------------------------


def test_scanback_orphans() -> None:
    findings = check_run(run(), 1, scans_without_parent=["OCM-2", "OCM-1", "OCM-2"])
    hit = by(findings, SCANBACK_ORPHAN, "L1/R42")
    assert hit.active
    assert hit.severity is Severity.MAJOR
    assert hit.detail["count"] == 2
    assert hit.detail["labels"] == ["OCM-1", "OCM-2"]
    assert not by(check_run(run(), 2), SCANBACK_ORPHAN, "L1/R42").active


# -- yield -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packed", "raw", "warn", "expected"),
    [
        (Decimal(899), Decimal(1000), Decimal(90), True),
        (Decimal("899.99"), Decimal(1000), Decimal(90), True),
        (Decimal(900), Decimal(1000), Decimal(90), False),
        (Decimal(950), Decimal(1000), Decimal(96), True),
        (None, Decimal(1000), Decimal(90), None),
        (Decimal(500), None, Decimal(90), None),
        (Decimal(500), Decimal(0), Decimal(90), None),
    ],
)
def test_yield(
    packed: Decimal | None, raw: Decimal | None, warn: Decimal, expected: bool | None
) -> None:
    findings = check_run(run(raw_material_kg=raw), 1, packed_kg=packed, yield_warn_pct=warn)
    hits = [x for x in findings if x.rule == YIELD]
    if expected is None:
        assert hits == []  # unknown: say nothing, so an earlier alert stands
        return
    (hit,) = hits
    assert hit.active is expected
    assert hit.subject == "L1/R42"
    assert hit.detail["raw_material_kg"] == str(raw)
    assert Decimal(str(hit.detail["yield_pct"])) <= Decimal(str(packed)) / Decimal(str(raw)) * 100


def test_yield_detail_numbers() -> None:
    (hit,) = [x for x in check_run(run(), 1, packed_kg=Decimal("812.3456")) if x.rule == YIELD]
    assert hit.detail["yield_pct"] == "81.2"
    assert hit.detail["warn_pct"] == "90"
    assert hit.detail["packed_kg"] == "812.346"
    assert "81.2 %" in hit.message


# -- tier cascade ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch_tier", "expected"),
    [
        (Tier.EXPORT, {"L1/R42/10120", "L1/R42/20280"}),
        (Tier.GG, set()),  # GG into Premium is compliance_gg_in_premium: one cause, one alert
        (Tier.PREMIUM, set()),
    ],
)
def test_tier_cascade(batch_tier: Tier, expected: set[str]) -> None:
    findings = check_run(run(batch_tiers={"B1": batch_tier}), 1)
    assert {s for r, s in active(findings) if r == TIER_CASCADE} == expected
    for subject in expected:
        hit = by(findings, TIER_CASCADE, subject)
        assert hit.severity is Severity.CRITICAL
        assert hit.detail["batch_tiers"] == {"B1": "export"}


def test_batches_known_only_by_tier_count() -> None:
    findings = check_run(run(batch_codes=(), batch_tiers={"SCANNED": Tier.GG}), 1)
    assert (GG_IN_PREMIUM, "L1/R42/10120") in active(findings)


# -- with the alert book -----------------------------------------------------------------


def test_corrected_run_clears_the_alert() -> None:
    book = AlertBook()
    bad = run(batch_tiers={"B1": Tier.GG})
    raised = book.apply_all(check_run(bad, 1), {"yield_warn_pct": "90"})
    assert [(t.event, t.rule) for t in raised] == [(AlertEvent.RAISED, GG_IN_PREMIUM)]
    assert book.apply_all(check_run(bad, 2)) == []  # no floods on re-check
    assert book.andon_state("L1") == "red"
    cleared = book.apply_all(check_run(run(), 3))
    assert [t.event for t in cleared] == [AlertEvent.CLEARED]
    assert book.andon_state("L1") == "green"


@given(
    st.lists(st.sampled_from(list(Tier)), min_size=1, max_size=3),
    st.lists(st.sampled_from(list(Tier)), min_size=1, max_size=3),
)
def test_no_upward_flow_goes_unflagged(batch_tiers: list[Tier], product_tiers: list[Tier]) -> None:
    rank = {Tier.PREMIUM: 1, Tier.GG: 2, Tier.EXPORT: 3}
    products = tuple(
        Product(f"P{i}", None, t, catch_weight=True) for i, t in enumerate(product_tiers)
    )
    tiers = {f"B{i}": t for i, t in enumerate(batch_tiers)}
    findings = check_run(run(products=products, batch_tiers=tiers, batch_species={}), 1)
    for p in products:
        upward = any(rank[p.tier] < rank[t] for t in tiers.values())
        flagged = any(
            x.active and x.subject == f"L1/R42/{p.plu}"
            for x in findings
            if x.rule in {GG_IN_PREMIUM, TIER_CASCADE}
        )
        assert flagged is upward
