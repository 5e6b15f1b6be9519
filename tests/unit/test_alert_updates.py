"""Alerts per condition (issue 17): occurrences folded into one alert, updates only when
they matter, live values in the book's view, and the figures surviving a restore."""

from __future__ import annotations

import itertools
import json

import pytest

from gateway.rules_engine import fold_alerts
from rules.alert_updates import (
    UPDATE_HOLDOFF_US,
    Published,
    count_steps_crossed,
    update_due,
)
from rules.alerts import AlertBook
from rules.model import AlertEvent, AlertTransition, Finding, Severity

S = 1_000_000


def event(ts: int, n: int) -> Finding:
    """One wrong label: an occurrence of the line's label_weight condition."""
    return Finding(
        rule="label_weight",
        subject="L1/R1/41240",
        active=True,
        severity=Severity.WARNING,
        message=f"label {n} says 24{n % 10} g",
        ts_us=ts,
        line="L1",
        detail={"serial": str(n)},
        event=True,
    )


def measured(ts: int, pct: float, active: bool = True) -> Finding:
    return Finding(
        rule="giveaway",
        subject="L1/R1/41240",
        active=active,
        severity=Severity.WARNING,
        message=f"giveaway {pct} %",
        ts_us=ts,
        line="L1",
        detail={"pct": pct},
        value=pct,
        deadband=0.5,
    )


@pytest.mark.parametrize(
    ("before", "after", "crossed"),
    [
        *[(1, 2, True), (2, 4, False), (4, 5, True), (5, 9, False), (9, 10, True)],
        *[(10, 19, False), (19, 20, True), (21, 49, False), (49, 50, True), (99, 100, True)],
        *[(101, 600, True), (3, 3, False), (0, 1, True)],
    ],
)
def test_the_1_2_5_steps(before: int, after: int, crossed: bool) -> None:
    assert count_steps_crossed(before, after) is crossed


def test_600_occurrences_are_one_alert_published_9_times() -> None:
    book = AlertBook()
    out: list[AlertTransition] = []
    for n in range(1, 601):
        out += book.apply(event(n * S, n))
    assert [t.event for t in out] == [AlertEvent.RAISED] + [AlertEvent.UPDATED] * 8
    assert [t.detail["occurrences"] for t in out] == [1, 2, 5, 10, 20, 50, 100, 200, 500]
    assert out[-1].detail["serial"] == "500"
    assert out[-1].detail["first_us"] == S
    [alert] = book.active()
    assert (alert.occurrences, alert.first_us, alert.last_us) == (600, S, 600 * S)
    assert alert.message == "label 600 says 240 g", "the live view has the latest"
    (cleared,) = book.apply(
        Finding("label_weight", "L1/R1/41240", False, Severity.WARNING, "", 601 * S, "L1")
    )
    assert cleared.detail["occurrences"] == 600, "the clearing carries the final count"


def test_a_measured_value_is_published_when_it_moves_by_its_deadband() -> None:
    book = AlertBook()
    assert [t.event for t in book.apply(measured(0, 3.6))] == [AlertEvent.RAISED]
    assert book.apply(measured(70 * S, 3.9)) == [], "0.3 points: not enough"
    [alert] = book.active()
    assert (alert.message, alert.value) == ("giveaway 3.9 %", 3.9), "live all the same"
    (update,) = book.apply(measured(80 * S, 4.1))
    assert (update.event, update.message, update.detail["value"]) == (
        AlertEvent.UPDATED,
        "giveaway 4.1 %",
        4.1,
    )
    assert book.apply(measured(90 * S, 3.7)) == [], "0.4 back: not enough"


def test_a_measured_move_inside_the_holdoff_waits_for_it() -> None:
    book = AlertBook()
    book.apply(measured(0, 3.6))
    assert book.apply(measured(10 * S, 5.0)) == [], "a minute has not passed"
    assert book.tick(30 * S) == []
    (update,) = book.tick(UPDATE_HOLDOFF_US)
    assert (update.event, update.message, update.ts_us) == (
        AlertEvent.UPDATED,
        "giveaway 5.0 %",
        UPDATE_HOLDOFF_US,
    )
    assert book.tick(UPDATE_HOLDOFF_US + 10 * S) == [], "published once"


def test_a_noisy_value_crossing_its_deadband_publishes_at_most_once_a_minute() -> None:
    book = AlertBook()
    out = book.apply(measured(0, 4.0))
    for second in range(1, 601):  # ten minutes of ±0.5 noise, a reading a second
        out += book.apply(measured(second * S, 4.0 + (0.5 if second % 2 else -0.5)))
        out += book.tick(second * S)
    assert len(out) <= 11, [t.ts_us for t in out]
    gaps = [b.ts_us - a.ts_us for a, b in itertools.pairwise(out)]
    assert min(gaps) >= UPDATE_HOLDOFF_US


def test_a_discrete_count_publishes_every_change_at_once() -> None:
    book = AlertBook()
    gap = Finding("label_gap", "s/R/4", True, Severity.WARNING, "3 missing", 0, "L1", value=3)
    book.apply(gap)
    (update,) = book.apply(
        Finding("label_gap", "s/R/4", True, Severity.WARNING, "2 missing", S, "L1", value=2)
    )
    assert update.message == "2 missing"


def test_a_state_finding_publishes_a_changed_message_at_once_and_nothing_for_repeats() -> None:
    book = AlertBook()
    fault = Finding("haccp_sensor_fault", "p/P1", True, Severity.MAJOR, "no data", 0, "L1")
    book.apply(fault)
    assert book.apply(fault) == []
    stuck = Finding("haccp_sensor_fault", "p/P1", True, Severity.MAJOR, "stuck", S, "L1")
    assert [t.message for t in book.apply(stuck)] == ["stuck"]


def test_severity_changes_are_published_at_once() -> None:
    published = Published(Severity.WARNING, 3.6, 1, 0)
    due = update_due(
        published,
        severity=Severity.CRITICAL,
        value=3.6,
        deadband=0.5,
        event=False,
        occurrences=2,
        changed=True,
        now_us=1,
    )
    assert due == "now"


def test_a_restored_alert_goes_on_from_what_was_last_published() -> None:
    book = AlertBook()
    out: list[AlertTransition] = []
    for n in range(1, 8):
        out += book.apply(event(n * S, n))
    rows = [
        (
            t.ts_us,
            t.alert_id,
            t.rule,
            t.subject,
            t.line,
            str(t.severity),
            str(t.event),
            t.message,
            json.dumps(dict(t.detail)),
        )
        for t in out
    ]
    [view] = fold_alerts(rows)
    # The stored figures; the two labels folded since the last transition are not stored.
    assert view.occurrences == 5
    restored = AlertBook()
    restored.restore([view])
    more = [t for n in range(8, 14) for t in restored.apply(event(n * S, n))]
    assert [(t.event, t.detail["occurrences"]) for t in more] == [(AlertEvent.UPDATED, 10)]
    assert more[0].alert_id == out[0].alert_id
