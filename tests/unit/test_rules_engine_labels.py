"""Label gaps through the rules engine: each gap its own alert, and a gap printed while the
scanner or the gateway was down says so, worked out from the records alone."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from adapters.roles import LabelInterpreter
from gateway.config import RulesSection, ScannerTcpDevice
from gateway.core.clock import ManualClock
from gateway.core.codecs.gs1 import encode_element_string, gtin_check_digit
from gateway.core.records import (
    AlertRecord,
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    RejectedInput,
)
from gateway.core.runs import Product, ProductionRun, RunStatus, Tier
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex, to_us

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
PACK_DATE = date(2026, 11, 23)
GTIN = "0" + "501234500001" + str(gtin_check_digit("0501234500001"))
BATCH = "B2611-SAL-07"
RUN = ProductionRun(
    run_number="R100",
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


class Line:
    """Records in store order through one engine, as the pipeline (or a replay) feeds them."""

    def __init__(self) -> None:
        self.clock = ManualClock(wall_us=to_us(START))
        self.engine = RulesEngine(RulesSection(), RunIndex([RUN]), self.clock)
        self.interpreter = LabelInterpreter(SCANNER, {})
        self.records: list[Record] = []
        self.out: list[AlertRecord] = []

    def feed(self, record: Record) -> None:
        self.records.append(record)
        self.out += [r for r in self.engine.evaluate(record) if isinstance(r, AlertRecord)]

    def pack_and_label(self, numbers: range | list[int], *, scanned: bool = True) -> None:
        """Packs labelled with ``numbers``, one a second; read by the scanner if ``scanned``."""
        for n in numbers:
            now = self.clock.wall_us()
            self.feed(
                PackEvent(
                    ts_us=now,
                    line="L1",
                    device="cw1",
                    net_g=243.0,
                    pack_counter=n,
                    label_seq=n,
                    nominal_g=240.0,
                    accepted=True,
                    run_number="R100",
                )
            )
            if scanned:
                self.feed(self.scan(n, now))
            self.clock.advance(1)

    def scan(self, n: int, now: int, batch: str = BATCH) -> LabelScan:
        raw = encode_element_string(
            [
                ("01", GTIN),
                ("10", batch),
                ("13", PACK_DATE.strftime("%y%m%d")),
                ("17", (PACK_DATE + timedelta(days=9)).strftime("%y%m%d")),
                ("21", str(n)),
                ("3103", "000240"),
            ]
        )
        scan = self.interpreter.read(raw.encode(), now)
        assert isinstance(scan, LabelScan), scan
        return dataclasses.replace(scan, run_number="R100")  # joined by the pipeline

    def event(self, kind: str, device: str = "scan1", **detail: object) -> None:
        self.feed(
            DeviceEvent(
                ts_us=self.clock.wall_us(), device=device, kind=kind, line="L1", detail=detail
            )
        )

    def gap_alerts(self) -> list[AlertRecord]:
        return [r for r in self.out if r.rule == "label_gap"]


def test_a_scanner_outage_gap_is_a_second_alert_and_the_earlier_one_is_unchanged() -> None:
    line = Line()
    line.pack_and_label(range(229, 232))
    line.pack_and_label(range(232, 235), scanned=False)  # the labeller's own gap
    line.pack_and_label(range(235, 240))
    [real] = line.gap_alerts()
    assert (real.state, real.subject) == ("raised", "scan1/R100/232")
    assert real.message == "scan1/R100: label numbers 232, 233, 234 missing"
    assert real.detail["likely_cause"] is None

    line.event("link_down", error="scanner closed the connection")  # 06:00:11
    line.pack_and_label(range(240, 265), scanned=False)  # printed, never read
    line.event("link_up", down_for_s=25.0)  # 06:00:36
    line.pack_and_label(range(265, 270))

    first, outage = line.gap_alerts()
    assert first is real, "the earlier gap's alert had no further transition"
    assert (outage.state, outage.subject) == ("raised", "scan1/R100/240")
    assert outage.alert_id != real.alert_id
    assert outage.message == (
        "scan1/R100: label numbers 240–264 missing: printed while scanner scan1 was offline "
        "06:00:11–06:00:36 UTC, not scanned"
    )
    cause = outage.detail["likely_cause"]
    assert cause["kind"] == "device_offline"
    assert (cause["start_us"], cause["end_us"]) == (
        to_us(START) + 11_000_000,
        to_us(START) + 36_000_000,
    )
    active = {a.subject: a.message for a in line.engine.book.active("L1") if a.rule == "label_gap"}
    assert active == {"scan1/R100/232": real.message, "scan1/R100/240": outage.message}
    # The labels themselves are judged as before: nothing wrong with them.
    assert {r.rule for r in line.out} == {"label_gap"}
    # A wrong batch after the outage is still caught on its own label.
    line.feed(line.scan(270, line.clock.wall_us(), batch="B2611-XXX-01"))
    assert [r.rule for r in line.out[-1:]] == ["label_batch"]


def test_a_gateway_restart_gap_names_the_restart() -> None:
    line = Line()
    line.pack_and_label(range(1, 6))  # the last record at 06:00:04
    # The gateway goes away unannounced; the line packs 6..39 meanwhile. At its start the
    # gateway feeds the stored records back, then evaluates its own gateway_started event.
    line.clock.advance(40)
    line.event("gateway_started", device="gateway", version="x")  # 06:00:45
    line.event("link_up", endpoint="127.0.0.1:1")  # the first connection: no outage
    line.pack_and_label(range(40, 46))
    [gap] = line.gap_alerts()
    assert gap.subject == "scan1/R100/6"
    assert gap.message == (
        "scan1/R100: label numbers 6–39 missing: printed while the gateway was down "
        "06:00:04–06:00:45 UTC (restart), not scanned"
    )
    assert gap.detail["likely_cause"]["kind"] == "gateway_down"
    assert gap.detail["likely_cause"]["planned"] is False


def test_the_same_records_again_give_the_same_gaps() -> None:
    """A restart rebuilds the rules from the stored records: the outages must come from them
    alone (their timestamps), never from the clock."""
    line = Line()
    line.pack_and_label(range(1, 4))
    line.pack_and_label(range(4, 6), scanned=False)
    line.pack_and_label(range(6, 11))
    line.event("link_down", error="gone")
    line.pack_and_label(range(11, 30), scanned=False)
    line.event("link_up", down_for_s=19.0)
    line.pack_and_label(range(30, 35))
    line.clock.advance(10)
    line.event("gateway_stopped", device="gateway", reason="signal")
    line.clock.advance(10)
    line.event("gateway_started", device="gateway")
    line.pack_and_label(range(60, 66))
    assert len(line.gap_alerts()) == 3

    replay = RulesEngine(RulesSection(), RunIndex([RUN]), ManualClock(wall_us=0))
    again = [
        r for record in line.records for r in replay.evaluate(record) if isinstance(r, AlertRecord)
    ]
    assert [(r.rule, r.state, r.subject, r.message, r.detail) for r in again] == [
        (r.rule, r.state, r.subject, r.message, r.detail) for r in line.out
    ]
    causes = [r.detail["likely_cause"] for r in again]
    assert [c and (c["kind"], c["planned"]) for c in causes] == [
        None,
        ("device_offline", False),
        ("gateway_down", True),
    ]


def test_a_late_read_clears_only_its_own_gap_once_all_of_it_is_found() -> None:
    line = Line()
    line.pack_and_label(range(1, 4))
    line.pack_and_label(range(4, 6), scanned=False)
    line.pack_and_label(range(6, 10))
    line.pack_and_label(range(10, 13), scanned=False)
    line.pack_and_label(range(13, 18))
    first, second = line.gap_alerts()
    assert (first.subject, second.subject) == ("scan1/R100/4", "scan1/R100/10")

    line.feed(line.scan(4, line.clock.wall_us()))  # found on a rework table
    [update] = line.gap_alerts()[2:]
    assert (update.alert_id, update.state) == (first.alert_id, "updated")
    assert update.detail["missing"] == [5]
    line.feed(line.scan(5, line.clock.wall_us()))
    [clear] = line.gap_alerts()[3:]
    assert (clear.alert_id, clear.state) == (first.alert_id, "cleared")
    active = [a for a in line.engine.book.active("L1") if a.rule == "label_gap"]
    assert [(a.id, a.message) for a in active] == [(second.alert_id, second.message)]


def test_acknowledging_one_gap_leaves_the_other() -> None:
    line = Line()
    line.pack_and_label(range(1, 4))
    line.pack_and_label([4], scanned=False)
    line.pack_and_label(range(5, 10))
    line.pack_and_label([10], scanned=False)
    line.pack_and_label(range(11, 16))
    first, second = line.gap_alerts()
    line.engine.acknowledge(first.alert_id, "Ann", "label 4 found in the bin")
    active = [a.id for a in line.engine.book.active("L1") if a.rule == "label_gap"]
    assert active == [second.alert_id]


def test_a_label_read_but_invalid_is_its_own_finding_and_never_missing() -> None:
    """Issue 16: a label rejected for a bad check digit, inside a sequence with a real gap
    of two: the gap lists exactly those two, and the invalid read is a finding of its own."""
    line = Line()
    line.pack_and_label(range(70058, 70061))
    bad_gtin = GTIN[:-1] + str((int(GTIN[-1]) + 1) % 10)  # a wrong check digit
    raw = encode_element_string(
        [("01", bad_gtin), ("10", BATCH), ("21", "70061"), ("3103", "000240")]
    )
    rejection = line.interpreter.read(raw.encode(), line.clock.wall_us())
    assert isinstance(rejection, RejectedInput)
    assert (rejection.reason, rejection.serial) == ("gs1_bad_check_digit", "70061")
    line.feed(rejection)
    line.clock.advance(1)
    line.pack_and_label(range(70062, 70151))
    line.pack_and_label(range(70151, 70153), scanned=False)
    line.pack_and_label(range(70153, 70160))

    [gap] = line.gap_alerts()
    assert gap.detail["missing"] == [70151, 70152]
    [invalid] = [r for r in line.out if r.rule == "label_invalid"]
    assert invalid.state == "raised"
    assert "70061" in invalid.message
    assert "bad_check_digit" in invalid.message
    assert {r.rule for r in line.out} == {"label_gap", "label_invalid"}
