"""The records Lineside stores, syncs and evaluates rules on.

Every record is immutable. The store gives each one a gateway-wide sequence number when it
commits it (see :mod:`gateway.store.sequence`); the number is the record's identity in the
warehouse, together with the gateway id.

Times are wall-clock microseconds since the Unix epoch (UTC). Weights are grams, temperatures
degrees Celsius. A measurement is always a finite number: bad values are
:class:`RejectedInput` records, never a ``PackEvent`` or ``TemperatureReading``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class Severity(StrEnum):
    """Alert severity (ISA-18.2 style priorities)."""

    CRITICAL = "critical"
    MAJOR = "major"
    WARNING = "warning"


class Priority(IntEnum):
    """Outbox priority classes: lower leaves first, and is never evicted for space."""

    ALERT = 0
    COMPLIANCE = 1
    TELEMETRY = 2


class RecordFlag(IntEnum):
    """Bits in a record's ``flags``."""

    TIME_UNCERTAIN = 1
    """The wall clock was stepped near this record's time."""
    PROVISIONAL_RUN = 2
    """The run was joined from the offline cache while the ERP was unreachable."""
    VALUES_UNCERTAIN = 4
    """A pack whose values (weights, label number, accepted) could not be proven to belong
    to its pack counter: they may be a neighbouring pack's. Kept out of the ℮ batch and the
    giveaway; see docs/devices.md for when the adapters set it."""
    PRODUCT_UNKNOWN = 8
    """A pack whose product could not be decided (no program, label, nominal or single
    product told it): kept out of every per-product statistic, never given a guess."""


def _require_finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class PackEvent:
    """One pack over the checkweigher."""

    ts_us: int
    line: str
    device: str
    net_g: float
    pack_counter: int | None = None
    gross_g: float | None = None
    tare_g: float | None = None
    accepted: bool | None = None
    label_seq: int | None = None
    run_number: str | None = None
    flags: int = 0
    nominal_g: float | None = None
    """The checkweigher's nominal (Qn) setting: which product of the run is on the line."""
    program: str | None = None
    """The checkweigher's program or product code for this pack (mapped to a PLU in the
    device's ``programs``)."""
    catch_weight: bool | None = None
    """The checkweigher says it weighs in catch-weight (variable measure) mode."""
    plu: str | None = None
    """The product of the pack, as decided by the gateway (``product_source`` says how)."""
    product_source: str | None = None
    """How ``plu`` was decided: ``device`` (program), ``label`` (the pack's label GTIN),
    ``nominal`` (Qn match), ``only_product`` (the run's one product of the kind); None when
    it is not decided yet (see docs/products.md)."""

    def __post_init__(self) -> None:
        _require_finite("net_g", self.net_g)
        _require_finite("nominal_g", self.nominal_g)
        _require_finite("gross_g", self.gross_g)
        _require_finite("tare_g", self.tare_g)


@dataclass(frozen=True, slots=True)
class TemperatureReading:
    """One temperature from a probe."""

    ts_us: int
    line: str
    device: str
    probe: str
    celsius: float
    location: str = ""
    run_number: str | None = None
    flags: int = 0

    def __post_init__(self) -> None:
        _require_finite("celsius", self.celsius)


@dataclass(frozen=True, slots=True)
class LabelScan:
    """One barcode read; ``parsed`` holds the GS1 fields when the read was valid."""

    ts_us: int
    line: str
    device: str
    raw: bytes
    gtin: str | None = None
    batch: str | None = None
    use_by: str | None = None
    pack_date: str | None = None
    serial: str | None = None
    net_weight_g: float | None = None
    parsed: dict[str, Any] = field(default_factory=dict)
    run_number: str | None = None
    flags: int = 0


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """Something that happened to a device or to the gateway: link up/down, bad quality..."""

    ts_us: int
    device: str
    kind: str
    line: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    flags: int = 0


SENSOR_FAULT_CODE = "sensor_fault_code"
"""The reason of a :class:`RejectedInput` whose raw value is one of its tag's configured
``fault_codes``: the device says it has no measurement. For a probe with HACCP limits the
rules raise a sensor fault on it (``source`` is the device id, ``tag`` the probe)."""


@dataclass(frozen=True, slots=True)
class RejectedInput:
    """An input that was refused, stored with its raw value and the reason, not dropped.

    It is telemetry: when the store reaches its size budget, the oldest rejected inputs are
    evicted (counted, with an "edge storage full" alert) before any compliance record.
    """

    ts_us: int
    source: str
    tag: str
    raw: str
    reason: str
    detail: str = ""
    line: str | None = None
    flags: int = 0
    serial: str | None = None
    """A rejected label read's serial (AI 21), where it could still be read: the label was
    read, invalid, so the label sequence does not count its number as missing."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One transition of an alert (raised, updated, cleared, acknowledged, shelved)."""

    ts_us: int
    alert_id: str
    rule: str
    subject: str
    severity: Severity
    state: str
    message: str
    line: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    flags: int = 0


@dataclass(frozen=True, slots=True)
class RunVersion:
    """One version of a production run, as the ERP sent it or an operator changed it.

    Versions are appended (and synced); the ``runs`` table holds the newest per run number.
    """

    ts_us: int
    run_number: str
    line: str
    status: str
    source: str
    """``erp`` or ``operator``."""
    payload: dict[str, Any]
    """The whole run as JSON (see :func:`gateway.core.runs.run_to_json`)."""
    actor: str | None = None
    """The operator who started or ended the run from the line."""
    provisional: bool = False
    flags: int = 0


@dataclass(frozen=True, slots=True)
class EmarkBatchRecord:
    """The packer's record of one ℮ inspection batch (SI 2006/659 reg 9: kept ≥ 1 year)."""

    ts_us: int
    line: str
    run_number: str
    plu: str
    qn_g: str
    tne_g: str
    t1_g: str
    t2_g: str
    start_us: int
    end_us: int
    n: int
    mean_g: str
    sd_g: str
    below_t1: int
    below_t2: int
    verdict: str
    reasons: tuple[str, ...] = ()
    flags: int = 0
    rejected: int = 0
    """Packs the checkweigher rejected in the batch's time (not in the statistics)."""
    uncertain: int = 0
    """Packs flagged VALUES_UNCERTAIN in the batch's time (not in the statistics)."""


Record = (
    PackEvent
    | TemperatureReading
    | LabelScan
    | DeviceEvent
    | RejectedInput
    | AlertRecord
    | RunVersion
    | EmarkBatchRecord
)
"""Anything the store appends."""
