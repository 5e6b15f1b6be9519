"""Plausibility limits and bit-field checks shared by every tag kind."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from gateway.config.base import StrictModel
from gateway.core.codecs.bitfields import is_contiguous


class TagLimits(StrictModel):
    """Plausibility checks shared by every tag kind."""

    min: float | None = None
    """Lowest physically possible value; anything below is rejected, never stored as good."""
    max: float | None = None
    """Highest physically possible value."""
    stuck_after_s: float | None = Field(default=None, gt=0)
    """A value unchanged for longer than this is reported as stuck (sensor fault)."""
    location: str = ""
    """Where a probe sits (e.g. ``product core``, ``chill room 2``)."""
    fault_codes: tuple[int | float, ...] = Field(default=(), max_length=32)
    """Values the device sends instead of a measurement, as read before scale and offset
    (e.g. ``[32767, -32768]``, a transmitter's sensor break and short circuit). Such a value
    is rejected as ``sensor_fault_code``, not as out of range, and a probe with HACCP limits
    raises a sensor fault while it lasts (docs/devices.md)."""

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Self:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self

    @field_validator("fault_codes", mode="before")
    @classmethod
    def _codes_are_numbers(cls, value: object) -> object:
        # Checked before pydantic's own coercion, which would take true for 1 and "5" for 5.
        if isinstance(value, list | tuple):
            for code in value:
                if isinstance(code, bool) or not isinstance(code, int | float):
                    raise ValueError(f"fault code {code!r} is not a number")
                if not math.isfinite(code):
                    raise ValueError(f"fault code {code!r} is not a finite number")
        return value


def check_bit_field(key: str, data: Mapping[str, Any]) -> None:
    """What ``bit``/``mask`` cannot go with, on any tag (``data``: the keys read before)."""
    if data.get("fault_codes"):
        raise ValueError(f"fault_codes are raw values of a measurement; they do not go with {key}")
    if key == "bit" and (data.get("min") is not None or data.get("max") is not None):
        raise ValueError("a bit reads true or false: min and max do not apply")
    if key == "mask" and data.get("bit") is not None:
        raise ValueError("give bit or mask, not both")


def check_mask(mask: int, width: int, type_name: str) -> None:
    if mask >> width:
        raise ValueError(f"mask 0x{mask:X} is wider than the {width} bits of {type_name}")
    if not is_contiguous(mask):
        raise ValueError(f"mask 0x{mask:X} is not one run of adjacent bits (e.g. 0x0F00)")
