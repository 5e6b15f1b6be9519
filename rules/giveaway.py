"""Giveaway: product packed above the declared quantity, per run and product.

Definitions (docs/reference/domain-rules.md §2):

* giveaway (g per pack) = mean net weight − Qn;
* giveaway % = (mean − Qn) / Qn × 100;
* giveaway over the run (kg) = Σ (net − Qn) / 1000 over the packs counted, and its money
  value at ``product.price_per_kg`` where that is set.

Only fixed-quantity products have a giveaway (a catch-weight pack is sold at its own
weight). Packs the checkweigher rejected are not shipped and are not counted.

Suggested target weight
-----------------------
The lowest mean the filler can aim at such that all three ℮ rules (SI 2006/659 reg 4;
Directive 76/211/EEC Annex I §1) hold with margin, given the observed pack-to-pack
standard deviation *s*, assuming roughly normal pack weights::

    target = max(Qn,                    # rule 1: the mean must not be below Qn
                 T1 + k1·s,             # rule 2: few packs below T1; k1 = 2.0 → 2.3 %
                 T2 + k2·s)             # rule 3: packs below T2; k2 = 3.09 → 0.1 %

rounded **up** to 0.1 g. With the mean at T1 + 2·s, P(x < T1) = Φ(−2) ≈ 2.28 %, just within
the 2.5 % design level of rule 2 (1.96·s would sit exactly on it, so 2.0 leaves a small
margin). With the mean at T2 + 3.09·s, P(x < T2) = Φ(−3.09) ≈ 0.1 %; a verified
checkweigher rejecting below T2 removes those packs, so this term is conservative. These
are the criteria commonly used in UK guidance on setting target quantities (NMO/OPSS,
"setting target quantities and action limits"); the factors are parameters, and the
criterion that binds is reported with the target. The target does not add an allowance
for drift or checkweigher error (≤ TNE/5, SI 2006/659 Sch 2 para 1.3): the line's
control plan adds that.

Pure: no I/O, no clock reads; time comes in as ``ts_us``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

from gateway.core.records import PackEvent, RecordFlag
from rules import ids
from rules.emark import WeightStats, limits, net_for_emark
from rules.model import Finding, Product, Severity

__all__ = [
    "DEFAULT_K1",
    "DEFAULT_K2",
    "GiveawayStats",
    "TargetSuggestion",
    "check",
    "suggest_target",
]

RULE_GIVEAWAY = ids.GIVEAWAY
DEADBAND_PCT = 0.5
"""An open giveaway alert is published again when its percentage has moved this many points
from the one last published (docs/alarms.md §2): a sixth of the default 3 % threshold, about
1.2 g per 240 g pack, well above the pack-to-pack wobble of a mean over 20 and more packs."""

DEFAULT_K1 = Decimal("2.0")
"""Standard deviations between the target and T1 (rule 2): Φ(−2) ≈ 2.3 % below T1."""
DEFAULT_K2 = Decimal("3.09")
"""Standard deviations between the target and T2 (rule 3): Φ(−3.09) ≈ 0.1 % below T2."""

_CTX = Context(prec=60)
_TENTH = Decimal("0.1")
_CENTI = Decimal("0.01")
_MILLI = Decimal("0.001")


def _dec(value: Fraction) -> Decimal:
    return _CTX.divide(Decimal(value.numerator), Decimal(value.denominator))


@dataclass(frozen=True, slots=True)
class TargetSuggestion:
    """A suggested target mean weight and the ℮ rule that sets it."""

    target_g: Decimal
    binding: str
    """``"rule1"`` (Qn), ``"rule2"`` (T1 + k1·s) or ``"rule3"`` (T2 + k2·s)."""


def suggest_target(
    qn: Decimal, sd: Decimal, *, k1: Decimal = DEFAULT_K1, k2: Decimal = DEFAULT_K2
) -> TargetSuggestion:
    """``max(Qn, T1 + k1·sd, T2 + k2·sd)`` rounded up to 0.1 g (see the module docstring).

    On a tie the lower rule number is reported as binding.
    """
    if sd < 0:
        raise ValueError(f"sd must not be negative, got {sd}")
    lim = limits(qn)
    candidates = (
        (lim.qn, "rule1"),
        (_CTX.add(lim.t1, _CTX.multiply(k1, sd)), "rule2"),
        (_CTX.add(lim.t2, _CTX.multiply(k2, sd)), "rule3"),
    )
    best, binding = candidates[0]
    for value, name in candidates[1:]:
        if value > best:
            best, binding = value, name
    return TargetSuggestion(best.quantize(_TENTH, rounding=ROUND_CEILING), binding)


class GiveawayStats:
    """Giveaway of one product in one run, from the packs counted so far.

    Weights are exact (integer milligrams, see :class:`rules.emark.WeightStats`); the
    reported values are rounded half-even: grams and percent to 0.01, kilograms to 0.001,
    money to 0.01. A negative giveaway is an underfill, reported as it is.
    """

    def __init__(
        self,
        *,
        line: str,
        run_number: str,
        product: Product,
        k1: Decimal = DEFAULT_K1,
        k2: Decimal = DEFAULT_K2,
    ) -> None:
        if product.catch_weight or product.nominal_g is None:
            raise ValueError(f"product {product.plu} is catch weight: it has no giveaway")
        self.line = line
        self.run_number = run_number
        self.product = product
        self.qn: Decimal = product.nominal_g
        self.k1 = k1
        self.k2 = k2
        self.stats = WeightStats()
        self.last_ts_us: int | None = None

    @property
    def subject(self) -> str:
        """The alert subject: ``{line}/{run}/{plu}``."""
        return f"{self.line}/{self.run_number}/{self.product.plu}"

    def add(self, net: Decimal, ts_us: int) -> None:
        """Count one shipped pack of ``net`` grams at ``ts_us``."""
        self.stats.add(net)
        self.last_ts_us = ts_us if self.last_ts_us is None else max(self.last_ts_us, ts_us)

    def observe(self, pack: PackEvent) -> None:
        """Count a checkweigher pack (net as in :func:`rules.emark.net_for_emark`).

        Packs the checkweigher rejected (``accepted is False``) are not shipped: skipped. So
        are packs flagged VALUES_UNCERTAIN: their weight may be a neighbouring pack's.
        """
        if pack.accepted is False or pack.flags & RecordFlag.VALUES_UNCERTAIN:
            return
        self.add(net_for_emark(pack.net_g, self.product), pack.ts_us)

    @property
    def count(self) -> int:
        """Packs counted."""
        return self.stats.n

    def _excess_mg(self) -> Fraction:
        """Σ (net − Qn) in milligrams, exact."""
        return Fraction(self.stats.sum_mg) - Fraction(self.qn) * 1000 * self.stats.n

    def giveaway_pct_exact(self) -> Fraction | None:
        """(mean − Qn)/Qn × 100, exact; None before the first pack."""
        if self.stats.n == 0:
            return None
        return self._excess_mg() * 100 / (Fraction(self.qn) * 1000 * self.stats.n)

    @property
    def mean_g(self) -> Decimal | None:
        """Mean net weight (g, 0.01); None before the first pack."""
        return self.stats.mean(_CENTI) if self.stats.n else None

    @property
    def sd_g(self) -> Decimal | None:
        """Sample standard deviation (g, 0.01, n − 1 divisor); None below two packs."""
        return self.stats.sd(_CENTI)

    @property
    def giveaway_g(self) -> Decimal | None:
        """Mean − Qn (g per pack, 0.01); None before the first pack."""
        if self.stats.n == 0:
            return None
        exact = self._excess_mg() / (1000 * self.stats.n)
        return _dec(exact).quantize(_CENTI, rounding=ROUND_HALF_EVEN)

    @property
    def giveaway_pct(self) -> Decimal | None:
        """(Mean − Qn)/Qn × 100 (%, 0.01); None before the first pack."""
        exact = self.giveaway_pct_exact()
        if exact is None:
            return None
        return _dec(exact).quantize(_CENTI, rounding=ROUND_HALF_EVEN)

    @property
    def giveaway_kg(self) -> Decimal:
        """Σ (net − Qn) / 1000 over the packs counted (kg, 0.001)."""
        return _dec(self._excess_mg() / 1_000_000).quantize(_MILLI, rounding=ROUND_HALF_EVEN)

    @property
    def giveaway_value(self) -> Decimal | None:
        """Giveaway kg × ``price_per_kg`` (currency, 0.01); None without a price."""
        price = self.product.price_per_kg
        if price is None:
            return None
        exact = self._excess_mg() / 1_000_000 * Fraction(price)
        return _dec(exact).quantize(_CENTI, rounding=ROUND_HALF_EVEN)

    def target(self) -> TargetSuggestion | None:
        """The suggested target weight from the observed sd; None below two packs."""
        sd = self.sd_g
        if sd is None:
            return None
        return suggest_target(self.qn, sd, k1=self.k1, k2=self.k2)

    @property
    def suggested_target_g(self) -> Decimal | None:
        """The suggested target weight (g, 0.1, rounded up); None below two packs."""
        suggestion = self.target()
        return None if suggestion is None else suggestion.target_g


def check(
    stats: GiveawayStats,
    threshold_pct: Decimal = Decimal("3.0"),
    *,
    min_count: int = 20,
    ts_us: int | None = None,
) -> Finding:
    """The ``giveaway`` WARNING for a run × product: active while giveaway % > threshold.

    Inactive (a clear) until ``min_count`` packs are counted. The comparison uses the exact
    giveaway, not the rounded one. ``ts_us`` defaults to the time of the last pack counted
    (0 before any). Subject ``{line}/{run}/{plu}``. The finding's ``value`` is the giveaway
    % with a deadband of :data:`DEADBAND_PCT` points: the alert shows the live figure, and
    the store and the topic hear of it when it has moved by that much.
    """
    when = ts_us if ts_us is not None else (stats.last_ts_us or 0)
    exact = stats.giveaway_pct_exact()
    active = stats.count >= min_count and exact is not None and exact > Fraction(threshold_pct)
    pct = stats.giveaway_pct
    detail: dict[str, object] = {
        "run_number": stats.run_number,
        "plu": stats.product.plu,
        "qn_g": str(stats.qn),
        "count": stats.count,
        "mean_g": None if stats.mean_g is None else str(stats.mean_g),
        "sd_g": None if stats.sd_g is None else str(stats.sd_g),
        "giveaway_g": None if stats.giveaway_g is None else str(stats.giveaway_g),
        "giveaway_pct": None if pct is None else str(pct),
        "giveaway_kg": str(stats.giveaway_kg),
        "threshold_pct": str(threshold_pct),
        "min_count": min_count,
    }
    value = stats.giveaway_value
    if value is not None:
        detail["giveaway_value"] = str(value)
    suggestion = stats.target()
    if suggestion is not None:
        detail["suggested_target_g"] = str(suggestion.target_g)
        detail["target_binding"] = suggestion.binding
    if active:
        message = (
            f"giveaway {pct} % ({stats.giveaway_g} g per pack, {stats.giveaway_kg} kg over "
            f"{stats.count} packs) is above {threshold_pct} %"
        )
    elif stats.count < min_count:
        message = f"giveaway not judged below {min_count} packs ({stats.count} so far)"
    else:
        message = f"giveaway {pct} % is within {threshold_pct} %"
    return Finding(
        rule=RULE_GIVEAWAY,
        subject=stats.subject,
        active=active,
        severity=Severity.WARNING,
        message=message,
        ts_us=when,
        line=stats.line,
        detail=detail,
        value=None if pct is None else float(pct),
        deadband=DEADBAND_PCT,
    )
