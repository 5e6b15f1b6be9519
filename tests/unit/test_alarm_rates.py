"""The ISA-18.2 / EEMUA 191 alarm load figures (rules/alarm_rates.py, docs/alarms.md §3)."""

from __future__ import annotations

import pytest

from rules.alarm_rates import (
    PERIOD_US,
    STALE_AFTER_US,
    Raise,
    alarm_load,
    raises_from_rows,
)

T0 = 1_796_000_400_000_000  # a period boundary (…:00 UTC)
MIN = 60_000_000
assert T0 % PERIOD_US == 0


def raises(line: str, minutes: list[float], rule: str = "label_weight") -> list[Raise]:
    return [Raise(T0 + round(m * MIN), line, rule) for m in minutes]


def test_a_quiet_hour() -> None:
    report = alarm_load([], start_us=T0, end_us=T0 + 60 * MIN, lines=["L1"])
    total = report.total
    assert (total.raised, total.periods, total.per_10_min, total.flood_pct) == (0, 6, 0.0, 0.0)
    assert report.lines["L1"].raised == 0


def test_rates_floods_and_top_rules_per_line() -> None:
    flood = raises("L1", [0.5 * i for i in range(12)])  # 12 in the first 6 min: a flood
    calm = raises("L1", [25, 35], rule="giveaway") + raises("L2", [41, 42, 43], rule="haccp_upper")
    report = alarm_load(flood + calm, start_us=T0, end_us=T0 + 60 * MIN, lines=["L1", "L2", "L3"])
    l1, l2, l3 = (report.lines[x] for x in ("L1", "L2", "L3"))
    assert (l1.raised, l1.periods, l1.peak_10_min, l1.flood_periods) == (14, 6, 12, 1)
    assert l1.per_10_min == pytest.approx(14 / 6)
    assert l1.flood_pct == pytest.approx(100 / 6)
    assert l1.top_rules == (("label_weight", 12), ("giveaway", 2))
    assert l1.top_share_pct == 100
    assert (l2.raised, l2.flood_periods, l2.peak_10_min) == (3, 0, 3)
    assert l3.raised == 0
    assert report.total.raised == 17
    assert report.total.flood_periods == 1, "the whole gateway's first period too"


def test_exactly_ten_is_no_flood() -> None:
    report = alarm_load(raises("L1", list(range(10))), start_us=T0, end_us=T0 + 10 * MIN)
    assert (report.total.periods, report.total.flood_periods) == (1, 0)
    eleven = raises("L1", [i * 0.9 for i in range(11)])
    report = alarm_load(eleven, start_us=T0, end_us=T0 + 10 * MIN)
    assert report.total.flood_periods == 1


def test_periods_are_clock_aligned_and_partial_ones_count() -> None:
    # 10:05 to 10:25 touches the periods 10:00, 10:10 and 10:20.
    report = alarm_load(raises("L1", [6, 12, 24]), start_us=T0 + 5 * MIN, end_us=T0 + 25 * MIN)
    assert report.total.periods == 3
    assert report.total.peak_10_min == 1


def test_raises_outside_the_span_are_left_out_and_last_10_min_slides() -> None:
    report = alarm_load(raises("L1", [-5, 1, 55, 59, 61]), start_us=T0, end_us=T0 + 60 * MIN)
    assert report.total.raised == 3
    assert report.total.last_10_min == 2


def test_stale_alarms_are_active_more_than_a_day() -> None:
    end = T0 + 60 * MIN
    active = [(end - STALE_AFTER_US - 1, "L1"), (end - STALE_AFTER_US, "L1"), (end - MIN, "L2")]
    report = alarm_load([], start_us=T0, end_us=end, active=active)
    assert report.total.stale == 1
    assert (report.lines["L1"].stale, report.lines["L2"].stale) == (1, 0)
    assert "L3" not in report.lines, "only lines named, raising or with active alerts"


def test_from_stored_rows() -> None:
    rows = [(T0, "L1", "giveaway", "raised"), (T0 + 1, "L1", "giveaway", "updated")]
    assert raises_from_rows(rows) == [Raise(T0, "L1", "giveaway")]


def test_a_reversed_span_is_refused() -> None:
    with pytest.raises(ValueError):
        alarm_load([], start_us=T0, end_us=T0)


def test_as_dict_is_json_ready() -> None:
    report = alarm_load(raises("L1", [1]), start_us=T0, end_us=T0 + 20 * MIN)
    assert report.total.as_dict() == {
        "raised": 1,
        "periods": 2,
        "per_10_min": 0.5,
        "peak_10_min": 1,
        "flood_periods": 0,
        "flood_pct": 0.0,
        "last_10_min": 0,
        "stale": 0,
        "top_rules": [["label_weight", 1]],
    }
