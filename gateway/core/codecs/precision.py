"""Values at their physical precision: no binary float noise from scaling or float32. Pure.

Two places turn an exact device value into a float with noise in its last digits:

* **Scaling.** A register holding 68 with a scale of 0.1 means 6.8 °C, but ``68 * 0.1`` in
  binary floating point is ``6.800000000000001``. :func:`scaled` does the arithmetic in
  decimal on the numbers as written (the integer read, the scale and offset as given in the
  config), so the result carries exactly the decimal places the scale gives it (0.1 -> one,
  0.01 -> two; a float raw value adds its own), and is then the float nearest that decimal:
  ``scaled(68, 0.1) == 6.8``.
* **float32.** A device's 32-bit float holding 6.8 is the binary32 value nearest 6.8, which
  widened to a Python float (binary64) reads ``6.800000190734863``. The device never meant
  those extra digits: they are the gap between the two formats. :func:`shortest_float32`
  gives the shortest decimal that is the same binary32 value, 6.8.

Both are presentation-neutral: they change no value beyond the precision the device has,
so every comparison against a limit gives the answer the device's own number would.
"""

from __future__ import annotations

import math
import struct
from decimal import Decimal, localcontext
from typing import Final

__all__ = ["scaled", "shortest_float32"]

# binary32 round-trips through decimal text with at most 9 significant digits (IEEE 754-2019
# §5.12.2: Pmin(binary32) = 9). Any value that has a shorter exact form is found at 6 digits
# already: its distance to that form is below half a binary32 unit (about 6e-8 relative),
# far less than half a unit of the 6th digit, so ``%.6g`` lands on it (trailing zeros go).
_FIRST_DIGITS: Final = 6
_MAX_DIGITS: Final = 9

# Enough digits for the exact product of two shortest float reprs (17 digits each) plus an
# offset: the decimal result is exact before it is turned into the nearest float.
_PRECISION: Final = 60


def shortest_float32(value: float) -> float:
    """The shortest decimal float that encodes to the same IEEE 754 binary32 value.

    ``shortest_float32(6.800000190734863) == 6.8``. NaN and infinities are returned as they
    are; a value that is not a binary32 number (beyond its range) is returned unchanged.
    """
    if not math.isfinite(value):
        return value
    try:
        packed = struct.pack("<f", value)
    except OverflowError:
        return value
    for digits in range(_FIRST_DIGITS, _MAX_DIGITS + 1):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value


def _decimal(number: int | float) -> Decimal:
    # repr() is the shortest text that round-trips, i.e. the number as it was written.
    return Decimal(number) if isinstance(number, int) else Decimal(repr(number))


def scaled(raw: int | float, factor: float = 1.0, offset: float = 0.0) -> float:
    """``raw * factor + offset`` computed in decimal, as a float: ``scaled(68, 0.1) == 6.8``.

    The raw value, the factor and the offset are taken as the decimals they print as (an
    integer exactly, a float by its shortest repr), so the result has the decimal places of
    ``raw`` plus those of ``factor`` (or the offset's, if more) and no binary noise. NaN and
    infinities go through plain float arithmetic (a NaN stays NaN, so it is still rejected).
    """
    if isinstance(raw, bool):
        raw = int(raw)
    if not (math.isfinite(raw) and math.isfinite(factor) and math.isfinite(offset)):
        return float(raw) * factor + offset
    with localcontext() as context:
        context.prec = _PRECISION
        exact = _decimal(raw) * _decimal(factor) + _decimal(offset)
    return float(exact)
