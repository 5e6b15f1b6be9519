"""The records one simulated gateway of the fleet produces: pure, from an index and a time base.

Record ``i`` of a gateway is decided by ``i`` alone, so a run is reproducible and a test knows
what each gateway committed without asking the generator: every 50th is an alert transition
(raised, then cleared), every 10th a label scan, every 4th a temperature reading, the rest
packs. Timestamps come from the simulated time base (``start_us`` plus ``i`` steps of
``step_us``), never from the clock, so nothing depends on the day a run happens.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from gateway.core.records import (
    AlertRecord,
    LabelScan,
    PackEvent,
    Record,
    Severity,
    TemperatureReading,
)

SIMULATED_START_US = 1_767_225_600_000_000
"""2026-01-01T00:00:00Z: the fleet's simulated time base by default."""

STEP_US = 50_000
"""Simulated time between two records of one gateway (20 records per simulated second)."""

ALERT_EVERY = 50
SCAN_EVERY = 10
TEMPERATURE_EVERY = 4

STREAM_OF_KIND = {
    "alert": "alerts",
    "scan": "label_scans",
    "temperature": "temperatures",
    "pack": "packs",
}
"""The warehouse stream (the gateway's table) each kind of record lands in."""


@dataclass(frozen=True, slots=True)
class TimeBase:
    """Where a gateway's simulated time starts, and how far apart its records are."""

    start_us: int = SIMULATED_START_US
    step_us: int = STEP_US

    def at(self, index: int) -> int:
        return self.start_us + index * self.step_us


def kind_of(index: int) -> str:
    """``alert``, ``scan``, ``temperature`` or ``pack``: what record ``index`` is."""
    if index % ALERT_EVERY == ALERT_EVERY - 1:
        return "alert"
    if index % SCAN_EVERY == SCAN_EVERY - 1:
        return "scan"
    if index % TEMPERATURE_EVERY == TEMPERATURE_EVERY - 1:
        return "temperature"
    return "pack"


def expected_streams(count: int) -> Counter[str]:
    """How many records of each stream the first ``count`` records of a gateway hold."""
    return Counter(STREAM_OF_KIND[kind_of(i)] for i in range(count))


def fleet_record(index: int, time_base: TimeBase, line: str = "L1") -> Record:
    """Record ``index`` of a gateway: a real gateway record, as its adapters and rules make."""
    ts_us = time_base.at(index)
    match kind_of(index):
        case "alert":
            transition = index // ALERT_EVERY
            return AlertRecord(
                ts_us=ts_us,
                alert_id=f"haccp_upper.P{transition // 2}",
                rule="haccp_upper",
                subject=f"P{transition // 2}",
                severity=Severity.CRITICAL,
                state="raised" if transition % 2 == 0 else "cleared",
                message=f"probe P{transition // 2} above its limit",
                line=line,
                detail={"celsius": 6.5, "limit": 5.0},
            )
        case "scan":
            serial = f"{index:08d}"
            return LabelScan(
                ts_us=ts_us,
                line=line,
                device="scanner1",
                raw=b"]C1" + b"0105012345678900" + b"21" + serial.encode(),
                gtin="05012345678900",
                serial=serial,
            )
        case "temperature":
            return TemperatureReading(
                ts_us=ts_us,
                line=line,
                device="probe1",
                probe="P1",
                celsius=2.0 + (index % 30) / 10,
                location="chiller",
            )
        case _:
            return PackEvent(
                ts_us=ts_us,
                line=line,
                device="cw1",
                net_g=400.0 + (index % 17) / 10,
                pack_counter=index,
                gross_g=412.0 + (index % 17) / 10,
                tare_g=12.0,
                accepted=True,
                nominal_g=400.0,
            )
