"""Shelf life: expected use-by, label use-by checks, nearing dates and freeze-down."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.records import LabelScan
from rules.model import RunContext, Severity
from rules.shelf_life import (
    RULE_FREEZE_DOWN,
    RULE_USE_BY,
    check_use_by,
    day_of_life,
    expected_use_by,
    freeze_down_due,
    freeze_down_finding,
    nearing_date,
)


@pytest.mark.parametrize(
    ("pack", "adjust", "expected"),
    [
        pytest.param(date(2025, 3, 3), 0, date(2025, 3, 12), id="standard-plus-9"),
        pytest.param(date(2025, 3, 3), 1, date(2025, 3, 13), id="rubber-clock-plus-10"),
        pytest.param(date(2025, 3, 3), 2, date(2025, 3, 14), id="superchill-plus-11"),
        pytest.param(date(2025, 3, 3), 3, date(2025, 3, 15), id="superchill-plus-12"),
        pytest.param(date(2024, 2, 20), 0, date(2024, 2, 29), id="leap-day"),
        pytest.param(date(2023, 2, 20), 0, date(2023, 3, 1), id="no-leap-day"),
        pytest.param(date(2024, 2, 18), 2, date(2024, 2, 29), id="superchill-onto-leap-day"),
        pytest.param(date(2024, 2, 29), 0, date(2024, 3, 9), id="from-leap-day"),
        pytest.param(date(2025, 1, 31), 0, date(2025, 2, 9), id="month-end"),
        pytest.param(date(2025, 4, 25), 1, date(2025, 5, 5), id="30-day-month"),
        pytest.param(date(2024, 12, 28), 3, date(2025, 1, 9), id="year-end"),
        pytest.param(date(2100, 2, 20), 0, date(2100, 3, 1), id="2100-is-not-leap"),
    ],
)
def test_expected_use_by(pack: date, adjust: int, expected: date) -> None:
    assert expected_use_by(pack, adjust) == expected


@pytest.mark.parametrize("adjust", [-1, 4, 10, True], ids=["minus-1", "4", "10", "bool"])
def test_adjust_outside_0_to_3_is_refused(adjust: int) -> None:
    with pytest.raises(ValueError):
        expected_use_by(date(2025, 3, 3), adjust)


def test_negative_base_days_is_refused() -> None:
    with pytest.raises(ValueError):
        expected_use_by(date(2025, 3, 3), 0, base_days=-1)


@given(
    pack=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 1)),
    adjust=st.integers(min_value=0, max_value=3),
    base=st.integers(min_value=0, max_value=30),
)
def test_use_by_is_pack_plus_days(pack: date, adjust: int, base: int) -> None:
    use_by = expected_use_by(pack, adjust, base)
    assert (use_by - pack).days == base + adjust
    assert expected_use_by(pack, adjust) - expected_use_by(pack, 0) == timedelta(days=adjust)


# ------------------------------------------------------------------------------ labels

RUN = RunContext(
    run_number="R42",
    line="L1",
    batch_codes=("SAL/2025/01",),
    species="salmon",
    products=(),
    pack_date=date(2025, 3, 3),
    shelf_life_adjust=0,
)


def scan(**kw: object) -> LabelScan:
    fields: dict[str, object] = {
        "ts_us": 7_000,
        "line": "L1",
        "device": "sc1",
        "raw": b"]C10109506000134352",
        "gtin": "09506000134352",
        "batch": "SAL/2025/01",
        "use_by": "2025-03-12",
        "pack_date": "2025-03-03",
        "serial": "000042",
    }
    fields.update(kw)
    return LabelScan(**fields)  # type: ignore[arg-type]


USE_BY = [
    pytest.param({}, 0, None, id="right-date"),
    pytest.param({"use_by": "2025-03-13"}, 1, None, id="rubber-clock-right"),
    pytest.param({"use_by": "2025-03-15"}, 3, None, id="superchill-3-right"),
    pytest.param({"use_by": "2025-03-13"}, 0, "wrong_date", id="one-day-long"),
    pytest.param({"use_by": "2025-03-11"}, 0, "wrong_date", id="one-day-short"),
    pytest.param({"use_by": "2025-03-12"}, 2, "wrong_date", id="superchill-printed-as-standard"),
    pytest.param({"use_by": None}, 0, "absent", id="missing-use-by"),
    pytest.param({"use_by": "12/03/2025"}, 0, "unreadable", id="unreadable-use-by"),
    pytest.param({"gtin": None, "use_by": None}, 0, None, id="not-a-product-label"),
]


@pytest.mark.parametrize(("fields", "adjust", "reason"), USE_BY)
def test_check_use_by_table(fields: dict[str, object], adjust: int, reason: str | None) -> None:
    findings = check_use_by(scan(**fields), replace(RUN, shelf_life_adjust=adjust))
    if reason is None:
        assert findings == []
        return
    [f] = findings
    assert f.rule == RULE_USE_BY
    assert f.severity is Severity.CRITICAL
    assert f.active
    # One condition per date printed (docs/alarms.md §1), each label an occurrence of it.
    assert f.subject == f"L1/R42/use-by:{fields['use_by'] or '-'}"
    assert f.event
    assert f.detail["serial"] == "000042"
    assert "label 000042" in f.message
    assert f.detail["reason"] == reason
    assert "recall" in f.message


def test_wrong_date_detail() -> None:
    [f] = check_use_by(scan(use_by="2025-03-14"), RUN)
    assert f.detail["expected"] == "2025-03-12"
    assert f.detail["use_by"] == "2025-03-14"
    assert f.detail["pack_date"] == "2025-03-03"
    assert "+2 days" in f.message


def test_the_run_pack_date_wins_and_the_label_one_is_the_fallback() -> None:
    # Label claims a later pack date and a use-by matching it: still wrong against the run.
    label = scan(pack_date="2025-03-04", use_by="2025-03-13")
    assert check_use_by(label, RUN)[0].detail["reason"] == "wrong_date"
    no_date_run = replace(RUN, pack_date=None)
    assert check_use_by(label, no_date_run) == []
    assert check_use_by(scan(pack_date=None), no_date_run) == []


def test_base_days_is_configurable() -> None:
    assert check_use_by(scan(use_by="2025-03-10"), RUN, base_days=7) == []


def test_a_run_with_an_invalid_adjustment_cannot_verify_labels() -> None:
    [f] = check_use_by(scan(), replace(RUN, shelf_life_adjust=5))
    assert f.detail["reason"] == "run_adjust_invalid"
    assert f.severity is Severity.CRITICAL


# ------------------------------------------------------------------------------ freeze-down


@pytest.mark.parametrize(
    ("today", "day", "due"),
    [
        pytest.param(date(2025, 3, 1), 1, False, id="pack-day-is-day-1"),
        pytest.param(date(2025, 3, 10), 10, False, id="day-10-standard-use-by"),
        pytest.param(date(2025, 3, 12), 12, False, id="day-12"),
        pytest.param(date(2025, 3, 13), 13, True, id="day-13-freeze-down"),
        pytest.param(date(2025, 3, 20), 20, True, id="after-day-13"),
        pytest.param(date(2025, 2, 27), -1, False, id="before-pack"),
    ],
)
def test_freeze_down_due(today: date, day: int, due: bool) -> None:
    pack = date(2025, 3, 1)
    assert day_of_life(pack, today) == day
    assert freeze_down_due(pack, today) is due


def test_freeze_down_across_month_and_leap_day() -> None:
    assert not freeze_down_due(date(2024, 2, 20), date(2024, 3, 2))  # day 12 (via 29 Feb)
    assert freeze_down_due(date(2024, 2, 20), date(2024, 3, 3))  # day 13
    assert freeze_down_due(date(2023, 2, 20), date(2023, 3, 4))  # day 13, no 29 Feb


def test_day_13_is_the_last_day_of_the_longest_life() -> None:
    pack = date(2025, 3, 1)
    last_use_by = expected_use_by(pack, 3)
    assert freeze_down_due(pack, last_use_by)
    assert not freeze_down_due(pack, last_use_by - timedelta(days=1))


def _run(number: str, pack: date | None, adjust: int = 0) -> RunContext:
    return replace(RUN, run_number=number, pack_date=pack, shelf_life_adjust=adjust)


def test_nearing_date() -> None:
    today = date(2025, 3, 13)
    runs = [
        _run("fresh", date(2025, 3, 10)),  # use-by 19th: 6 days left
        _run("near", date(2025, 3, 6)),  # use-by 15th: 2 days left
        _run("today", date(2025, 3, 4)),  # use-by 13th: 0 days left
        _run("past", date(2025, 3, 3)),  # use-by 12th: expired
        _run("superchill", date(2025, 3, 1), 3),  # use-by 13th, day 13: freeze down
        _run("near-superchill", date(2025, 3, 3), 3),  # use-by 15th: 2 days left, day 11
        _run("no-date", None),
    ]
    found = nearing_date(runs, today)
    assert [(n.run_number, n.days_left, n.day, n.freeze_down_due, n.expired) for n in found] == [
        ("past", -1, 11, False, True),
        ("superchill", 0, 13, True, False),
        ("today", 0, 10, False, False),
        ("near", 2, 8, False, False),
        ("near-superchill", 2, 11, False, False),
    ]
    assert found[1].use_by == date(2025, 3, 13)
    assert [n.run_number for n in nearing_date(runs, today, within_days=0)] == [
        "past",
        "superchill",
        "today",
    ]


def test_freeze_down_finding() -> None:
    run = _run("R7", date(2025, 3, 1), 3)
    f = freeze_down_finding(run, date(2025, 3, 13), 123)
    assert f is not None
    assert (f.rule, f.active, f.severity) == (RULE_FREEZE_DOWN, True, Severity.WARNING)
    assert f.subject == "L1/R7"
    assert f.ts_us == 123
    assert f.detail["day"] == 13
    before = freeze_down_finding(run, date(2025, 3, 12), 100)
    assert before is not None
    assert not before.active
    assert freeze_down_finding(_run("R8", None), date(2025, 3, 13), 1) is None
