"""The one ``Retry-After`` parser: how long a server asks us to wait before trying again.

Used by the HTTPS uplink (:mod:`sync.https_uplink`) and the HTTP ERP source
(:mod:`adapters.erp.http_source`); both honour the header on 429 and 5xx answers
(docs/reference/reliability.md §7 rows 16-17).

RFC 9110 §10.2.3 allows two forms:

* ``delay-seconds`` = ``1*DIGIT``: ASCII digits only. ``str.isdigit`` is not the test for
  it, because it also accepts other scripts' digits ("٢") and superscripts ("²"), which
  ``int`` then reads or chokes on; a header with them is invalid and ignored.
* ``HTTP-date``: always GMT (RFC 9110 §5.6.7); a date in the past means "now" (0 s).

Pure: the HTTP-date is compared with the ``now`` the caller passes (from its injected
clock), never with the wall clock read here, so tests and a skewed clock behave alike.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from typing import Final

_DELAY_SECONDS: Final = re.compile(r"[0-9]+")


def parse_retry_after(
    value: str | None, *, now: datetime, maximum: float | None = None
) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value, or None if absent or invalid.

    ``now`` must be timezone-aware. With ``maximum`` the wait is capped at it, so a server
    asking for hours cannot stop the caller from trying again at least that often.
    """
    if value is None:
        return None
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    seconds = _delay_seconds(value.strip(), now)
    if seconds is None or maximum is None:
        return seconds
    return min(seconds, maximum)


def _delay_seconds(value: str, now: datetime) -> float | None:
    if _DELAY_SECONDS.fullmatch(value):
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # "-0000" parses as naive; an HTTP-date is GMT by definition.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def utc_from_us(wall_us: int) -> datetime:
    """An injected clock's wall time (µs since the epoch) as the aware ``now`` above."""
    return datetime.fromtimestamp(wall_us / 1_000_000, UTC)


__all__ = ["parse_retry_after", "utc_from_us"]
