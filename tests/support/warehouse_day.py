"""A production day on two gateways, written through the real rules engine and the real
store, then synced through each store's real outbox into a real warehouse.

Gateway ``hull-gw1`` (site ``hull``) runs two lines: L1 packs run ``R-100`` (a 240 g
fixed-weight Premium product, then a catch-weight product, the change told by the
checkweigher's program; a few packs decided later by their label; ended) and L2 packs run
``R-101`` (one 400 g product; still running). Gateway ``grimsby-gw1`` (site ``grimsby``)
packs its own run ``R-100`` on L1 (so the number is ambiguous without a gateway) and
``R-201`` on L2: two sites of two lines. Batch code
``B-SHARED`` feeds both hull runs. Along the day: probe excursions (HACCP breaches), labels
not read (label gaps), checkweigher rejects, a pack whose values are uncertain, a skipped
pack counter, ℮ batches closed every hour.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from adapters.roles import LabelInterpreter
from gateway.config import ProbeRules, RulesSection, ScannerTcpDevice, StoreSection
from gateway.core.clock import ManualClock
from gateway.core.codecs.gs1 import encode_element_string, gtin_check_digit
from gateway.core.records import (
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    RecordFlag,
    TemperatureReading,
)
from gateway.core.runs import Product, ProductionRun, RunStatus, Tier, run_version
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex, to_us
from gateway.store import Store
from rules.devices import WatchedDevice
from sync.ingest.warehouse import Warehouse
from sync.outbox import Outbox, batch_seqs

START = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
PACK_DATE = date(2026, 12, 1)
SHARED_BATCH = "B-SHARED"
PACK_EVERY_S = 6
RUN_HOURS = 2


def gtin(body: str) -> str:
    return body + str(gtin_check_digit(body))


FIXED = Product(
    plu="41240",
    description="PREMIUM SALMON 240G",
    nominal_g=Decimal(240),
    tier=Tier.PREMIUM,
    gtin=gtin("0501234500001"),
)
CATCH = Product(
    plu="49000",
    description="SALMON SIDE CATCH WEIGHT",
    nominal_g=None,
    tier=Tier.PREMIUM,
    catch_weight=True,
    gtin=gtin("9501234500002"),
)
COD = Product(
    plu="52400",
    description="COD LOIN 400G",
    nominal_g=Decimal(400),
    tier=Tier.PREMIUM,
    gtin=gtin("0501234500003"),
)


def _run(
    number: str, line: str, products: tuple[Product, ...], codes: tuple[str, ...]
) -> ProductionRun:
    return ProductionRun(
        run_number=number,
        line=line,
        batch_codes=codes,
        description=f"RUN {number} ON {line}",
        species="salmon" if products[0] is not COD else "cod",
        product_type="fillet",
        products=products,
        raw_material_kg=Decimal(700),
        pack_date=PACK_DATE,
        shelf_life_adjust=1,
        planned_start=START,
        planned_end=START + timedelta(hours=RUN_HOURS),
        actual_start=START,
        actual_end=None,
        status=RunStatus.RUNNING,
        updated=START,
    )


@dataclasses.dataclass(frozen=True)
class LinePlan:
    run: ProductionRun
    ends: bool
    """The run ends after the day (a FINISHED version with its actual end)."""


@dataclasses.dataclass(frozen=True)
class GatewayPlan:
    gateway: str
    site: str
    lines: tuple[LinePlan, ...]
    after: tuple[LinePlan, ...] = ()
    """Runs started once the first ones have ended (at :data:`AFTER_START`), for
    :data:`AFTER_PACKS` packs: what the line raised before them is history to them."""


AFTER_START = START + timedelta(seconds=RUN_HOURS * 3600 + 120)
AFTER_PACKS = 200

HULL = GatewayPlan(
    "hull-gw1",
    "hull",
    (
        LinePlan(_run("R-100", "L1", (FIXED, CATCH), (SHARED_BATCH, "B-HULL-1")), ends=True),
        LinePlan(_run("R-101", "L2", (COD,), (SHARED_BATCH,)), ends=False),
    ),
    after=(
        LinePlan(
            dataclasses.replace(
                _run("R-102", "L1", (FIXED,), ("B-HULL-2",)),
                planned_start=AFTER_START,
                planned_end=AFTER_START + timedelta(hours=1),
                actual_start=AFTER_START,
                updated=AFTER_START,
            ),
            ends=True,
        ),
    ),
)
GRIMSBY = GatewayPlan(
    "grimsby-gw1",
    "grimsby",
    (
        LinePlan(_run("R-100", "L1", (FIXED,), ("B-GRIM-1",)), ends=True),
        LinePlan(_run("R-201", "L2", (COD,), ("B-GRIM-2",)), ends=True),
    ),
)


class GatewayDay:
    """One gateway's lines through one rules engine; records in the pipeline's order."""

    def __init__(self, plan: GatewayPlan) -> None:
        self.plan = plan
        self.clock = ManualClock(wall_us=to_us(START))
        lines = [p.run.line for p in plan.lines]
        probes = tuple(
            ProbeRules(device=f"probes-{ln}", probe="P1", upper_c=5.0, debounce_s=60)
            for ln in lines
        )
        devices = tuple(
            WatchedDevice(f"{kind}-{ln}", ln, role, 30.0)
            for ln in lines
            for kind, role in (
                ("cw", "checkweigher"),
                ("probes", "temperature_probe"),
                ("scan", "label_scanner"),
            )
        )
        self.engine = RulesEngine(
            RulesSection(probes=probes),
            RunIndex([p.run for p in (*plan.lines, *plan.after)]),
            self.clock,
            devices=devices,
            programs={f"cw-{ln}": {"1": p.run.products[0].plu, "2": p.run.products[-1].plu}
                      for ln, p in zip(lines, plan.lines, strict=True)},
            label_lines=lines,
        )  # fmt: skip
        self.scanners = {
            ln: LabelInterpreter(
                ScannerTcpDevice(
                    id=f"scan-{ln}", kind="scanner_tcp", line=ln, role="label_scanner",
                    host="127.0.0.1", port=1,
                ),
                {},
            )
            for ln in lines
        }  # fmt: skip
        self.records: list[Record] = []
        self.counters = dict.fromkeys(lines, 0)

    def feed(self, record: Record) -> None:
        if isinstance(record, PackEvent):
            record = self.engine.decide_product(record)
        self.records.append(record)
        self.records += self.engine.evaluate(record)

    def advance(self, seconds: float) -> None:
        left = seconds
        while left > 0:
            step = min(PACK_EVERY_S / 2, left)
            self.clock.advance(step)
            self.records += self.engine.tick()
            left -= step

    def version(self, run: ProductionRun) -> None:
        self.records.append(run_version(run, self.clock.wall_us()))

    def pack(self, line: str, run: ProductionRun, n: int) -> None:
        self.counters[line] += 1
        counter = self.counters[line]
        two = len(run.products) > 1
        product = run.products[1] if two and n > self.half else run.products[0]
        catch = product.catch_weight
        # A few packs tell nothing of their product: their label decides it later.
        undecided = two and n % 50 == 7
        program = "2" if two and product is run.products[-1] else "1"
        net = (1000.0 + (n % 37) * 3.25) if catch else float(product.nominal_g or 0) + (n % 9) - 2.5
        flags = int(RecordFlag.VALUES_UNCERTAIN) if n % 211 == 0 else 0
        self.feed(
            PackEvent(
                ts_us=self.clock.wall_us(),
                line=line,
                device=f"cw-{line}",
                net_g=net,
                pack_counter=counter,
                label_seq=counter,
                nominal_g=None if catch or undecided else float(product.nominal_g or 0),
                accepted=n % 97 != 0,
                run_number=run.run_number,
                flags=flags,
                program=None if undecided else program,
                catch_weight=None if undecided or not two else catch,
            )
        )
        if n % 25 != 0:  # every 25th label is not read: a label gap
            self.label(line, run, product, counter, net)

    def label(
        self, line: str, run: ProductionRun, product: Product, serial: int, net: float
    ) -> None:
        raw = encode_element_string(
            [
                ("01", product.gtin or ""),
                ("10", run.batch_codes[0]),
                ("13", PACK_DATE.strftime("%y%m%d")),
                ("17", (PACK_DATE + timedelta(days=10)).strftime("%y%m%d")),
                ("21", str(serial)),
                ("3103", f"{round(net):06d}"),
            ]
        )
        scan = self.scanners[line].read(raw.encode(), self.clock.wall_us())
        assert isinstance(scan, LabelScan), scan
        self.feed(dataclasses.replace(scan, run_number=run.run_number))

    @property
    def half(self) -> int:
        return RUN_HOURS * 3600 // PACK_EVERY_S // 2

    def play(self) -> None:
        self._phase(self.plan.lines, RUN_HOURS * 3600 // PACK_EVERY_S)
        self.advance(120)
        if self.plan.after:
            assert self.clock.wall_us() == to_us(AFTER_START)
            self._phase(self.plan.after, AFTER_PACKS)
            self.advance(60)

    def _phase(self, plans: tuple[LinePlan, ...], packs: int) -> None:
        for p in plans:
            self.version(p.run)
        for n in range(1, packs + 1):
            minute = (n * PACK_EVERY_S) // 60
            for p in plans:
                line = p.run.line
                # The chiller door open 3 minutes in every 20: a HACCP breach each time.
                self.feed(
                    TemperatureReading(
                        ts_us=self.clock.wall_us(), line=line, device=f"probes-{line}",
                        probe="P1", celsius=7.5 if minute % 20 < 3 else 2.5,
                        run_number=p.run.run_number,
                    )
                )  # fmt: skip
                self.pack(line, p.run, n)
                if n % 400 == 0:
                    self.counters[line] += 2
                    self.feed(
                        DeviceEvent(
                            ts_us=self.clock.wall_us(), device=f"cw-{line}", kind="missed_packs",
                            line=line, detail={"missed": 2, "previous": self.counters[line] - 2,
                                               "counter": self.counters[line] + 1},
                        )
                    )  # fmt: skip
            self.advance(PACK_EVERY_S)
        for p in plans:
            if p.ends:
                ended = dataclasses.replace(
                    p.run,
                    status=RunStatus.FINISHED,
                    actual_end=datetime.fromtimestamp(self.clock.wall_us() / 1e6, UTC),
                )
                self.version(ended)


async def write_store(plan: GatewayPlan, db_path: Path) -> None:
    """Play the gateway's day and write it into a new store at ``db_path``."""
    day = GatewayDay(plan)
    day.play()
    async with Store(StoreSection(path=db_path), ManualClock(wall_us=to_us(START))) as store:
        for record in day.records:
            store.submit(record)
        while store.pending_count:
            await store.commit_pending()


async def sync_store(plan: GatewayPlan, db_path: Path, warehouse: Warehouse) -> int:
    """Send the store's outbox to the warehouse as the uplink does (batches in priority
    order, each acknowledged only once committed); the records sent."""
    sent = 0
    async with Store(StoreSection(path=db_path), ManualClock(wall_us=to_us(START))) as store:
        outbox = Outbox(store, gateway=plan.gateway, site=plan.site)
        while (batch := await outbox.next_batch(500, 1_000_000)) is not None:
            ack = await warehouse.commit_batch(batch)
            assert not ack.conflicts, ack
            assert set(ack.committed) == set(batch_seqs(batch)), ack
            await outbox.acknowledge(batch_seqs(batch))
            sent += len(batch.records)
    return sent
