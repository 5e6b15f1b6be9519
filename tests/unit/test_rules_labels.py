"""Label sequence (gaps, reorder window, duplicates, baseline) and label content checks."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.records import DeviceEvent, LabelScan, PackEvent, Record, RejectedInput
from gateway.runs import to_us
from rules.labels import (
    RULE_BATCH,
    RULE_DUPLICATE,
    RULE_GAP,
    RULE_OUT_OF_SEQUENCE,
    RULE_WEIGHT,
    LabelSequenceMonitor,
    check_label_content,
    label_subject,
    sequence_number,
)
from rules.model import Finding, Product, RunContext, Severity, Tier
from rules.outages import DEVICE_OFFLINE, GATEWAY_DOWN, OutageLog


def run_numbers(
    numbers: list[int], *, window: int = 3, max_gap: int = 1000
) -> tuple[LabelSequenceMonitor, list[Finding]]:
    mon = LabelSequenceMonitor("lab1", "R42", line="L1", reorder_window=window, max_gap=max_gap)
    findings: list[Finding] = []
    for i, seq in enumerate(numbers):
        findings.extend(mon.observe_number(seq, 1_000 * i))
    return mon, findings


def brief(findings: list[Finding]) -> list[tuple[str, bool, object]]:
    out: list[tuple[str, bool, object]] = []
    for f in findings:
        key = {
            RULE_GAP: "new_missing",
            RULE_DUPLICATE: "seq",
            RULE_OUT_OF_SEQUENCE: "seq",
        }[f.rule]
        out.append((f.rule, f.active, f.detail[key]))
    return out


SEQUENCES = [
    pytest.param(list(range(1, 11)), 3, [], id="in-order"),
    pytest.param([1000, 1001, 1002], 3, [], id="baseline-from-first-number"),
    pytest.param(
        [1, 2, 3, 7, 8, 9, 10, 11], 3, [(RULE_GAP, True, [4, 5, 6])], id="gap-of-3-exact-numbers"
    ),
    pytest.param([1, 2, 4, 5, 3, 6, 7, 8, 9], 3, [], id="reorder-within-window"),
    pytest.param([1, 2, 4, 5, 6, 3, 7, 8], 3, [], id="reorder-at-window-edge"),
    pytest.param(
        [1, 2, 4, 5, 6, 7, 3],
        3,
        [(RULE_GAP, True, [3]), (RULE_GAP, False, [])],
        id="late-beyond-window-reported-then-found",
    ),
    pytest.param([1, 3], 0, [(RULE_GAP, True, [2])], id="window-0-reports-at-once"),
    pytest.param([1, 2, 3, 2], 3, [(RULE_DUPLICATE, True, 2)], id="duplicate"),
    pytest.param([1, 2, 2, 3], 3, [(RULE_DUPLICATE, True, 2)], id="duplicate-of-last"),
    pytest.param([5, 5], 3, [(RULE_DUPLICATE, True, 5)], id="duplicate-of-baseline"),
    pytest.param([5, 6, 4, 7, 8, 9], 3, [], id="late-read-just-below-baseline"),
    pytest.param(
        [5, 6, 3, 7, 8, 9, 10], 3, [(RULE_GAP, True, [4])], id="below-baseline-opens-a-gap"
    ),
    pytest.param([10, 11, 2, 12], 3, [(RULE_OUT_OF_SEQUENCE, True, 2)], id="far-below-baseline"),
    pytest.param(
        [1, 2, 5000, 3], 3, [(RULE_OUT_OF_SEQUENCE, True, 5000)], id="jump-beyond-max-gap-ignored"
    ),
    pytest.param(
        [1, 3, 5, 9, 10, 11, 12],
        3,
        [(RULE_GAP, True, [2]), (RULE_GAP, True, [4]), (RULE_GAP, True, [6, 7, 8])],
        id="each-gap-is-its-own-finding",
    ),
]


@pytest.mark.parametrize(("numbers", "window", "expected"), SEQUENCES)
def test_sequence_table(
    numbers: list[int], window: int, expected: list[tuple[str, bool, object]]
) -> None:
    _, findings = run_numbers(numbers, window=window)
    assert brief(findings) == expected
    assert all(f.severity is Severity.WARNING for f in findings)
    for f in findings:
        if f.rule == RULE_GAP:
            # Each gap its own subject: the device, the run and the gap's first number.
            assert f.subject == f"lab1/R42/{f.detail['first']}"
        else:
            assert f.subject == "lab1/R42"


def test_a_gap_lists_the_exact_missing_numbers() -> None:
    mon, findings = run_numbers([1, 2, 3, 7, 8, 9])
    assert findings == []
    assert list(mon.pending) == [4, 5, 6]
    [gap] = mon.observe_number(10, 99)
    assert gap.rule == RULE_GAP
    assert gap.active
    assert gap.detail["missing"] == [4, 5, 6]
    assert gap.detail["missing_count"] == 3
    assert gap.ts_us == 99
    assert gap.line == "L1"
    assert "4, 5, 6" in gap.message
    assert mon.missing == (4, 5, 6)
    assert not mon.pending
    assert mon.expected_next == 11


def test_each_gap_shrinks_on_its_own_as_late_reads_turn_up() -> None:
    mon, findings = run_numbers([1, 3, 4, 5, 6, 8, 9, 10, 11])
    assert [(f.subject, f.detail["missing"]) for f in findings] == [
        ("lab1/R42/2", [2]),
        ("lab1/R42/7", [7]),
    ]
    assert mon.missing == (2, 7)
    assert mon.gap_subjects == ("lab1/R42/2", "lab1/R42/7")
    [clear] = mon.observe_number(2, 0)
    assert (clear.subject, clear.active) == ("lab1/R42/2", False)
    assert clear.detail["missing"] == []
    assert clear.detail["found_late"] == [2]
    assert list(mon.missing) == [7]
    [clear] = mon.observe_number(7, 0)
    assert (clear.subject, clear.active) == ("lab1/R42/7", False)
    # Read once more, 7 is now a duplicate.
    [dup] = mon.observe_number(7, 0)
    assert dup.rule == RULE_DUPLICATE


def test_a_late_read_updates_only_its_own_gap() -> None:
    mon, findings = run_numbers([1, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18])
    assert [f.detail["missing"] for f in findings] == [[2, 3, 4], [11, 12, 13]]
    [update] = mon.observe_number(3, 0)
    assert (update.subject, update.active) == ("lab1/R42/2", True)
    assert update.detail["missing"] == [2, 4]
    assert update.detail["first"] == 2
    assert update.detail["last"] == 4
    assert "still missing 2, 4" in update.message
    assert mon.observe_number(2, 0)[0].active
    [clear] = mon.observe_number(4, 0)
    assert (clear.subject, clear.active) == ("lab1/R42/2", False)
    assert mon.missing == (11, 12, 13)
    assert mon.gap_subjects == ("lab1/R42/11",)


def test_a_counter_reset_does_not_reuse_an_open_gap_subject() -> None:
    mon, findings = run_numbers([1, 3, 4, 5, 6])
    mon.rebaseline()
    for seq in (1, 3, 4, 5, 6):
        findings += mon.observe_number(seq, 0)
    assert [f.subject for f in findings] == ["lab1/R42/2", "lab1/R42/2#2"]


def test_close_reports_what_is_still_pending() -> None:
    mon, findings = run_numbers([1, 2, 5])
    assert findings == []
    [gap] = mon.close(5)
    assert gap.detail["missing"] == [3, 4]
    assert mon.close(6) == []


def test_rebaseline_after_a_reset() -> None:
    mon, _ = run_numbers([100, 101, 102])
    mon.rebaseline()
    assert mon.observe_number(1, 0) == []
    assert mon.observe_number(2, 0) == []
    assert mon.baseline == 1


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        pytest.param("000123", 123, id="leading-zeros"),
        pytest.param("7", 7, id="one-digit"),
        pytest.param("A123", None, id="letters"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
        pytest.param("١٢٣", None, id="non-ascii-digits"),
    ],
)
def test_sequence_number_from_ai21(serial: str | None, expected: int | None) -> None:
    assert sequence_number(serial) == expected


def scan(**kw: object) -> LabelScan:
    fields: dict[str, object] = {
        "ts_us": 5_000,
        "line": "L1",
        "device": "sc1",
        "raw": b"]C101095060001343521000042\x1d10SAL/2025/01",
        "gtin": "09506000134352",
        "batch": "SAL/2025/01",
        "use_by": "2025-03-12",
        "pack_date": "2025-03-03",
        "serial": "000042",
        "net_weight_g": 385.0,
    }
    fields.update(kw)
    return LabelScan(**fields)  # type: ignore[arg-type]


def test_observe_scan_and_observe_pack_choose_the_input() -> None:
    mon = LabelSequenceMonitor("sc1", "R42")
    assert mon.observe_scan(scan(serial="000001"), 1) == []
    assert mon.observe_scan(scan(serial="LOT-X"), 2) == []
    assert mon.unsequenced == 1
    [dup] = mon.observe_scan(scan(serial="1"), 3)
    assert dup.rule == RULE_DUPLICATE
    assert dup.line == "L1"

    packs = LabelSequenceMonitor("cw1", "R42")
    found: list[Finding] = []
    for seq in (10, 11, 15, 16, 17, 18):
        pack = PackEvent(ts_us=seq, line="L2", device="cw1", net_g=240.0, label_seq=seq)
        found += packs.observe_pack(pack, seq)
    assert [f.detail["missing"] for f in found] == [[12, 13, 14]]
    assert found[0].line == "L2"
    assert packs.observe_pack(PackEvent(ts_us=0, line="L2", device="cw1", net_g=1.0), 0) == []
    assert packs.unsequenced == 1


@st.composite
def _reads(draw: st.DrawFn) -> tuple[list[int], set[int]]:
    """1..n with some inner numbers never read and some neighbours swapped."""
    n = draw(st.integers(min_value=3, max_value=200))
    removed = draw(st.sets(st.integers(min_value=2, max_value=n - 1), max_size=n // 2))
    kept = [i for i in range(1, n + 1) if i not in removed]
    swaps = draw(st.sets(st.integers(min_value=1, max_value=max(1, len(kept) - 2))))
    i = 1
    while i < len(kept) - 1:
        if i in swaps:
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
            i += 2
        else:
            i += 1
    return kept, removed


@given(reads=_reads(), window=st.integers(min_value=1, max_value=5))
def test_gaps_report_exactly_the_unread_numbers(
    reads: tuple[list[int], set[int]], window: int
) -> None:
    order, removed = reads
    mon, findings = run_numbers(order, window=window)
    findings += mon.close(10**6)
    assert {f.rule for f in findings} <= {RULE_GAP}
    reported = [n for f in findings for n in f.detail["new_missing"]]  # type: ignore[attr-defined]
    assert sorted(reported) == sorted(removed)
    assert len(reported) == len(set(reported))
    assert set(mon.missing) == removed


@given(numbers=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=100))
def test_duplicates_are_exactly_the_repeats(numbers: list[int]) -> None:
    _, findings = run_numbers(numbers, window=100)
    dups = [f.detail["seq"] for f in findings if f.rule == RULE_DUPLICATE]
    seen: set[int] = set()
    repeats: list[int] = []
    for n in numbers:
        if n in seen:
            repeats.append(n)
        seen.add(n)
    assert dups == repeats


# ------------------------------------------------------------------------------ content

PRODUCTS = (
    Product(plu="10120", nominal_g=None, tier=Tier.GG, catch_weight=True, gtin="09506000134352"),
    Product(plu="10240", nominal_g=Decimal(240), tier=Tier.GG, gtin="5060000000017"),
)
RUN = RunContext(
    run_number="R42",
    line="L1",
    batch_codes=("SAL/2025/01", "SAL/2025/02"),
    species="salmon",
    products=PRODUCTS,
    pack_date=date(2025, 3, 3),
)
TOL = Decimal(2)


CONTENT = [
    pytest.param({}, 385.0, [], id="good-label"),
    pytest.param({"batch": "SAL/2025/02"}, 385.0, [], id="second-batch-of-run"),
    pytest.param({"batch": "SAL/2025/99"}, 385.0, [(RULE_BATCH, "not_in_run")], id="foreign-batch"),
    pytest.param({"batch": "sal/2025/01"}, 385.0, [(RULE_BATCH, "not_in_run")], id="case-differs"),
    pytest.param({"batch": None}, 385.0, [(RULE_BATCH, "absent")], id="no-batch"),
    pytest.param({"batch": "  "}, 385.0, [(RULE_BATCH, "absent")], id="blank-batch"),
    pytest.param({"batch": "SAL 2025"}, 385.0, [(RULE_BATCH, "invalid")], id="space-not-cset82"),
    pytest.param({"batch": "X" * 21}, 385.0, [(RULE_BATCH, "invalid")], id="batch-too-long"),
    pytest.param({}, 387.0, [], id="weight-at-tolerance"),
    pytest.param({}, 387.5, [(RULE_WEIGHT, "checkweigher")], id="weight-beyond-tolerance"),
    pytest.param({}, 382.9, [(RULE_WEIGHT, "checkweigher")], id="label-heavier"),
    pytest.param({}, None, [], id="no-pack-weight"),
    pytest.param({"net_weight_g": None}, 385.0, [], id="no-label-weight"),
    pytest.param(
        {"batch": None},
        400.0,
        [(RULE_BATCH, "absent"), (RULE_WEIGHT, "checkweigher")],
        id="both-wrong",
    ),
    pytest.param(
        {"gtin": "05060000000017", "net_weight_g": 240.0}, 243.0, [], id="fixed-weight-declares-qn"
    ),
    pytest.param(
        {"gtin": "05060000000017", "net_weight_g": 250.0},
        250.0,
        [(RULE_WEIGHT, "nominal")],
        id="fixed-weight-not-qn",
    ),
]


@pytest.mark.parametrize(("fields", "pack_g", "expected"), CONTENT)
def test_label_content_table(
    fields: dict[str, object], pack_g: float | None, expected: list[tuple[str, str]]
) -> None:
    findings = check_label_content(scan(**fields), RUN, pack_g, TOL)
    got = [
        (f.rule, str(f.detail["reason"] if f.rule == RULE_BATCH else f.detail["compared_with"]))
        for f in findings
    ]
    assert got == expected
    for f in findings:
        assert f.active
        assert f.severity is (Severity.CRITICAL if f.rule == RULE_BATCH else Severity.WARNING)
        # A condition per batch printed, or per product: not one alert per label.
        if f.rule == RULE_BATCH:
            batch = str(fields.get("batch") or "").strip()
            assert f.subject == f"L1/R42/batch:{fields['batch'] if batch else '-'}"
        else:
            product = "10240" if fields.get("gtin") == "05060000000017" else "10120"
            assert f.subject == f"L1/R42/{product}"
        assert f.event
        assert f.detail["serial"] == "000042"
        assert "label 000042" in f.message


def test_weight_finding_detail() -> None:
    [f] = check_label_content(scan(), RUN, 390.25, TOL)
    assert f.detail["label_g"] == 385.0
    assert f.detail["reference_g"] == 390.25
    assert f.detail["difference_g"] == -5.25
    assert f.detail["tolerance_g"] == 2.0


def test_a_label_without_a_serial_is_named_by_its_raw_read() -> None:
    label = scan(serial=None, batch="NOPE", raw=b"]C1010950600013435210NOPE\x1d")
    [f] = check_label_content(label, RUN, None, TOL)
    assert f.subject == "L1/R42/batch:NOPE"
    assert "label ]C1010950600013435210NOPE\\x1d " in f.message
    assert label_subject(label, RUN) == "L1/R42/]C1010950600013435210NOPE\\x1d"


def test_every_wrong_label_of_a_product_is_one_condition() -> None:
    """Issue 17: a fixed-weight product whose labels carry each pack's own weight."""
    findings = [
        f
        for n in range(1, 6)
        for f in check_label_content(
            scan(gtin="05060000000017", serial=f"{n:06d}", net_weight_g=240.0 + n),
            RUN,
            None,
            TOL,
        )
    ]
    assert [f.rule for f in findings] == [RULE_WEIGHT] * 3  # 243, 244, 245 g: beyond ±2 g
    assert {f.subject for f in findings} == {"L1/R42/10240"}
    assert [f.detail["serial"] for f in findings] == ["000003", "000004", "000005"]


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError):
        check_label_content(scan(), RUN, 385.0, Decimal(-1))


def test_invalid_monitor_settings() -> None:
    with pytest.raises(ValueError):
        LabelSequenceMonitor("d", "r", reorder_window=-1)
    with pytest.raises(ValueError):
        LabelSequenceMonitor("d", "r", max_gap=0)


# ------------------------------------------------------------------------------ outages

T0 = to_us(datetime(2026, 3, 3, 10, 0, tzinfo=UTC))
S = 1_000_000


class Line:
    """Records in store order through an outage log and one scanner's monitor, as the rules
    engine feeds them."""

    def __init__(self, **monitor: int) -> None:
        self.outages = OutageLog()
        self.monitor = LabelSequenceMonitor(
            "sc1", "R42", line="L1", outages=self.outages, **monitor
        )
        self.findings: list[Finding] = []

    def record(self, record: Record) -> None:
        self.outages.observe(record)
        if isinstance(record, LabelScan) and record.device == "sc1":
            self.findings += self.monitor.observe_scan(record, record.ts_us)

    def reads(self, numbers: Iterable[int], start_s: float, device: str = "sc1") -> None:
        for i, n in enumerate(numbers):
            self.record(scan(ts_us=T0 + round((start_s + i) * S), device=device, serial=str(n)))

    def event(self, at_s: float, kind: str, device: str = "sc1", **detail: object) -> None:
        self.record(
            DeviceEvent(ts_us=T0 + round(at_s * S), device=device, kind=kind, detail=detail)
        )

    def gaps(self) -> list[Finding]:
        return [f for f in self.findings if f.rule == RULE_GAP]


def test_a_gap_printed_while_the_scanner_was_offline_names_the_outage() -> None:
    line = Line()
    line.reads(range(260, 265), 0)  # 10:00:00-10:00:04
    line.event(5, "link_down", error="scanner closed the connection")
    # The labeller goes on printing 265..301; nobody reads them.
    line.event(12, "link_up", down_for_s=7.0)
    line.reads(range(302, 307), 13)
    [gap] = line.gaps()
    assert gap.subject == "sc1/R42/265"
    assert gap.message == (
        "sc1/R42: label numbers 265–301 missing: printed while scanner sc1 was offline "
        "10:00:05–10:00:12 UTC, not scanned"
    )
    assert gap.detail["likely_cause"] == {
        "kind": DEVICE_OFFLINE,
        "device": "sc1",
        "start_us": T0 + 5 * S,
        "end_us": T0 + 12 * S,
        "planned": False,
        "reason": "scanner closed the connection",
    }
    assert gap.detail["missing_ranges"] == [[265, 301]]
    assert gap.detail["missing_count"] == 37
    assert gap.detail["missing"] == list(range(265, 302))


def test_another_devices_outage_is_not_the_cause() -> None:
    line = Line()
    line.reads(range(1, 4), 0)
    line.event(3.5, "link_down", device="sc2")
    line.event(4.5, "link_up", device="sc2")
    line.reads(range(8, 13), 5)
    [gap] = line.gaps()
    assert gap.detail["likely_cause"] is None
    assert gap.message == "sc1/R42: label numbers 4–7 missing"


def test_an_outage_before_the_last_read_is_not_the_cause() -> None:
    line = Line()
    line.reads([1], 0)
    line.event(1, "link_down")
    line.event(2, "link_up")
    line.reads([2, 6, 7, 8, 9, 10], 3)
    [gap] = line.gaps()
    assert gap.detail["likely_cause"] is None


@pytest.mark.parametrize(("stopped", "how"), [(False, "restart"), (True, "planned stop")])
def test_a_gap_printed_while_the_gateway_was_down_names_the_restart(
    stopped: bool, how: str
) -> None:
    line = Line()
    line.reads(range(100, 104), 0)
    line.record(PackEvent(ts_us=T0 + 4 * S, line="L1", device="cw1", net_g=241.0))
    if stopped:
        line.event(5, "gateway_stopped", device="gateway", reason="signal")
    line.event(9, "gateway_started", device="gateway")
    line.event(10, "link_up", endpoint="127.0.0.1:1")  # the first connection: no outage
    line.reads(range(140, 146), 11)
    [gap] = line.gaps()
    start = 5 if stopped else 4  # the stop, else the last record seen
    assert gap.message == (
        f"sc1/R42: label numbers 104–139 missing: printed while the gateway was down "
        f"10:00:0{start}–10:00:09 UTC ({how}), not scanned"
    )
    cause = gap.detail["likely_cause"]
    assert isinstance(cause, dict)
    assert (cause["kind"], cause["device"], cause["planned"]) == (GATEWAY_DOWN, "gateway", stopped)
    assert (cause["start_us"], cause["end_us"]) == (T0 + start * S, T0 + 9 * S)


def test_a_jump_across_an_outage_beyond_max_gap_is_a_gap_shown_as_ranges() -> None:
    line = Line(max_gap=1000)
    line.reads([1, 2, 3], 0)
    line.event(3, "gateway_started", device="gateway")
    line.reads(range(50_003, 50_008), 3600)
    [gap] = line.gaps()
    assert gap.subject == "sc1/R42/4"
    assert "label numbers 4–50002 missing" in gap.message
    assert gap.detail["missing_ranges"] == [[4, 50_002]]
    assert gap.detail["missing_count"] == 49_999
    assert gap.detail["missing"] == list(range(4, 1004))  # listed up to 1000
    assert line.monitor.missing_count == 49_999
    assert line.monitor.newest_missing(3) == [50_000, 50_001, 50_002]
    # A label of the gap read late after all: the gap has a hole, the rest stays missing.
    line.reads([17], 3700)
    update = line.findings[-1]
    assert (update.subject, update.active) == ("sc1/R42/4", True)
    assert update.detail["missing_ranges"] == [[4, 16], [18, 50_002]]
    assert update.detail["missing_count"] == 49_998
    assert "still missing 4–16, 18–50002" in update.message


def test_a_jump_without_an_outage_beyond_max_gap_is_out_of_sequence() -> None:
    line = Line(max_gap=1000)
    line.reads([1, 2, 3, 50_003], 0)
    [odd] = line.findings
    assert odd.rule == RULE_OUT_OF_SEQUENCE
    assert odd.detail["likely_cause"] is None


def test_a_jump_across_an_outage_beyond_max_outage_gap_is_out_of_sequence() -> None:
    line = Line(max_gap=10, max_outage_gap=100)
    line.reads([1, 2, 3], 0)
    line.event(4, "link_down")
    line.event(5, "link_up")
    line.reads([205, 4, 5, 6, 7, 8], 6)
    [odd] = line.findings
    assert odd.rule == RULE_OUT_OF_SEQUENCE
    assert odd.detail["max_gap"] == 100
    assert isinstance(odd.detail["likely_cause"], dict)


def test_a_later_outage_gap_does_not_touch_an_earlier_gap() -> None:
    line = Line()
    line.reads([229, 230, 231, 235, 236, 237, 238, 239], 0)  # 232-234 skipped by the labeller
    [real] = line.gaps()
    line.event(10, "link_down")
    line.event(20, "link_up")
    line.reads(range(265, 270), 21)
    real_again, outage = line.gaps()
    assert real_again is real
    assert (real.subject, real.detail["missing"]) == ("sc1/R42/232", [232, 233, 234])
    assert real.message == "sc1/R42: label numbers 232, 233, 234 missing"
    assert outage.subject == "sc1/R42/240"
    assert "240–264" in outage.message
    assert "offline" in outage.message


def test_the_outage_log_from_the_records_alone() -> None:
    log = OutageLog()
    ev = functools.partial(DeviceEvent, device="sc1")
    log.observe(ev(ts_us=10, device="gateway", kind="gateway_started"))  # nothing seen before
    assert log.between("sc1", 0, 100) == []
    log.observe(ev(ts_us=20, kind="link_up"))  # no outage to end
    log.observe(ev(ts_us=30, kind="link_down"))
    log.observe(ev(ts_us=35, kind="link_down"))  # the same outage
    [current] = log.between("sc1", 25, 40)
    assert (current.start_us, current.end_us) == (30, None)
    log.observe(scan(ts_us=50, device="sc1"))  # a read: the link was up again
    [ended] = log.between("sc1", 0, 100)
    assert (ended.start_us, ended.end_us) == (30, 50)
    assert log.between("sc1", 0, 30) == []  # touching at one instant is no overlap
    assert log.between("sc1", 51, 100) == []
    assert log.between("sc2", 0, 100) == []
    # Records the gateway does not replay do not count as seen.
    log.observe(RejectedInput(ts_us=90, source="sc1", tag="barcode", raw="x", reason="bad"))
    assert log.last_seen_us == 50
    # The clock set back over a restart: the outage is empty, not negative.
    log.observe(ev(ts_us=40, device="gateway", kind="gateway_started"))
    [restart] = log.between("sc2", 0, 100)
    assert (restart.kind, restart.start_us, restart.end_us) == (GATEWAY_DOWN, 40, 40)


def test_the_outage_log_keeps_the_last_outages_of_each_device() -> None:
    log = OutageLog(keep=2)
    for i in range(5):
        log.observe(DeviceEvent(ts_us=10 * i, device="sc1", kind="link_down"))
        log.observe(DeviceEvent(ts_us=10 * i + 5, device="sc1", kind="link_up"))
    assert [o.start_us for o in log.between("sc1", 0, 100)] == [30, 40]
    with pytest.raises(ValueError):
        OutageLog(keep=0)


@given(
    size=st.integers(min_value=1, max_value=60),
    late=st.lists(st.integers(min_value=0, max_value=70), max_size=80),
)
def test_late_reads_punch_exactly_their_numbers_out_of_a_gap(size: int, late: list[int]) -> None:
    mon, findings = run_numbers([1, size + 2], window=0)
    [gap] = findings
    left = set(range(2, size + 2))
    for n in (n for n in late if n <= size + 1):  # higher ones would open gaps of their own
        for f in mon.observe_number(n, 0):
            if f.rule != RULE_GAP:
                continue
            left.discard(n)
            ranges = f.detail["missing_ranges"]
            assert isinstance(ranges, list)
            assert [m for lo, hi in ranges for m in range(lo, hi + 1)] == sorted(left)
            assert f.detail["missing_count"] == len(left)
            assert f.active == bool(left)
            assert f.subject == gap.subject
    assert set(mon.missing) == left
    assert mon.missing_count == len(left)
    assert mon.newest_missing(5) == sorted(left)[-5:]


def test_a_gap_with_many_holes_shows_twenty_items_and_counts_the_rest() -> None:
    mon, [gap] = run_numbers([1, 101], window=0)
    assert gap.message == "lab1/R42: label numbers 2–100 missing"
    for n in range(3, 100, 2):  # every odd number turns up: 2, 4, ..., 100 still missing
        [update] = mon.observe_number(n, 0)
    assert update.detail["missing_count"] == 50
    shown = ", ".join(str(n) for n in range(2, 42, 2))
    assert update.message == f"lab1/R42: label 99 read late; still missing {shown} … (+30)"
