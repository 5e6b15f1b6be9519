"""℮ limits: the TNE table, T1 and T2, and a pack's net weight as exact decimal grams.

Where the numbers come from is set out in :mod:`rules.emark` and
``docs/reference/domain-rules.md`` §1.3. Every weight is a :class:`~decimal.Decimal` held to
the milligram: binary floating point would round some of the 0.1 g TNE steps wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

from rules.model import Product

__all__ = [
    "CENTI",
    "EXACT",
    "MILLI",
    "QN_MAX_G",
    "QN_MIN_G",
    "T1_MAX_FRACTION",
    "EmarkLimits",
    "declared_net",
    "grams",
    "limits",
    "net_for_emark",
    "tne_g",
]

QN_MIN_G = Decimal(5)
"""Smallest nominal quantity in scope of SI 2006/659 (5 g)."""
QN_MAX_G = Decimal(25000)
"""Largest nominal quantity in scope of SI 2006/659 in GB (25 kg)."""

T1_MAX_FRACTION = Fraction(25, 1000)
"""Rule 2 design level: at most 2.5 % of a batch below T1 (UK guidance on SI 2006/659)."""

# Wide enough that no product, sum or quotient of gram values ever rounds.
EXACT = Context(prec=60)
_TENTH = Decimal("0.1")
CENTI = Decimal("0.01")
MILLI = Decimal("0.001")
_HUNDRED = Decimal(100)

# (upper bound inclusive or None for open-ended, TNE, whether the TNE is a % of Qn).
# Directive 76/211/EEC Annex I 2.4 up to 10 kg; SI 2006/659 Sch 1 above (GB only);
# inequalities as written in SI 2006/1258 Sch 5: lower bound exclusive, upper inclusive.
_TNE_TABLE: tuple[tuple[Decimal | None, Decimal, bool], ...] = (
    (Decimal(50), Decimal(9), True),  # m ≤ 50: 9 %
    (Decimal(100), Decimal("4.5"), False),  # 50 < m ≤ 100: 4.5 g
    (Decimal(200), Decimal("4.5"), True),  # 100 < m ≤ 200: 4.5 %
    (Decimal(300), Decimal(9), False),  # 200 < m ≤ 300: 9 g
    (Decimal(500), Decimal(3), True),  # 300 < m ≤ 500: 3 %
    (Decimal(1000), Decimal(15), False),  # 500 < m ≤ 1000: 15 g
    (Decimal(10000), Decimal("1.5"), True),  # 1000 < m ≤ 10 000: 1.5 %
    (Decimal(15000), Decimal(150), False),  # 10 000 < m ≤ 15 000: 150 g (GB only)
    (None, Decimal(1), True),  # m > 15 000 (to 25 000): 1 % (GB only)
)


def _as_decimal(value: Decimal | int, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{name} must be a Decimal (or int), got {type(value).__name__}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {result}")
    return result


def tne_g(qn: Decimal) -> Decimal:
    """The tolerable negative error for a nominal quantity ``qn`` (grams), to 0.1 g.

    Directive 76/211/EEC Annex I 2.4 / SI 2006/659 Sch 1, with the band inequalities of
    SI 2006/1258 Sch 5; a percentage TNE is rounded **up** to the next 0.1 g (e.g. 125 g →
    5.625 → 5.7; 100.1 g → 4.5045 → 4.6; 15 020 g → 150.2). Exact decimal arithmetic.

    Raises :class:`ValueError` outside 5 g – 25 kg, where the average system does not apply.
    """
    q = _as_decimal(qn, "qn")
    if q < QN_MIN_G or q > QN_MAX_G:
        raise ValueError(
            f"nominal quantity {q} g is outside the average system's range "
            f"{QN_MIN_G} g – {QN_MAX_G} g (SI 2006/659)"
        )
    for upper, value, is_pct in _TNE_TABLE:
        if upper is None or q <= upper:
            if not is_pct:
                return value.quantize(_TENTH)
            exact = EXACT.divide(EXACT.multiply(q, value), _HUNDRED)
            return exact.quantize(_TENTH, rounding=ROUND_CEILING, context=EXACT)
    raise AssertionError("unreachable: the last TNE band is open-ended")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class EmarkLimits:
    """Qn and its limits in grams: TNE, T1 = Qn − TNE, T2 = Qn − 2·TNE."""

    qn: Decimal
    tne: Decimal
    t1: Decimal
    t2: Decimal


def limits(qn: Decimal) -> EmarkLimits:
    """TNE, T1 and T2 for ``qn`` (Directive 76/211/EEC Annex I 2.3–2.4; OIML R 87 T1/T2)."""
    q = _as_decimal(qn, "qn")
    tne = tne_g(q)
    return EmarkLimits(qn=q, tne=tne, t1=EXACT.subtract(q, tne), t2=EXACT.subtract(q, 2 * tne))


def grams(value: float | Decimal | int, name: str) -> Decimal:
    """A weight as a Decimal to the milligram; a float goes through its shortest repr."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number of grams")
    raw = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not raw.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return raw.quantize(MILLI, rounding=ROUND_HALF_EVEN, context=EXACT)


def net_for_emark(pack_net_g: float, product: Product) -> Decimal:
    """The net weight a pack counts with in the ℮ rules, as a Decimal to the milligram.

    The checkweigher reports the **net** weight: its tare is set per product, so the value
    already excludes the packaging. On a glazed line the checkweigher is set against the
    net of glaze (docs/reference/domain-rules.md §1.1), so its net is also the declared-net
    quantity. Nothing is subtracted here; ``product`` is taken so that callers do not have
    to care which case they are in. Where a device weighed **gross**, use
    :func:`declared_net` instead.

    The float is converted through its shortest decimal representation (239.7 → 239.7, not
    239.69999…), then held to the milligram.
    """
    del product  # net is net: see the docstring
    return grams(pack_net_g, "pack_net_g")


def declared_net(gross_g: float | Decimal, product: Product) -> Decimal:
    """The declared-net quantity of a pack weighed **gross**: (gross − tare) × (1 − glaze/100).

    ``product.tare_g`` is the packaging; ``product.glaze_pct`` is the glaze as a percentage
    of the glazed product (packaging excluded). Glaze is excluded from the declared net
    weight of frozen glazed fish: Reg (EU) 1169/2011 Annex IX point 5 (retained in GB).
    Result to the milligram (half-even).
    """
    gross = grams(gross_g, "gross_g")
    if not Decimal(0) <= product.glaze_pct < _HUNDRED:
        raise ValueError(f"glaze_pct must be in [0, 100), got {product.glaze_pct}")
    product_g = EXACT.subtract(gross, product.tare_g)
    share = EXACT.subtract(1, EXACT.divide(product.glaze_pct, _HUNDRED))
    return EXACT.multiply(product_g, share).quantize(MILLI, rounding=ROUND_HALF_EVEN)
