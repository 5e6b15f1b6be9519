"""Label sequence (gaps, reorder window, duplicates, baseline) and label content checks."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.records import LabelScan, PackEvent
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
from rules.model import Finding, ProductSpec, RunContext, Severity, Tier


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
        [(RULE_GAP, True, [2, 4]), (RULE_GAP, True, [6, 7, 8])],
        id="gaps-due-together-are-one-finding",
    ),
]


@pytest.mark.parametrize(("numbers", "window", "expected"), SEQUENCES)
def test_sequence_table(
    numbers: list[int], window: int, expected: list[tuple[str, bool, object]]
) -> None:
    _, findings = run_numbers(numbers, window=window)
    assert brief(findings) == expected
    assert all(f.severity is Severity.WARNING for f in findings)
    assert all(f.subject == "lab1/R42" for f in findings)


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


def test_missing_accumulates_and_shrinks_as_late_reads_turn_up() -> None:
    mon, findings = run_numbers([1, 3, 4, 5, 6, 8, 9, 10, 11])
    assert [f.detail["missing"] for f in findings] == [[2], [2, 7]]
    [update] = mon.observe_number(2, 0)
    assert update.active
    assert update.detail["missing"] == [7]
    assert update.detail["found_late"] == [2]
    [clear] = mon.observe_number(7, 0)
    assert not clear.active
    # Read once more, 7 is now a duplicate.
    [dup] = mon.observe_number(7, 0)
    assert dup.rule == RULE_DUPLICATE


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
    ProductSpec(
        plu="10120", nominal_g=None, tier=Tier.GG, catch_weight=True, gtin="09506000134352"
    ),
    ProductSpec(plu="10240", nominal_g=Decimal(240), tier=Tier.GG, gtin="5060000000017"),
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
        assert f.subject == "L1/R42/000042"


def test_weight_finding_detail() -> None:
    [f] = check_label_content(scan(), RUN, 390.25, TOL)
    assert f.detail["label_g"] == 385.0
    assert f.detail["reference_g"] == 390.25
    assert f.detail["difference_g"] == -5.25
    assert f.detail["tolerance_g"] == 2.0


def test_subject_falls_back_to_the_raw_read() -> None:
    label = scan(serial=None, batch="NOPE", raw=b"]C1010950600013435210NOPE\x1d")
    [f] = check_label_content(label, RUN, None, TOL)
    assert f.subject == "L1/R42/]C1010950600013435210NOPE\\x1d"
    assert label_subject(label, RUN) == f.subject


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError):
        check_label_content(scan(), RUN, 385.0, Decimal(-1))


def test_invalid_monitor_settings() -> None:
    with pytest.raises(ValueError):
        LabelSequenceMonitor("d", "r", reorder_window=-1)
    with pytest.raises(ValueError):
        LabelSequenceMonitor("d", "r", max_gap=0)
