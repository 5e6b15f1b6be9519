"""Keys every ``[[devices]]`` entry has, and the role checks they share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Self

from pydantic import Field, model_validator

from gateway.config.base import Identifier, StrictModel
from gateway.core.codecs.units import CELSIUS, GRAM, UNITS

Role = Literal["checkweigher", "temperature_probe", "label_scanner"]

CHECKWEIGHER_SIGNALS = frozenset(
    {
        "net_weight",
        "gross_weight",
        "tare",
        "pack_counter",
        "accepted",
        "label_sequence",
        "nominal_weight",
        "program",
        "catch_weight_mode",
        "rejected",
        "changeover",
        "reject_counter",
    }
)
"""Tag names a checkweigher understands; weights in grams. ``program`` is the device's
program or product code (see ``programs``), ``catch_weight_mode``, ``rejected`` and
``changeover`` are flags (often bits of a status word), ``reject_counter`` counts rejects."""

CHECKWEIGHER_FLAGS = frozenset({"accepted", "rejected", "catch_weight_mode", "changeover"})
"""The checkweigher signals that are true or false: the ones a ``bit`` tag may be."""

CHECKWEIGHER_WEIGHTS = frozenset({"net_weight", "gross_weight", "tare", "nominal_weight"})
"""The checkweigher signals that are weights: never a bit field."""


class DeviceBase(StrictModel):
    """Keys every device has."""

    id: Identifier
    """Device id, unique in this gateway."""
    line: Identifier
    """The line this device belongs to (one of ``[[lines]]``)."""
    role: Role
    """What the device is: ``checkweigher``, ``temperature_probe`` or ``label_scanner``."""
    enabled: bool = True
    """A disabled device stays in the file but is not connected."""
    timeout_s: float = Field(default=3.0, gt=0, le=60)
    """Per-request timeout."""
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    """First reconnect delay; doubles up to ``reconnect_max_s``, with jitter."""
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    """Longest reconnect delay."""
    down_alert_after_s: float = Field(default=30.0, ge=0, le=86_400)
    """A link down this long raises a ``device_down`` alert (MAJOR for a checkweigher or a
    temperature probe, WARNING for a label scanner), cleared when the device is back;
    0: never (docs/alarms.md §4)."""
    programs: dict[str, Identifier] = Field(default_factory=dict, max_length=10_000)
    """A checkweigher's program numbers (or product codes) and the PLU each one packs, e.g.
    ``{ "12" = "41240", "13" = "49001" }``: the surest way to know a pack's product."""

    def tag_names(self) -> list[str]:
        """Names of the device's tags, for the role checks."""
        return []

    def bit_fields(self) -> dict[str, str]:
        """Tags that read part of a value: name -> ``bit`` or ``mask``."""
        return {}

    def rule_unit(self, tag: str) -> str | None:
        """The unit the rules take ``tag`` in (g, degC), or None when it is not a measure."""
        if self.role == "temperature_probe":
            return CELSIUS
        if self.role == "checkweigher" and tag in CHECKWEIGHER_WEIGHTS:
            return GRAM
        return None

    def _units_fit_the_role(self, units: Iterable[tuple[str, str | None]]) -> None:
        """Each ``(tag, unit)`` given a unit is a weight or temperature of that quantity."""
        for name, unit in units:
            expected = self.rule_unit(name)
            if unit is None:
                continue
            if expected is None:
                raise ValueError(
                    f"tag {name}: unit applies to weights and temperatures; "
                    f"a {self.role}'s {name} has none"
                )
            if UNITS[unit].quantity != UNITS[expected].quantity:
                raise ValueError(
                    f"tag {name}: unit {unit} is a {UNITS[unit].quantity}, but "
                    f"{name} is a {UNITS[expected].quantity} (the rules use {expected})"
                )

    def _bit_fields_fit_the_role(self) -> None:
        fields = self.bit_fields()
        bits = sorted(name for name, key in fields.items() if key == "bit")
        if self.role == "temperature_probe" and fields:
            raise ValueError(
                f"a temperature probe's tags are temperatures, not bit fields: {sorted(fields)}"
            )
        if self.role == "checkweigher":
            not_flags = [name for name in bits if name not in CHECKWEIGHER_FLAGS]
            if not_flags:
                raise ValueError(
                    f"a bit is true or false; only {sorted(CHECKWEIGHER_FLAGS)} are flags, "
                    f"not {not_flags}"
                )
            weights = sorted(set(fields) & CHECKWEIGHER_WEIGHTS)
            if weights:
                raise ValueError(f"weights are not bit fields: {weights}")

    @model_validator(mode="after")
    def _role_has_its_tags(self) -> Self:
        self._bit_fields_fit_the_role()
        names = self.tag_names()
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tag names must be unique in a device: {duplicates}")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        kind = getattr(self, "kind", "")
        if self.role == "checkweigher" and kind != "scanner_tcp":
            unknown = sorted(set(names) - CHECKWEIGHER_SIGNALS)
            if unknown:
                raise ValueError(
                    f"checkweigher tags must be named from {sorted(CHECKWEIGHER_SIGNALS)}; "
                    f"unknown: {unknown}"
                )
            if "pack_counter" not in names and "label_sequence" not in names:
                raise ValueError(
                    "a checkweigher needs a pack_counter (or label_sequence) tag so packs "
                    "are neither counted twice nor lost"
                )
            if "net_weight" not in names and not {"gross_weight", "tare"} <= set(names):
                raise ValueError("a checkweigher needs net_weight, or gross_weight and tare")
        if self.programs and self.role != "checkweigher":
            raise ValueError("programs map a checkweigher's program numbers to PLUs")
        if self.programs and "program" not in names:
            raise ValueError("programs needs a 'program' tag to read the program number from")
        if self.role == "label_scanner" and kind != "scanner_tcp" and names != ["barcode"]:
            raise ValueError("a label scanner read over OPC UA has exactly one tag, 'barcode'")
        return self
