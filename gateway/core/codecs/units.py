"""Pure unit codec: the units a device may report weights and temperatures in, their
UNECE common codes, and the conversion into the units the rules work in.

No I/O. The rules weigh in grams and take temperatures in degrees Celsius
(docs/reference/domain-rules.md); a device that reports kilograms or degrees Fahrenheit is
configured with ``unit = "kg"`` / ``unit = "degF"`` and its values are converted here.

OPC UA servers describe a variable's unit in its ``EngineeringUnits`` property, an
EUInformation whose ``UnitId`` encodes a UNECE Recommendation 20 common code: each of the
code's (at most three) ASCII characters is one byte of the Int32, the last character in the
lowest byte (OPC 10000-8 §5.6.3), e.g. ``KGM`` is ``0x4B474D``. docs/devices.md, "Units and
scale", has the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from gateway.core.codecs.precision import scaled

__all__ = [
    "CELSIUS",
    "GRAM",
    "UNITS",
    "UNIT_ALIASES",
    "Unit",
    "UnitName",
    "common_code",
    "from_common_code",
    "to_rule_unit",
    "unit_id",
]

UnitName = Literal["mg", "g", "kg", "t", "oz", "lb", "degC", "degF", "K"]
"""The unit names a config may give (``°C``/``°F`` are accepted too, see UNIT_ALIASES)."""

UNIT_ALIASES: Final[dict[str, str]] = {"°C": "degC", "°F": "degF", "℃": "degC", "℉": "degF"}
"""Other spellings of a unit name, taken as the name."""


@dataclass(frozen=True, slots=True)
class Unit:
    """One unit: what it measures and how a value in it becomes the rule's unit.

    ``value_in_base = value * factor + offset`` where the base is grams for a mass and
    degrees Celsius for a temperature.
    """

    name: str
    quantity: Literal["mass", "temperature"]
    code: str
    """UNECE Recommendation 20 common code (what OPC UA EngineeringUnits carry)."""
    factor: float
    offset: float = 0.0
    exact: bool = True
    """False when the conversion has no finite decimal result (°F); it is then rounded."""


GRAM: Final = "g"
CELSIUS: Final = "degC"

UNITS: Final[dict[str, Unit]] = {
    u.name: u
    for u in (
        Unit("mg", "mass", "MGM", 0.001),
        Unit("g", "mass", "GRM", 1.0),
        Unit("kg", "mass", "KGM", 1000.0),
        Unit("t", "mass", "TNE", 1_000_000.0),
        # The avoirdupois ounce and pound are defined in grams exactly.
        Unit("oz", "mass", "ONZ", 28.349523125),
        Unit("lb", "mass", "LBR", 453.59237),
        Unit("degC", "temperature", "CEL", 1.0),
        Unit("degF", "temperature", "FAH", 5 / 9, -160 / 9, exact=False),
        Unit("K", "temperature", "KEL", 1.0, -273.15),
    )
}
"""The units known here, by config name."""

_BY_CODE: Final = {u.code: u for u in UNITS.values()}

# A temperature converted from °F is kept to a thousandth of a degree: far finer than any
# probe, and no 0.30000000000000004 in the store.
_INEXACT_DECIMALS: Final = 3


def unit_id(code: str) -> int:
    """The OPC UA UnitId of a UNECE common code (OPC 10000-8 §5.6.3): ``KGM`` -> 0x4B474D."""
    value = 0
    for char in code.strip():
        value = (value << 8) | (ord(char) & 0xFF)
    return value


def common_code(unit_id_value: int) -> str:
    """The UNECE common code a UnitId encodes (inverse of :func:`unit_id`); "" for -1/0."""
    if unit_id_value <= 0:
        return ""
    chars = []
    value = unit_id_value
    while value:
        chars.append(chr(value & 0xFF))
        value >>= 8
    return "".join(reversed(chars)).strip()


def from_common_code(code: str) -> Unit | None:
    """The known unit of a UNECE common code, or None for a code not in :data:`UNITS`."""
    return _BY_CODE.get(code.strip().upper())


def to_rule_unit(value: float, unit: Unit) -> float:
    """``value`` (in ``unit``) in grams or degrees Celsius, without binary noise."""
    if unit.factor == 1.0 and unit.offset == 0.0:
        return value
    if not math.isfinite(value):
        return value * unit.factor + unit.offset
    if unit.exact:
        return scaled(value, unit.factor, unit.offset)
    return round(value * unit.factor + unit.offset, _INEXACT_DECIMALS)
