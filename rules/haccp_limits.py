"""HACCP critical limits of a probe, the presets for fish, and the excursion log's entries.

Where the numbers come from is set out in :mod:`rules.haccp` and
``docs/reference/domain-rules.md`` §3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from rules import ids

__all__ = [
    "CHILLED_PRODUCT_CCP",
    "FROZEN_PRODUCT_CCP",
    "RULE_LOWER",
    "RULE_SENSOR_FAULT",
    "RULE_UPPER",
    "US_PER_S",
    "Excursion",
    "Fault",
    "ProbeLimits",
    "Side",
]

RULE_UPPER: Final = ids.HACCP_UPPER
RULE_LOWER: Final = ids.HACCP_LOWER
RULE_SENSOR_FAULT: Final = ids.HACCP_SENSOR_FAULT

Side = Literal["upper", "lower"]
Fault = Literal["no_data", "out_of_range", "stuck", "device_fault"]

US_PER_S: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class ProbeLimits:
    """The critical limits and fault thresholds of one probe.

    A value strictly above ``upper_c`` (or strictly below ``lower_c``) is beyond the limit: a
    limit of "<= -18 °C" is met at -18.0. ``None`` disables that side.
    """

    upper_c: Decimal | None
    lower_c: Decimal | None
    debounce_s: float = 60
    """How long a value must stay beyond a limit before it is a breach (0: instant)."""
    hysteresis_c: Decimal = Decimal("0.5")
    """A breach clears at ``upper_c - hysteresis_c`` or below (``lower_c + hysteresis_c`` or
    above): docs/reference/domain-rules.md §3."""
    no_data_s: float = 300
    """No reading for this long is a sensor fault; also the longest a value is held."""
    physical_min_c: Decimal = Decimal(-50)
    physical_max_c: Decimal = Decimal(100)
    """Outside this range the reading is a sensor fault (open/short circuit), not a value."""
    stuck_s: float | None = None
    """An unchanged value for this long is a stuck-sensor fault; ``None`` disables it."""

    def __post_init__(self) -> None:
        for name in ("debounce_s", "no_data_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.no_data_s == 0:
            raise ValueError("no_data_s must be > 0")
        if self.stuck_s is not None and (not math.isfinite(self.stuck_s) or self.stuck_s <= 0):
            raise ValueError(f"stuck_s must be a finite number > 0 or None, got {self.stuck_s!r}")
        if not self.hysteresis_c.is_finite() or self.hysteresis_c < 0:
            raise ValueError(f"hysteresis_c must be >= 0, got {self.hysteresis_c}")
        if not self.physical_min_c < self.physical_max_c:
            raise ValueError("physical_min_c must be below physical_max_c")
        for name in ("upper_c", "lower_c"):
            limit: Decimal | None = getattr(self, name)
            if limit is not None and not (
                limit.is_finite() and self.physical_min_c <= limit <= self.physical_max_c
            ):
                raise ValueError(f"{name} {limit} is outside the physical range of the probe")
        if self.upper_c is not None and self.lower_c is not None:
            if not self.lower_c < self.upper_c:
                raise ValueError("lower_c must be below upper_c")
            if self.upper_c - self.hysteresis_c < self.lower_c + self.hysteresis_c:
                raise ValueError("the hysteresis bands of the two limits overlap")


FROZEN_PRODUCT_CCP: Final = ProbeLimits(upper_c=Decimal(-18), lower_c=None)
"""Frozen fishery products: -18 °C or colder in all parts of the product
(Reg (EC) 853/2004 Annex III Sec VIII Ch VII §2)."""

CHILLED_PRODUCT_CCP: Final = ProbeLimits(upper_c=Decimal(5), lower_c=None)
"""Chilled fish product core: a company critical limit (docs/reference/domain-rules.md §3:
product core <= 5 °C). The law only says "approaching that of melting ice" (853/2004 Annex
III Sec VIII Ch III, VII, VIII), so a retailer may require a tighter limit (typically
0-2 °C)."""


@dataclass(frozen=True, slots=True)
class Excursion:
    """One spell beyond a limit, short or a breach, as kept in the excursion log."""

    side: Side
    limit_c: Decimal
    start_us: int
    """The first reading beyond the limit."""
    end_us: int
    """The reading back inside (a short excursion) or the clearing reading (a breach)."""
    beyond_s: float
    """Time actually beyond the limit (sample-and-hold) within the spell."""
    peak_c: Decimal
    """The furthest value beyond the limit."""
    breached: bool
    """True if the spell lasted the debounce and was raised."""
    raised_us: int | None = None
