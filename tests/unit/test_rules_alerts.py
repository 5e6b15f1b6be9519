"""The alert book: life cycle, acknowledgement, shelving, line modes, andon, restore."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.alerts import DEFAULT_NEVER_SUPPRESS, Alert, AlertBook, AlertState
from rules.model import AlertEvent, AlertTransition, Finding, Severity

E = AlertEvent
RULE = "emark_t2"
SUBJECT = "L1/R42/10120"


def f(
    ts: int,
    active: bool = True,
    *,
    rule: str = RULE,
    subject: str = SUBJECT,
    severity: Severity = Severity.MAJOR,
    message: str = "T2 breach",
    line: str | None = "L1",
    detail: Mapping[str, object] | None = None,
) -> Finding:
    return Finding(
        rule=rule,
        subject=subject,
        active=active,
        severity=severity,
        message=message,
        ts_us=ts,
        line=line,
        detail=dict(detail or {}),
    )


def only_id(book: AlertBook) -> str:
    (alert,) = book.active()
    return alert.id


# -- the life cycle as a table -----------------------------------------------------------

Step = Callable[[AlertBook], list[AlertTransition]]


def find(finding: Finding) -> Step:
    return lambda book: book.apply(finding, {"limit_g": 5})


def ack(ts: int, latest: bool = True) -> Step:
    def step(book: AlertBook) -> list[AlertTransition]:
        alert = book.recent(1)[0] if latest else book.active()[0]
        return [book.acknowledge(alert.id, "ann", "seen", ts)]

    return step


def shelve(ts: int, until: int) -> Step:
    return lambda book: [book.shelve(book.recent(1)[0].id, "bob", until, ts, "nuisance")]


def tick(ts: int) -> Step:
    return lambda book: book.tick(ts)


def mode(m: str, ts: int, line: str = "L1") -> Step:
    return lambda book: book.set_line_mode(line, m, ts)


@dataclass(frozen=True)
class Case:
    name: str
    steps: list[tuple[Step, list[AlertEvent]]]
    final_state: AlertState | None = None
    andon: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


CASES = [
    Case("inactive with nothing open yields nothing", [(find(f(1, False)), [])]),
    Case(
        "raise then identical findings: one RAISED, no floods",
        [(find(f(1)), [E.RAISED]), (find(f(2)), []), (find(f(3)), [])],
        AlertState.UNACKNOWLEDGED,
        "amber",
    ),
    Case(
        "message change updates",
        [(find(f(1)), [E.RAISED]), (find(f(2, message="worse")), [E.UPDATED])],
        AlertState.UNACKNOWLEDGED,
    ),
    Case(
        "detail change updates",
        [(find(f(1, detail={"n": 1})), [E.RAISED]), (find(f(2, detail={"n": 2})), [E.UPDATED])],
    ),
    Case(
        "escalation updates, goes red and needs a new acknowledgement",
        [
            (find(f(1)), [E.RAISED]),
            (ack(2), [E.ACKNOWLEDGED]),
            (find(f(3, severity=Severity.CRITICAL)), [E.UPDATED]),
        ],
        AlertState.UNACKNOWLEDGED,
        "red",
    ),
    Case(
        "clear unacknowledged stays until acknowledged",
        [(find(f(1)), [E.RAISED]), (find(f(2, False)), [E.CLEARED]), (find(f(3, False)), [])],
        AlertState.CLEARED_UNACKNOWLEDGED,
        "green",
    ),
    Case(
        "acknowledging a cleared alert closes it",
        [(find(f(1)), [E.RAISED]), (find(f(2, False)), [E.CLEARED]), (ack(3), [E.ACKNOWLEDGED])],
        AlertState.CLEARED,
    ),
    Case(
        "acknowledged then cleared is closed",
        [(find(f(1)), [E.RAISED]), (ack(2), [E.ACKNOWLEDGED]), (find(f(3, False)), [E.CLEARED])],
        AlertState.CLEARED,
    ),
    Case(
        "acknowledged active stays red",
        [(find(f(1, severity=Severity.CRITICAL)), [E.RAISED]), (ack(2), [E.ACKNOWLEDGED])],
        AlertState.ACKNOWLEDGED,
        "red",
    ),
    Case(
        "re-raise after clear is a new alert",
        [(find(f(1)), [E.RAISED]), (find(f(2, False)), [E.CLEARED]), (find(f(3)), [E.RAISED])],
        AlertState.UNACKNOWLEDGED,
    ),
    Case(
        "shelved: updates silent, andon dark, unshelve re-announces",
        [
            (find(f(1, severity=Severity.CRITICAL)), [E.RAISED]),
            (shelve(2, 100), [E.SHELVED]),
            (find(f(3, severity=Severity.CRITICAL, message="worse")), []),
            (tick(99), []),
        ],
        AlertState.SHELVED,
        "green",
    ),
    Case(
        "shelf expiry",
        [
            (find(f(1, severity=Severity.CRITICAL)), [E.RAISED]),
            (shelve(2, 100), [E.SHELVED]),
            (tick(100), [E.UNSHELVED]),
            (tick(200), []),
        ],
        AlertState.UNACKNOWLEDGED,
        "red",
    ),
    Case(
        "shelf covers a chattering re-raise",
        [
            (find(f(1)), [E.RAISED]),
            (shelve(2, 100), [E.SHELVED]),
            (find(f(3, False)), [E.CLEARED]),
            (find(f(4)), [E.RAISED]),
            (find(f(5, message="other")), []),
        ],
        AlertState.SHELVED,
        "green",
    ),
    Case(
        "changeover suppresses an open alert once, production unsuppresses",
        [
            (find(f(1)), [E.RAISED]),
            (mode("changeover", 2), [E.SUPPRESSED]),
            (find(f(3, message="changed")), []),
            (mode("washdown", 4), []),
            (mode("production", 5), [E.UNSUPPRESSED]),
        ],
        AlertState.UNACKNOWLEDGED,
        "amber",
    ),
    Case(
        "suppressed alert state and dark andon",
        [(find(f(1)), [E.RAISED]), (mode("washdown", 2), [E.SUPPRESSED])],
        AlertState.SUPPRESSED,
        "green",
    ),
    Case(
        "no raise during changeover; raised on return if it still holds",
        [(mode("changeover", 1), []), (find(f(2)), []), (mode("production", 3), [E.RAISED])],
        AlertState.UNACKNOWLEDGED,
    ),
    Case(
        "condition gone before production resumes: nothing",
        [
            (mode("changeover", 1), []),
            (find(f(2)), []),
            (find(f(3, False)), []),
            (mode("production", 4), []),
        ],
    ),
    Case(
        "clear while suppressed is recorded; no unsuppress",
        [
            (find(f(1)), [E.RAISED]),
            (mode("changeover", 2), [E.SUPPRESSED]),
            (find(f(3, False)), [E.CLEARED]),
            (mode("production", 4), []),
        ],
        AlertState.CLEARED_UNACKNOWLEDGED,
    ),
    Case(
        "HACCP is never suppressed",
        [(mode("washdown", 1), []), (find(f(2, rule="haccp_upper")), [E.RAISED])],
        AlertState.UNACKNOWLEDGED,
    ),
    Case(
        "cold store is never suppressed",
        [
            (find(f(1, rule="store_temp", severity=Severity.CRITICAL)), [E.RAISED]),
            (mode("washdown", 2), []),
        ],
        AlertState.UNACKNOWLEDGED,
        "red",
    ),
    Case(
        "another line's mode does not suppress",
        [(mode("changeover", 1, line="L2"), []), (find(f(2)), [E.RAISED])],
        AlertState.UNACKNOWLEDGED,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_life_cycle(case: Case) -> None:
    book = AlertBook()
    for i, (step, expected) in enumerate(case.steps):
        events = [t.event for t in step(book)]
        assert events == expected, f"step {i}"
    if case.final_state is not None:
        assert book.recent(1)[0].state is case.final_state
    if case.andon is not None:
        assert book.andon_state("L1") == case.andon
    assert len([a for a in book.active() if a.rule == RULE]) <= 1


# -- transitions carry what the store needs ----------------------------------------------


def test_transition_detail_carries_config_and_finding_detail() -> None:
    book = AlertBook()
    (raised,) = book.apply(f(7, detail={"mean_g": "98.1"}), {"t2_g": 90})
    assert raised.alert_id == f"{RULE}:{SUBJECT}:7"
    assert raised.detail == {
        "mean_g": "98.1",
        "occurrences": 1,
        "first_us": 7,
        "last_us": 7,
        "config": {"t2_g": 90},
    }
    assert (raised.line, raised.severity, raised.message) == ("L1", Severity.MAJOR, "T2 breach")
    (cleared,) = book.apply(f(9, False, message="back in limits"), {"t2_g": 91})
    assert cleared.event is E.CLEARED
    assert cleared.alert_id == raised.alert_id
    assert cleared.message == "back in limits"
    assert cleared.detail["config"] == {"t2_g": 91}
    assert book.get(raised.alert_id).cleared_us == 9


def test_escalation_is_marked() -> None:
    book = AlertBook()
    book.apply(f(1))
    (updated,) = book.apply(f(2, severity=Severity.CRITICAL))
    assert updated.detail["escalated"] is True
    assert updated.severity is Severity.CRITICAL
    (deescalated,) = book.apply(f(3, severity=Severity.WARNING))
    assert "escalated" not in deescalated.detail


def test_same_timestamp_reraise_gets_a_distinct_id() -> None:
    book = AlertBook()
    (a,) = book.apply(f(5))
    book.apply(f(5, False))
    (b,) = book.apply(f(5))
    assert a.alert_id != b.alert_id
    assert {x.id for x in book.recent(10)} == {a.alert_id, b.alert_id}


def test_subjects_are_independent() -> None:
    book = AlertBook()
    book.apply(f(1, subject="a"))
    book.apply(f(2, subject="b"))
    book.apply(f(3, False, subject="a"))
    assert [a.subject for a in book.active()] == ["b"]


# -- operator errors ---------------------------------------------------------------------


def test_acknowledge_records_operator_and_comment() -> None:
    book = AlertBook()
    book.apply(f(1))
    alert_id = only_id(book)
    t = book.acknowledge(alert_id, "  ann ", None, 4)
    assert t.event is E.ACKNOWLEDGED
    assert t.detail["operator"] == "ann"
    assert t.detail["comment"] == ""
    alert = book.get(alert_id)
    assert (alert.acknowledged_by, alert.acknowledged_us) == ("ann", 4)


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (lambda b, i: b.acknowledge("nope", "ann", "", 2), KeyError, "no alert 'nope'"),
        (lambda b, i: b.acknowledge(i, " ", "", 2), ValueError, "operator name"),
        (lambda b, i: b.shelve("nope", "ann", 9, 2), KeyError, "no alert"),
        (lambda b, i: b.shelve(i, "", 9, 2), ValueError, "operator name"),
        (lambda b, i: b.shelve(i, "ann", 2, 2), ValueError, "not after now"),
        (lambda b, i: b.get("nope"), KeyError, "no alert"),
        (lambda b, i: b.set_line_mode("L1", "lunch", 2), ValueError, "line mode"),
    ],
)
def test_operator_errors(
    action: Callable[[AlertBook, str], object], error: type[Exception], match: str
) -> None:
    book = AlertBook()
    book.apply(f(1))
    with pytest.raises(error, match=match):
        action(book, only_id(book))


def test_acknowledging_twice_is_an_error() -> None:
    book = AlertBook()
    book.apply(f(1))
    alert_id = only_id(book)
    book.acknowledge(alert_id, "ann", "", 2)
    with pytest.raises(ValueError, match="already acknowledged by ann"):
        book.acknowledge(alert_id, "bob", "", 3)


def test_shelving_a_superseded_alert_is_an_error() -> None:
    book = AlertBook()
    (first,) = book.apply(f(1))
    book.apply(f(2, False))
    book.apply(f(3))
    with pytest.raises(ValueError, match="superseded"):
        book.shelve(first.alert_id, "ann", 100, 4)


def test_shelve_and_unshelve_details() -> None:
    book = AlertBook()
    book.apply(f(1))
    alert_id = only_id(book)
    shelved = book.shelve(alert_id, "bob", 50, 2, "sensor being replaced")
    assert shelved.detail["operator"] == "bob"
    assert shelved.detail["until_us"] == 50
    assert book.get(alert_id).shelved_until_us == 50
    assert book.get(alert_id).comment == "sensor being replaced"
    book.apply(f(3, severity=Severity.CRITICAL, message="worse"))
    (unshelved,) = book.tick(60)
    assert unshelved.detail["reannounced"] is True
    assert (unshelved.severity, unshelved.message) == (Severity.CRITICAL, "worse")
    assert book.get(alert_id).shelved_until_us is None


def test_unshelving_a_cleared_alert_does_not_reannounce() -> None:
    book = AlertBook()
    book.apply(f(1))
    book.shelve(only_id(book), "bob", 50, 2)
    book.apply(f(3, False))
    (unshelved,) = book.tick(50)
    assert unshelved.detail["reannounced"] is False


# -- suppression configuration -----------------------------------------------------------


def test_default_suppression() -> None:
    book = AlertBook()
    assert DEFAULT_NEVER_SUPPRESS == ("haccp_", "store_")
    assert book.is_suppressible("emark_t2")
    assert book.is_suppressible("compliance_yield")
    assert not book.is_suppressible("haccp_upper")
    assert not book.is_suppressible("store_temp")


def test_suppression_is_configurable() -> None:
    book = AlertBook(never_suppress=("label_",), suppressible_rules={"emark_t2", "label_gap"})
    assert book.is_suppressible("emark_t2")
    assert not book.is_suppressible("label_gap")
    assert not book.is_suppressible("giveaway")
    assert book.is_suppressible("haccp_x") is False  # not in the allow list
    book.set_line_mode("L1", "changeover", 1)
    assert [t.event for t in book.apply(f(2, rule="giveaway"))] == [E.RAISED]
    assert book.apply(f(3)) == []


def test_findings_without_a_line_are_never_suppressed() -> None:
    book = AlertBook()
    book.set_line_mode("L1", "washdown", 1)
    assert [t.event for t in book.apply(f(2, line=None))] == [E.RAISED]


def test_raised_after_suppression_notes_when_first_seen() -> None:
    book = AlertBook()
    book.set_line_mode("L1", "changeover", 1)
    book.apply(f(2, detail={"k": 1}), {"c": 1})
    (raised,) = book.set_line_mode("L1", "production", 10)
    assert raised.ts_us == 10
    assert raised.detail == {
        "k": 1,
        "first_seen_us": 2,
        "occurrences": 1,
        "first_us": 2,
        "last_us": 2,
        "config": {"c": 1},
    }
    assert book.line_mode("L1") == "production"


# -- andon -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severities", "colour"),
    [
        ([], "green"),
        ([Severity.WARNING], "amber"),
        ([Severity.MAJOR], "amber"),
        ([Severity.WARNING, Severity.CRITICAL], "red"),
        ([Severity.CRITICAL], "red"),
    ],
)
def test_andon_colour(severities: list[Severity], colour: str) -> None:
    book = AlertBook()
    for i, sev in enumerate(severities):
        book.apply(f(i, subject=f"s{i}", severity=sev))
    book.apply(f(99, rule="other", subject="x", severity=Severity.CRITICAL, line="L2"))
    assert book.andon_state("L1") == colour
    assert book.andon_state("L2") == "red"


def test_shelved_critical_leaves_amber_from_others() -> None:
    book = AlertBook()
    (crit,) = book.apply(f(1, subject="a", severity=Severity.CRITICAL))
    book.apply(f(2, subject="b", severity=Severity.WARNING))
    book.shelve(crit.alert_id, "ann", 100, 3)
    assert book.andon_state("L1") == "amber"


@pytest.mark.parametrize("mode", ["changeover", "washdown"])
def test_an_unacknowledged_critical_keeps_the_andon_red_through_any_line_mode(mode: str) -> None:
    book = AlertBook(never_suppress=())
    (use_by,) = book.apply(f(1, rule="shelf_life_use_by", severity=Severity.CRITICAL))
    book.apply(f(2, rule="label_weight", subject="w", severity=Severity.WARNING))
    book.set_line_mode("L1", mode, 3)
    assert {a.rule for a in book.active() if a.state == AlertState.SUPPRESSED} == {
        "shelf_life_use_by",
        "label_weight",
    }
    assert book.andon_state("L1") == "red"
    book.acknowledge(use_by.alert_id, "ann", "label line checked", 4)
    assert book.andon_state("L1") == "green", "acknowledged and suppressed: the mode rules"
    book.set_line_mode("L1", "production", 5)
    assert book.andon_state("L1") == "red", "still active after the changeover"


# -- restore -----------------------------------------------------------------------------


def _busy_book() -> AlertBook:
    book = AlertBook()
    book.apply(f(1, subject="unacked"))
    book.apply(f(2, subject="acked", severity=Severity.CRITICAL))
    book.acknowledge(book.active()[1].id, "ann", "on it", 3)
    book.apply(f(4, subject="shelved"))
    book.shelve(book.active()[2].id, "bob", 500, 5, "noisy")
    book.apply(f(6, subject="cleared-unacked"))
    book.apply(f(7, False, subject="cleared-unacked"))
    book.apply(f(8, subject="closed"))
    book.apply(f(9, False, subject="closed"))
    book.acknowledge(book.recent(1)[0].id, "ann", "", 10)
    book.apply(f(11, subject="suppressed", line="L2"))
    book.set_line_mode("L2", "washdown", 12)
    return book


def test_restore_round_trip() -> None:
    book = _busy_book()
    views = book.recent(100)
    assert {a.state for a in views} == set(AlertState)
    fresh = AlertBook()
    assert fresh.restore(reversed(views)) == []
    fresh.set_line_mode("L2", "washdown", 13)
    assert fresh.recent(100) == views
    assert fresh.active() == book.active()
    assert fresh.andon_state("L1") == book.andon_state("L1")


def test_restored_book_carries_on_without_floods() -> None:
    book = _busy_book()
    fresh = AlertBook()
    fresh.restore(book.recent(100))
    # The same conditions re-evaluated after the restart: nothing new to say.
    assert fresh.apply(f(20, subject="unacked")) == []
    assert fresh.apply(f(20, subject="acked", severity=Severity.CRITICAL)) == []
    assert [t.event for t in fresh.apply(f(21, False, subject="unacked"))] == [E.CLEARED]
    assert [t.event for t in fresh.apply(f(22, subject="closed"))] == [E.RAISED]
    (unshelved,) = fresh.tick(500)
    assert unshelved.subject == "shelved"
    # The line came back in production: the suppressed alert is announced again.
    assert [t.event for t in fresh.set_line_mode("L2", "production", 30)] == [E.UNSUPPRESSED]


def test_restore_repairs_two_active_alerts_for_one_subject() -> None:
    a = Alert("a", RULE, SUBJECT, "L1", Severity.MAJOR, AlertState.UNACKNOWLEDGED, 1, "m")
    b = Alert("b", RULE, SUBJECT, "L1", Severity.MAJOR, AlertState.UNACKNOWLEDGED, 2, "m")
    book = AlertBook()
    (cleared,) = book.restore([b, a])
    assert (cleared.alert_id, cleared.event, cleared.ts_us) == ("a", E.CLEARED, 2)
    assert [x.id for x in book.active()] == ["b"]


def test_restore_rejects_unknown_state() -> None:
    bad = Alert("a", RULE, SUBJECT, "L1", Severity.MAJOR, "weird", 1, "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown state"):
        AlertBook().restore([bad])


def test_history_is_bounded() -> None:
    book = AlertBook(max_history=2)
    ids = []
    for ts in range(0, 40, 4):
        (raised,) = book.apply(f(ts))
        ids.append(raised.alert_id)
        book.acknowledge(raised.alert_id, "ann", "", ts + 1)
        book.apply(f(ts + 2, False))
    assert [a.id for a in book.recent(100)] == ids[:-3:-1]
    with pytest.raises(KeyError):
        book.get(ids[0])


# -- properties --------------------------------------------------------------------------

findings_strategy = st.lists(
    st.tuples(
        st.booleans(),
        st.sampled_from(list(Severity)),
        st.sampled_from(["a", "b"]),
        st.sampled_from([None, "L1"]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(findings_strategy, st.lists(st.sampled_from(["production", "changeover"]), max_size=5))
def test_at_most_one_active_alert_per_subject(
    steps: list[tuple[bool, Severity, str, str | None]], modes: list[str]
) -> None:
    book = AlertBook()
    for ts, (active, sev, msg, line) in enumerate(steps):
        if modes and ts % 7 == 0:
            book.set_line_mode("L1", modes[(ts // 7) % len(modes)], ts)
            assert len(book.active()) <= 1
        was_active = bool(book.active())
        transitions = book.apply(f(ts, active, severity=sev, message=msg, line=line))
        events = [t.event for t in transitions]
        assert len(book.active()) <= 1
        if E.CLEARED in events:
            assert not active, "only an inactive finding clears"
            assert was_active
        if not active:
            assert book.active() == []


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=30),
    st.sampled_from(list(Severity)),
    st.dictionaries(st.sampled_from(["x", "y"]), st.integers(), max_size=2),
    st.integers(min_value=0, max_value=10**12),
)
def test_identical_active_findings_raise_once(
    n: int, sev: Severity, detail: dict[str, int], t0: int
) -> None:
    book = AlertBook()
    events = [
        t.event for ts in range(t0, t0 + n) for t in book.apply(f(ts, severity=sev, detail=detail))
    ]
    assert events == [E.RAISED]
    assert len(book.active()) == 1
