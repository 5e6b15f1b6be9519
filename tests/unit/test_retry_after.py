"""The one Retry-After parser (gateway/core/retry_after.py), RFC 9110 §10.2.3."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.core.clock import ManualClock
from gateway.core.retry_after import parse_retry_after, utc_from_us

NOW = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Mon, 05 Jan 2026 10:00:30 GMT", 30.0),
        ("Mon, 05 Jan 2026 09:00:00 GMT", 0.0),  # in the past: now
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("\u0662", None),  # an Arabic-Indic digit: isdigit() says yes, RFC 9110 says no
        ("\u00b2", None),  # a superscript two: isdigit() says yes, int() refuses it
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_a_long_wait_is_capped_at_the_maximum() -> None:
    assert parse_retry_after("86400", now=NOW, maximum=300.0) == 300.0
    assert parse_retry_after("Mon, 05 Jan 2026 12:00:00 GMT", now=NOW, maximum=60.0) == 60.0
    assert parse_retry_after("30", now=NOW, maximum=300.0) == 30.0


def test_an_http_date_is_measured_from_the_injected_clock_not_the_wall_clock() -> None:
    # A manual clock an hour before the date: the wait is that hour, whatever today is.
    clock = ManualClock(wall_us=int(NOW.timestamp() * 1_000_000))
    wait = parse_retry_after("Mon, 05 Jan 2026 11:00:00 GMT", now=utc_from_us(clock.wall_us()))
    assert wait == 3600.0


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_retry_after("Mon, 05 Jan 2026 11:00:00 GMT", now=NOW.replace(tzinfo=None))
