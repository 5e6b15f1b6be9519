"""A packing line driven through the rules engine on a manual clock, as the pipeline feeds it:
packs, their labels, probe readings, device link events; ticks as time passes.

Pure (no I/O): for unit tests of the engine's alerts.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from adapters.roles import LabelInterpreter
from gateway.config import ProbeRules, RulesSection, ScannerTcpDevice
from gateway.core.clock import ManualClock
from gateway.core.codecs.gs1 import encode_element_string, gtin_check_digit
from gateway.core.records import (
    AlertRecord,
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    TemperatureReading,
)
from gateway.core.runs import Product, ProductionRun, RunStatus, Tier
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex, to_us
from rules.devices import WatchedDevice

START = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
PACK_DATE = date(2026, 12, 1)
GTIN = "0" + "501234500001" + str(gtin_check_digit("0501234500001"))
BATCH = "B2612-SAL-01"
RUN = ProductionRun(
    run_number="R-L1-SHIFT",
    line="L1",
    batch_codes=(BATCH,),
    description="ATLANTIC SALMON FILLETS",
    species="salmon",
    product_type="fillet",
    products=(
        Product(
            plu="41240",
            description="PREMIUM SALMON 240G",
            nominal_g=Decimal(240),
            tier=Tier.PREMIUM,
            gtin=GTIN,
        ),
    ),
    raw_material_kg=Decimal(500),
    pack_date=PACK_DATE,
    shelf_life_adjust=0,
    planned_start=START,
    planned_end=START + timedelta(hours=8),
    actual_start=START,
    actual_end=None,
    status=RunStatus.RUNNING,
    updated=START,
)
SCANNER = ScannerTcpDevice(
    id="scan1", kind="scanner_tcp", line="L1", role="label_scanner", host="127.0.0.1", port=1
)
DEVICES = (
    WatchedDevice("cw1", "L1", "checkweigher", 30.0),
    WatchedDevice("probes", "L1", "temperature_probe", 30.0),
    WatchedDevice("scan1", "L1", "label_scanner", 30.0),
)
PROBE = ProbeRules(device="probes", probe="P1", upper_c=5.0, debounce_s=60, no_data_s=600)


class LineShift:
    """One line's records through one engine; every record and its consequences are kept."""

    def __init__(
        self,
        config: RulesSection | None = None,
        *,
        devices: tuple[WatchedDevice, ...] = DEVICES,
    ) -> None:
        self.clock = ManualClock(wall_us=to_us(START))
        self.config = config or RulesSection(probes=(PROBE,))
        self.engine = RulesEngine(self.config, RunIndex([RUN]), self.clock, devices=devices)
        self.labels = LabelInterpreter(SCANNER, {})
        self.records: list[Record] = []
        """What the adapters gave (and line-mode events), in store order: a replay's input."""
        self.out: list[Record] = []
        self.counter = 0

    def feed(self, record: Record) -> None:
        self.records.append(record)
        self.out += self.engine.evaluate(record)

    def advance(self, seconds: float, *, tick_every: float = 1.0) -> None:
        """Let time pass, with the gateway's rules tick (once a second by default)."""
        left = seconds
        while left > 0:
            step = min(tick_every, left)
            self.clock.advance(step)
            self.out += self.engine.tick()
            left -= step

    def pack(self, net_g: float, *, labelled: bool = True, label_g: float | None = None) -> None:
        self.counter += 1
        now = self.clock.wall_us()
        self.feed(
            PackEvent(
                ts_us=now,
                line="L1",
                device="cw1",
                net_g=net_g,
                pack_counter=self.counter,
                label_seq=self.counter,
                nominal_g=240.0,
                accepted=True,
                run_number=RUN.run_number,
            )
        )
        if labelled:
            self.label(self.counter, weight_g=240.0 if label_g is None else label_g)

    def label(
        self,
        serial: int,
        *,
        weight_g: float = 240.0,
        use_by: date | None = None,
        batch: str = BATCH,
    ) -> None:
        raw = encode_element_string(
            [
                ("01", GTIN),
                ("10", batch),
                ("13", PACK_DATE.strftime("%y%m%d")),
                ("17", (use_by or PACK_DATE + timedelta(days=9)).strftime("%y%m%d")),
                ("21", str(serial)),
                ("3103", f"{round(weight_g):06d}"),
            ]
        )
        scan = self.labels.read(raw.encode(), self.clock.wall_us())
        assert isinstance(scan, LabelScan), scan
        self.feed(dataclasses.replace(scan, run_number=RUN.run_number))

    def temperature(self, celsius: float) -> None:
        self.feed(
            TemperatureReading(
                ts_us=self.clock.wall_us(),
                line="L1",
                device="probes",
                probe="P1",
                celsius=celsius,
                run_number=RUN.run_number,
            )
        )

    def link(self, device: str, kind: str, **detail: object) -> None:
        self.feed(
            DeviceEvent(
                ts_us=self.clock.wall_us(), device=device, kind=kind, line="L1", detail=detail
            )
        )

    def line_mode(self, mode: str, operator: str = "Ann") -> None:
        made = self.engine.set_line_mode("L1", mode, operator=operator)
        self.records += [r for r in made if isinstance(r, DeviceEvent)]
        self.out += made

    def alerts(self, rule: str | None = None) -> list[AlertRecord]:
        return [
            r for r in self.out if isinstance(r, AlertRecord) and (rule is None or r.rule == rule)
        ]
