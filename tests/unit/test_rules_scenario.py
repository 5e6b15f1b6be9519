"""A recorded stretch of a shift through the gateway's rules engine: the exact alerts, in order.

The sequence: a salmon 240 g run packing on weight, then drifting underweight until a pack
falls below T2; a probe excursion shorter than the debounce and one longer; labels with a gap
of three; a label with the wrong use-by date.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from adapters.roles import LabelInterpreter
from gateway.config import ProbeRules, RulesSection, ScannerTcpDevice
from gateway.core.clock import ManualClock
from gateway.core.codecs.gs1 import encode_element_string, gtin_check_digit
from gateway.core.records import (
    AlertRecord,
    EmarkBatchRecord,
    LabelScan,
    PackEvent,
    Record,
    TemperatureReading,
)
from gateway.core.runs import Product, ProductionRun, RunStatus, Tier
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex, to_us

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
PACK_DATE = date(2026, 11, 23)
GTIN = "0" + "501234500001" + str(gtin_check_digit("0501234500001"))
RUN = ProductionRun(
    run_number="R100",
    line="L1",
    batch_codes=("B2611-SAL-07",),
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


class Shift:
    """Drives the engine as the pipeline would, on a manual clock."""

    def __init__(self) -> None:
        self.clock = ManualClock(wall_us=to_us(START))
        config = RulesSection(
            probes=(ProbeRules(device="probes", probe="P1", upper_c=5.0, debounce_s=60),),
        )
        self.engine = RulesEngine(config, RunIndex([RUN]), self.clock)
        self.labels = LabelInterpreter(SCANNER, {})
        self.out: list[Record] = []
        self.counter = 0

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.out += self.engine.tick()

    def pack(self, net_g: float) -> None:
        self.counter += 1
        self.feed(
            PackEvent(
                ts_us=self.clock.wall_us(),
                line="L1",
                device="cw1",
                net_g=net_g,
                pack_counter=self.counter,
                label_seq=self.counter,
                nominal_g=240.0,
                accepted=True,
                run_number="R100",
            )
        )

    def label(self, serial: int, use_by: date | None = None) -> None:
        use_by = use_by or PACK_DATE + timedelta(days=9)
        raw = encode_element_string(
            [
                ("01", GTIN),
                ("10", "B2611-SAL-07"),
                ("13", PACK_DATE.strftime("%y%m%d")),
                ("17", use_by.strftime("%y%m%d")),
                ("21", str(serial)),
                ("3103", "000240"),
            ]
        )
        scan = self.labels.read(raw.encode(), self.clock.wall_us())
        assert isinstance(scan, LabelScan), scan
        # The pipeline joins the scan to its run before the rules see it.
        self.feed(dataclasses.replace(scan, run_number="R100"))

    def temperature(self, celsius: float) -> None:
        self.feed(
            TemperatureReading(
                ts_us=self.clock.wall_us(),
                line="L1",
                device="probes",
                probe="P1",
                celsius=celsius,
                run_number="R100",
            )
        )

    def feed(self, record: Record) -> None:
        """The engine takes a record, as the pipeline hands it over."""
        self.out += self.engine.evaluate(record)

    def alerts(self) -> list[tuple[str, str, str]]:
        return [(r.rule, r.state, str(r.severity)) for r in self.out if isinstance(r, AlertRecord)]


def test_recorded_shift_gives_the_exact_alerts_in_order() -> None:
    shift = Shift()
    # Packing on weight, every pack labelled in sequence; the probe well inside its limit.
    for _ in range(20):
        shift.pack(243.0)
        shift.label(shift.counter)
        shift.temperature(3.0)
        shift.advance(2)
    assert shift.alerts() == []
    # Underweight drift: the running mean slides below Qn, then a pack below T2 (222 g).
    for _ in range(30):
        shift.pack(235.0)
        shift.label(shift.counter)
        shift.advance(2)
    shift.pack(220.0)
    shift.label(shift.counter)
    # A probe excursion shorter than the debounce (30 s): nothing.
    shift.temperature(6.5)
    shift.advance(30)
    shift.temperature(3.0)
    shift.advance(10)
    # One longer than the debounce (90 s): one CRITICAL, cleared once back inside by 0.5 °C.
    shift.temperature(6.5)
    for _ in range(9):
        shift.advance(10)
        shift.temperature(6.5)
    shift.temperature(4.8)  # inside the limit but within the hysteresis: still in breach
    shift.advance(5)
    shift.temperature(4.0)
    # Labels jump by four: 3 numbers missing; the reorder window passes.
    last = shift.counter
    for serial in (last + 4, last + 5, last + 6, last + 7, last + 8):
        shift.label(serial)
    # A label printed with tomorrow's use-by: a recall if it leaves.
    shift.label(last + 9, use_by=PACK_DATE + timedelta(days=10))

    assert shift.alerts() == [
        ("emark_mean", "raised", "warning"),
        ("emark_t2", "raised", "critical"),
        # The running mean went on sliding: published again once, a minute after the raise
        # (a measured value's hold-off), with the mean of that moment (issue 17).
        ("emark_mean", "updated", "warning"),
        ("haccp_upper", "raised", "critical"),
        ("haccp_upper", "cleared", "critical"),
        ("label_gap", "raised", "warning"),
        ("shelf_life_use_by", "raised", "critical"),
    ]
    gap = next(r for r in shift.out if isinstance(r, AlertRecord) and r.rule == "label_gap")
    assert gap.detail["missing"] == [last + 1, last + 2, last + 3]
    t2 = next(r for r in shift.out if isinstance(r, AlertRecord) and r.rule == "emark_t2")
    assert t2.detail["pack_id"] == "cw1#51"
    assert t2.detail["config"] == {"emark_batch_minutes": 60.0, "emark_min_packs": 10}
    assert "Action: Pull the named pack(s)" in t2.message
    mean = [r for r in shift.out if isinstance(r, AlertRecord) and r.rule == "emark_mean"]
    assert "running mean 239.848 g" in mean[0].message
    assert "running mean 237.843 g" in mean[1].message
    assert mean[1].detail["value"] == 237.843
    [live] = [a for a in shift.engine.book.active("L1") if a.rule == "emark_mean"]
    assert live.message == mean[1].message, "the packs after the update moved it too little"
    assert shift.engine.andon("L1") == "red"


def test_latched_label_alert_clears_when_acknowledged() -> None:
    shift = Shift()
    shift.pack(241.0)
    shift.label(1, use_by=PACK_DATE + timedelta(days=30))
    [raised] = [r for r in shift.out if isinstance(r, AlertRecord)]
    assert (raised.rule, raised.state) == ("shelf_life_use_by", "raised")
    assert shift.engine.andon("L1") == "red"
    after = shift.engine.acknowledge(raised.alert_id, "Ann", "pack pulled, relabelled")
    assert [(r.state) for r in after if isinstance(r, AlertRecord)] == ["acknowledged", "cleared"]
    assert shift.engine.andon("L1") == "green"


def test_run_compliance_through_the_engine() -> None:
    gg_run = dataclasses.replace(
        RUN,
        extra={"BatchTiers": {"B2611-SAL-07": "GG"}, "BatchSpecies": {"B2611-SAL-07": "Trout"}},
        actual_end=START + timedelta(hours=2),
        status=RunStatus.FINISHED,
    )
    clock = ManualClock(wall_us=to_us(START + timedelta(hours=3)))
    engine = RulesEngine(RulesSection(), RunIndex([gg_run]), clock)
    for i in range(100):  # 24 kg packed from 500 kg of fish: 4.8 % yield
        engine.evaluate(
            PackEvent(
                ts_us=to_us(START) + i,
                line="L1",
                device="cw1",
                net_g=240.0,
                nominal_g=240.0,
                run_number="R100",
            )
        )
    rules = {
        (r.rule, r.state, str(r.severity)) for r in engine.tick() if isinstance(r, AlertRecord)
    }
    assert {
        ("compliance_gg_in_premium", "raised", "critical"),
        ("compliance_species_mismatch", "raised", "critical"),
        ("compliance_yield", "raised", "warning"),
    } <= rules


def alert_rows(records: list[Record]) -> list[tuple[object, ...]]:
    """Alert transitions as the store keeps them (the rows ``RulesEngine.restore`` reads)."""
    return [
        (
            r.ts_us,
            r.alert_id,
            r.rule,
            r.subject,
            r.line,
            r.severity,
            r.state,
            r.message,
            json.dumps(r.detail),
        )
        for r in records
        if isinstance(r, AlertRecord)
    ]


class Restartable(Shift):
    """A shift whose engine can be replaced by a restarted one, as the service does it."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[Record] = []
        self.config = self.engine.config

    def feed(self, record: Record) -> None:
        self.inputs.append(record)
        super().feed(record)

    def restart(self) -> list[Record]:
        engine = RulesEngine(self.config, RunIndex([RUN]), self.clock)
        engine.replay(self.inputs)
        recorded = {
            (r.line, r.run_number, r.plu, r.start_us)
            for r in self.out
            if isinstance(r, EmarkBatchRecord)
        }
        engine.resume(recorded)
        restored = engine.restore(alert_rows(self.out))
        self.engine = engine
        return restored


def drive(shift: Shift, steps: range) -> None:
    """Packs drifting low with labels and a probe excursion, one step a second."""
    for i in steps:
        shift.pack(236.0 if i % 7 else 229.0)  # mean below Qn; every 7th below T1
        shift.label(shift.counter)
        shift.temperature(7.0 if 10 <= i < 25 else 3.0)  # an excursion before the restart
        shift.advance(5)


def test_a_restart_mid_batch_rebuilds_the_batch_and_raises_nothing_new() -> None:
    straight = Shift()
    drive(straight, range(60))
    straight.out += straight.engine.set_line_mode("L1", "changeover")

    restarted = Restartable()
    drive(restarted, range(30))
    assert restarted.restart() == [], "nothing is cleared or raised at the restart itself"
    drive(restarted, range(30, 60))
    restarted.out += restarted.engine.set_line_mode("L1", "changeover")

    def batches(shift: Shift) -> list[EmarkBatchRecord]:
        return [
            dataclasses.replace(r, ts_us=0) for r in shift.out if isinstance(r, EmarkBatchRecord)
        ]

    def transitions(shift: Shift) -> list[tuple[str, str, str, str]]:
        return [
            (r.rule, r.subject, r.state, r.message) for r in shift.out if isinstance(r, AlertRecord)
        ]

    (record,) = batches(straight)
    assert record.n == 60
    assert record.verdict == "fail"
    assert batches(restarted) == [record], "the packer's record covers the whole batch"
    assert transitions(restarted) == transitions(straight)


def test_a_restart_keeps_latched_alerts_and_the_conditions_still_holding() -> None:
    shift = Restartable()
    for _ in range(12):
        shift.pack(236.0)  # below Qn: emark_mean raised
        shift.advance(1)
    shift.label(1, use_by=PACK_DATE + timedelta(days=30))  # latching: wrong use-by
    assert shift.restart() == []
    assert sorted(a.rule for a in shift.engine.book.active()) == [
        "emark_mean",
        "shelf_life_use_by",
    ]
    (batch,) = shift.engine.emark.open_batches()
    assert batch.n == 12


def test_a_probe_excursion_spanning_a_restart_says_how_long_was_unobserved() -> None:
    shift = Restartable()
    for _ in range(3):
        shift.temperature(7.0)  # beyond 5 °C, debounce 60 s not reached yet
        shift.advance(10)
    shift.clock.advance(40)  # the gateway is down for 40 s
    shift.restart()
    # The held value still counts (no_data_s has not passed): the debounce ends, and the
    # breach says that the 50 s since the last reading before the restart went unseen.
    (raised,) = [r for r in shift.engine.tick() if isinstance(r, AlertRecord)]
    assert raised.rule == "haccp_upper"
    assert raised.state == "raised"
    assert "began before a gateway restart, 50 s of it unobserved" in raised.message
    assert raised.detail["unobserved_s"] == 50
    assert raised.detail["excursion_start_us"] == to_us(START)
    shift.advance(250)
    assert [r for r in shift.out if isinstance(r, AlertRecord) and "sensor" in r.rule] == [], (
        "the downtime is no probe silence"
    )
