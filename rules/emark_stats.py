"""Exact count, mean and standard deviation of pack weights for the ℮ batch record."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from rules.emark_limits import CENTI, EXACT, MILLI

__all__ = ["WeightStats"]


def _to_mg(grams: Decimal) -> int:
    """Grams (to the milligram) as integer milligrams."""
    return int(EXACT.multiply(grams.quantize(MILLI, rounding=ROUND_HALF_EVEN), Decimal(1000)))


def _fraction_to_decimal(value: Fraction) -> Decimal:
    return EXACT.divide(Decimal(value.numerator), Decimal(value.denominator))


class WeightStats:
    """Count, mean and sample standard deviation of weights, exactly.

    Weights are held as integer milligrams, and the sums of x and x² are Python integers,
    so the variance ``(n·Σx² − (Σx)²) / (n·(n − 1))`` is exact: there is no cancellation
    to guard against (which is what Welford's update does for floats). The standard
    deviation uses the n − 1 divisor, as *s* in SI 2006/659 Sch 2 para 4.
    """

    __slots__ = ("_n", "_sum_mg", "_sumsq_mg")

    def __init__(self) -> None:
        self._n = 0
        self._sum_mg = 0
        self._sumsq_mg = 0

    def add(self, grams: Decimal) -> None:
        """Count one weight (grams; held to the milligram)."""
        mg = _to_mg(grams)
        self._n += 1
        self._sum_mg += mg
        self._sumsq_mg += mg * mg

    @property
    def n(self) -> int:
        """How many weights."""
        return self._n

    @property
    def sum_mg(self) -> int:
        """Σx in milligrams, exact."""
        return self._sum_mg

    def mean_exact(self) -> Fraction:
        """The mean in grams as an exact fraction (ValueError when empty)."""
        if self._n == 0:
            raise ValueError("no weights")
        return Fraction(self._sum_mg, self._n * 1000)

    def variance_exact(self) -> Fraction | None:
        """The sample variance in g² as an exact fraction; None below two weights."""
        if self._n < 2:
            return None
        num = self._n * self._sumsq_mg - self._sum_mg * self._sum_mg
        return Fraction(num, self._n * (self._n - 1) * 1_000_000)

    def mean(self, places: Decimal = CENTI, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        """The mean in grams, rounded to ``places``."""
        return _fraction_to_decimal(self.mean_exact()).quantize(places, rounding=rounding)

    def sd(self, places: Decimal = CENTI) -> Decimal | None:
        """The sample standard deviation in grams, rounded half-even; None below two."""
        var = self.variance_exact()
        if var is None:
            return None
        return _fraction_to_decimal(var).sqrt(EXACT).quantize(places, rounding=ROUND_HALF_EVEN)
