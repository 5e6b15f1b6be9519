"""Issue 16: each pack judged as the product it is; labels checked against that product."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.roles import LabelInterpreter
from gateway.config import RulesSection, ScannerTcpDevice
from gateway.core.clock import ManualClock
from gateway.core.codecs.gs1 import encode_element_string, gtin_check_digit
from gateway.core.records import (
    AlertRecord,
    DeviceEvent,
    EmarkBatchRecord,
    LabelScan,
    PackEvent,
    Record,
    RecordFlag,
)
from gateway.core.runs import Product, ProductionRun, RunStatus, Tier
from gateway.rules_engine import RulesEngine, run_context
from gateway.runs import RunIndex, to_us
from rules.products import decide

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
PACK_DATE = date(2026, 11, 23)


def gtin(body: str) -> str:
    return body + str(gtin_check_digit(body))


FIXED_GTIN = gtin("0501234500042")
CATCH_GTIN = gtin("9501234500049")  # indicator 9: a variable-measure trade item
BATCH = "B2611-SAL-07"
RUN = ProductionRun(
    run_number="R200",
    line="L2",
    batch_codes=(BATCH,),
    description="SALMON FILLETS",
    species="salmon",
    product_type="fillet",
    products=(
        Product(
            plu="42400",
            description="GG SALMON 400G",
            nominal_g=Decimal(400),
            tier=Tier.GG,
            gtin=FIXED_GTIN,
        ),
        Product(
            plu="49001",
            description="SALMON FAMILY PACK",
            nominal_g=None,
            tier=Tier.GG,
            catch_weight=True,
            gtin=CATCH_GTIN,
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
CONTEXT = run_context(RUN, RulesSection())
SCANNER = ScannerTcpDevice(
    id="scan2", kind="scanner_tcp", line="L2", role="label_scanner", host="127.0.0.1", port=1
)


def pack(**fields: object) -> PackEvent:
    base: dict[str, object] = {
        "ts_us": to_us(START),
        "line": "L2",
        "device": "cw2",
        "net_g": 402.0,
        "run_number": "R200",
    }
    return PackEvent(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "plu", "source"),
    [
        ({"program": "12"}, "42400", "device"),
        ({"program": "13", "nominal_g": 400.0}, "49001", "device"),  # the device wins
        ({"nominal_g": 400.0}, "42400", "nominal"),
        ({"nominal_g": 0.0}, "49001", "nominal"),  # no nominal quantity: catch weight
        ({"catch_weight": True}, "49001", "only_product"),
        ({"catch_weight": False}, "42400", "only_product"),
    ],
)
def test_the_product_from_the_best_source(fields: dict[str, object], plu: str, source: str) -> None:
    decision = decide(pack(**fields), CONTEXT, {"12": "42400", "13": "49001"})
    assert (decision.plu, decision.source) == (plu, source)


def test_a_pack_nothing_decides_is_not_given_a_guess() -> None:
    assert decide(pack(), CONTEXT, {}).plu is None
    assert decide(pack(program="99"), CONTEXT, {"12": "42400"}).plu is None
    assert decide(pack(nominal_g=250.0), CONTEXT, {}).plu is None


class Line:
    """A changeover on L2 through the engine, as the pipeline feeds it."""

    def __init__(self) -> None:
        self.clock = ManualClock(wall_us=to_us(START))
        self.engine = RulesEngine(RulesSection(), RunIndex([RUN]), self.clock, label_lines={"L2"})
        self.labels = LabelInterpreter(SCANNER, {})
        self.out: list[Record] = []
        self.counter = 0

    def feed(self, record: Record) -> None:
        if isinstance(record, PackEvent):
            record = self.engine.decide_product(record)
        self.out += self.engine.evaluate(record)

    def pack(self, net_g: float, *, nominal_g: float | None, label_gtin: str | None) -> None:
        self.counter += 1
        now = self.clock.wall_us()
        self.feed(
            pack(
                ts_us=now,
                net_g=net_g,
                nominal_g=nominal_g,
                pack_counter=self.counter,
                label_seq=self.counter,
                accepted=True,
            )
        )
        if label_gtin is not None:
            grams = 400 if label_gtin == FIXED_GTIN else round(net_g)
            raw = encode_element_string(
                [
                    ("01", label_gtin),
                    ("10", BATCH),
                    ("13", PACK_DATE.strftime("%y%m%d")),
                    ("17", (PACK_DATE + timedelta(days=9)).strftime("%y%m%d")),
                    ("21", str(self.counter)),
                    ("3103", f"{grams:06d}"),
                ]
            )
            scan = self.labels.read(raw.encode(), now)
            assert isinstance(scan, LabelScan), scan
            self.feed(dataclasses.replace(scan, run_number="R200"))
        self.clock.advance(1)
        self.out += self.engine.tick()

    def alerts(self) -> list[AlertRecord]:
        return [r for r in self.out if isinstance(r, AlertRecord)]


def test_old_labels_after_a_changeover_are_three_wrong_label_findings_and_nothing_else() -> None:
    line = Line()
    for i in range(30):
        line.pack(401.0 + (i % 3), nominal_g=400.0, label_gtin=FIXED_GTIN)
    line.feed(
        DeviceEvent(
            ts_us=line.clock.wall_us(),
            device="cw2",
            line="L2",
            kind="changeover",
            detail={"source": "device", "active": True},
        )
    )
    for i in range(20):
        old = i < 3  # the labeller keeps printing the previous product for 3 packs
        line.pack(600.0 + i * 7, nominal_g=0.0, label_gtin=FIXED_GTIN if old else CATCH_GTIN)

    wrong = [a for a in line.alerts() if a.rule == "label_product"]
    assert [a.state for a in wrong] == ["raised"] * 3
    assert all(a.severity == "critical" for a in wrong)
    assert [a.subject for a in wrong] == ["L2/R200/31", "L2/R200/32", "L2/R200/33"]
    assert "is for 42400" in wrong[0].message
    assert "the line packs 49001" in wrong[0].message
    assert {a.rule for a in line.alerts()} == {"label_product"}, "no other alert"
    # The changeover closed the fixed-weight batch with exactly its 30 packs; the catch
    # weight packs made none.
    (batch,) = [r for r in line.out if isinstance(r, EmarkBatchRecord)]
    assert (batch.plu, batch.n) == ("42400", 30)
    assert line.engine.emark.open_batches() == ()
    assert ("R200", "49001") not in line.engine.giveaway


def test_a_pack_only_its_label_can_decide_waits_for_it() -> None:
    line = Line()
    line.pack(402.0, nominal_g=None, label_gtin=None)  # two products fit; no label yet
    assert line.engine.awaiting_label
    scan = encode_element_string(
        [("01", CATCH_GTIN), ("10", BATCH), ("21", "1"), ("3103", "000402")]
    )
    read = line.labels.read(scan.encode(), line.clock.wall_us())
    assert isinstance(read, LabelScan)
    line.feed(dataclasses.replace(read, run_number="R200"))
    (decided,) = [r for r in line.out if isinstance(r, DeviceEvent) and r.kind == "pack_product"]
    assert (decided.detail["plu"], decided.detail["source"]) == ("49001", "label")
    assert not line.engine.awaiting_label


def test_a_pack_whose_label_never_comes_is_product_unknown() -> None:
    line = Line()
    line.pack(402.0, nominal_g=None, label_gtin=None)
    line.clock.advance(31)
    line.out += line.engine.tick()
    (decided,) = [r for r in line.out if isinstance(r, DeviceEvent) and r.kind == "pack_product"]
    assert decided.detail["plu"] is None
    assert "not read within 30 s" in str(decided.detail["reason"])
    assert line.engine.packs_without_product["L2"] == 1


def test_without_a_label_scanner_an_undecided_pack_is_flagged_at_once() -> None:
    engine = RulesEngine(RulesSection(), RunIndex([RUN]), ManualClock(wall_us=to_us(START)))
    decided = engine.decide_product(pack(label_seq=5))
    assert decided.flags & RecordFlag.PRODUCT_UNKNOWN
    assert decided.plu is None
