"""Giveaway per run × product, the suggested target weight and the giveaway finding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.core.records import PackEvent, Severity
from rules.giveaway import GiveawayStats, TargetSuggestion, check, suggest_target
from rules.model import Product, Tier

D = Decimal
T0 = 1_714_543_200_000_000
S = 1_000_000


def product(qn: str | None = "250", *, price: str | None = None, catch: bool = False) -> Product:
    return Product(
        plu="10120",
        nominal_g=None if qn is None else D(qn),
        tier=Tier.GG,
        catch_weight=catch,
        price_per_kg=None if price is None else D(price),
    )


def stats_of(weights: list[str], *, qn: str = "250", price: str | None = None) -> GiveawayStats:
    stats = GiveawayStats(line="L1", run_number="R42", product=product(qn, price=price))
    for i, w in enumerate(weights):
        stats.add(D(w), T0 + i * S)
    return stats


def test_known_values() -> None:
    stats = stats_of(["255", "257", "253", "259", "256"], price="12.50")
    assert stats.count == 5
    assert stats.mean_g == D("256.00")
    assert stats.sd_g == D("2.24")  # s² = 20/4 = 5
    assert stats.giveaway_g == D("6.00")
    assert stats.giveaway_pct == D("2.40")  # 6 / 250
    assert stats.giveaway_kg == D("0.030")  # 5 packs × 6 g
    assert stats.giveaway_value == D("0.38")  # 0.030 kg × 12.50 = 0.375, half-even
    # T1 + 2s = 245.48, T2 + 3.09s = 238.92: rule 1 (Qn) binds
    assert stats.target() == TargetSuggestion(D("250.0"), "rule1")
    assert stats.suggested_target_g == D("250.0")
    assert stats.subject == "L1/R42/10120"
    assert stats.last_ts_us == T0 + 4 * S


def test_underfill_is_negative() -> None:
    stats = stats_of(["248", "249"])
    assert (stats.giveaway_g, stats.giveaway_pct, stats.giveaway_kg) == (
        D("-1.50"),
        D("-0.60"),
        D("-0.003"),
    )
    assert stats.giveaway_value is None  # no price


def test_empty_and_single() -> None:
    stats = stats_of([])
    assert (stats.count, stats.mean_g, stats.sd_g, stats.giveaway_g) == (0, None, None, None)
    assert (stats.giveaway_pct, stats.giveaway_kg, stats.suggested_target_g) == (
        None,
        D("0.000"),
        None,
    )
    stats.add(D("251.5"), T0)
    assert (stats.mean_g, stats.sd_g, stats.target()) == (D("251.50"), None, None)


@pytest.mark.parametrize(
    ("qn", "sd", "target", "binding"),
    [
        ("250", "2.24", "250.0", "rule1"),
        ("250", "4.5", "250.0", "rule1"),  # T1 + 9 = 250: a tie goes to rule 1
        ("250", "6", "253.0", "rule2"),  # 241 + 12 = 253 > 232 + 18.54
        ("250", "10", "262.9", "rule3"),  # 232 + 30.9 = 262.9 > 241 + 20
        ("125", "3.01", "125.4", "rule2"),  # 119.3 + 6.02 = 125.32 → up to 125.4
        ("250", "0", "250.0", "rule1"),
    ],
    ids=["small-sd", "tie", "rule2", "rule3", "round-up", "zero-sd"],
)
def test_suggest_target(qn: str, sd: str, target: str, binding: str) -> None:
    assert suggest_target(D(qn), D(sd)) == TargetSuggestion(D(target), binding)


def test_suggest_target_factors_and_errors() -> None:
    assert suggest_target(D(250), D(6), k1=D("1.96"), k2=D(0)) == TargetSuggestion(
        D("252.8"), "rule2"
    )  # 241 + 11.76 = 252.76
    with pytest.raises(ValueError, match="negative"):
        suggest_target(D(250), D(-1))


def test_catch_weight_has_no_giveaway() -> None:
    for spec in (product(catch=True), product(None)):
        with pytest.raises(ValueError, match="catch weight"):
            GiveawayStats(line="L1", run_number="R42", product=spec)


def test_observe_skips_rejected_packs() -> None:
    stats = stats_of([])
    for i, (net, accepted) in enumerate([(252.0, True), (200.0, False), (254.0, None)]):
        stats.observe(
            PackEvent(
                ts_us=T0 + i * S,
                line="L1",
                device="cw1",
                net_g=net,
                pack_counter=i,
                accepted=accepted,
            )
        )
    assert (stats.count, stats.mean_g, stats.last_ts_us) == (2, D("253.00"), T0 + 2 * S)


@pytest.mark.parametrize(
    ("weights", "threshold", "active"),
    [
        (["260"] * 19, "3.0", False),  # 4 % but fewer than 20 packs
        (["260"] * 20, "3.0", True),  # 4 % > 3 %
        (["257.5"] * 20, "3.0", False),  # exactly 3 %: not above
        (["257.501"] * 20, "3.0", True),  # just above, by the exact value
        (["260"] * 20, "5", False),  # 4 % within a 5 % threshold
        (["245"] * 20, "3.0", False),  # underfill is no giveaway
    ],
    ids=["too-few", "above", "at-threshold", "just-above", "custom-threshold", "underfill"],
)
def test_check(weights: list[str], threshold: str, active: bool) -> None:
    stats = stats_of(weights, price="10")
    finding = check(stats, D(threshold))
    assert finding.rule == "giveaway"
    assert finding.severity == Severity.WARNING
    assert finding.active is active
    assert finding.subject == "L1/R42/10120"
    assert finding.line == "L1"
    assert finding.ts_us == T0 + (len(weights) - 1) * S
    assert finding.detail["count"] == len(weights)
    assert "giveaway_value" in finding.detail


def test_check_defaults_and_detail() -> None:
    stats = stats_of(["260"] * 20)
    finding = check(stats)
    assert finding.active
    assert finding.detail["giveaway_pct"] == "4.00"
    assert finding.detail["giveaway_kg"] == "0.200"
    assert finding.detail["suggested_target_g"] == "250.0"
    assert finding.detail["target_binding"] == "rule1"
    assert "4.00 %" in finding.message
    assert not check(stats, min_count=21).active
    assert check(stats, ts_us=T0 + 999 * S).ts_us == T0 + 999 * S
    assert check(stats_of([])).ts_us == 0
