"""The SQLite warehouse's fact values: the fast row adaptation gives exactly the text and
numbers the value-by-value one gives (the tables compare and sort timestamps as text)."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.ingest import facts_sqlite
from sync.ingest.facts import CALENDAR_US, EPOCH, FactError, build_fact, in_calendar, timestamp
from sync.ingest.facts_sqlite import (
    iso_utc,
    sqlite_fact_row,
    sqlite_row,
    sqlite_value,
    utc_text,
)

# Every microsecond a datetime can hold, in µs since the epoch.
FIRST_US = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
LAST_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - EPOCH) // timedelta(
    microseconds=1
)


@given(st.integers(min_value=FIRST_US, max_value=LAST_US))
def test_the_text_of_a_count_of_microseconds_is_that_of_its_datetime(us: int) -> None:
    assert utc_text(us) == iso_utc(timestamp(us))


def verdict(check: object, us: int) -> str | None:
    try:
        check(us)  # type: ignore[operator]
    except FactError as exc:
        return str(exc)
    return None


@given(
    st.one_of(
        st.integers(),
        st.integers(min_value=FIRST_US - 10, max_value=FIRST_US + 10),
        st.integers(min_value=LAST_US - 10, max_value=LAST_US + 10),
        st.integers(min_value=-(2**80), max_value=2**80),
    )
)
def test_the_calendar_check_gives_the_verdicts_of_making_the_moment(us: int) -> None:
    assert verdict(in_calendar, us) == verdict(timestamp, us)


def test_a_fact_makes_its_moment_only_when_asked_and_then_the_same() -> None:
    assert CALENDAR_US == (FIRST_US, LAST_US)
    data = {"ts_us": LAST_US, "line": "L1", "device": "p", "probe": "P1", "celsius": 3.5}
    fact = build_fact("temperatures", "gw", "site", 7, {**data, "flags": 0})
    assert fact._ts is None
    assert fact.ts == timestamp(LAST_US)
    assert fact.row[3] is fact.ts
    late = {**data, "flags": 0, "ts_us": LAST_US + 1}
    with pytest.raises(FactError, match=f"^time {LAST_US + 1} µs is outside the calendar$"):
        build_fact("temperatures", "gw", "site", 8, late)


def test_the_edges_of_the_calendar_and_of_a_second() -> None:
    assert utc_text(FIRST_US) == "0001-01-01T00:00:00.000000Z"
    assert utc_text(LAST_US) == "9999-12-31T23:59:59.999999Z"
    assert utc_text(-1) == "1969-12-31T23:59:59.999999Z"
    assert utc_text(0) == "1970-01-01T00:00:00.000000Z"
    assert utc_text(1_000_000) == "1970-01-01T00:00:01.000000Z"


def test_the_seconds_remembered_are_bounded() -> None:
    for second in range(facts_sqlite._SECONDS_KEPT + 10):
        utc_text(second * 1_000_000 + 5)
    assert len(facts_sqlite._SECONDS) <= facts_sqlite._SECONDS_KEPT
    assert utc_text(3 * 1_000_000 + 7) == "1970-01-01T00:00:03.000007Z"


row_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])),
)


@given(st.lists(row_values, max_size=12))
def test_a_row_is_adapted_as_each_of_its_values(values: list[object]) -> None:
    adapted = sqlite_row(values)
    assert adapted == tuple(sqlite_value(v) for v in values)
    assert [type(v) for v in adapted] == [type(sqlite_value(v)) for v in values]


def test_a_fact_row_is_adapted_as_each_of_its_values() -> None:
    payload = {
        "ts_us": 1_780_000_000_123_456,
        "line": "L1",
        "device": "probes",
        "probe": "P1",
        "location": "chiller",
        "run_number": None,
        "celsius": 2.5,
        "flags": 0b110,
    }
    fact = build_fact("temperatures", "gw-1", "site-a", 7, payload)
    received = datetime(2026, 6, 1, 12, 0, 0, 1, tzinfo=UTC)
    for row in (fact.row, (*fact.row, received)):
        adapted = sqlite_fact_row(row)
        assert adapted == tuple(sqlite_value(v) for v in row)
        assert [type(v) for v in adapted] == [type(sqlite_value(v)) for v in row]
    assert sqlite_fact_row(fact.row)[3] == "2026-05-28T20:26:40.123456Z"
    # SQLite's writer passes the row without the datetime (it makes ts from ts_us).
    assert sqlite_fact_row(fact.row_by_us) == sqlite_fact_row(fact.row)
    fresh = build_fact("temperatures", "gw-1", "site-a", 7, payload)
    assert sqlite_fact_row((*fresh.row_by_us, received)) == sqlite_fact_row((*fact.row, received))
    assert fresh._ts is None  # and so no datetime was made for it


def test_values_are_stored_as_the_tables_hold_them() -> None:
    row = sqlite_row([True, False, date(2026, 2, 3), None, 1.5, "x"])
    assert row == (True, False, "2026-02-03", None, 1.5, "x")
    # What a STRICT table keeps of them: a flag as the integer 1 or 0, a date as its text.
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute("CREATE TABLE t (a INTEGER, b INTEGER, c TEXT, d TEXT, e REAL, f TEXT) STRICT")
        db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", row)
        stored = db.execute("SELECT a, typeof(a), b, typeof(b), c, d, e, f FROM t").fetchone()
    assert stored == (1, "integer", 0, "integer", "2026-02-03", None, 1.5, "x")
