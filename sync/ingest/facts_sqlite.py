"""The facts in SQLite: the SQL pieces and the values as the tables keep them (a timestamp
as ISO-8601 UTC text with microseconds, a boolean as 0/1, a date as 'YYYY-MM-DD')."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import cast

from sync.ingest.facts import EPOCH, FACT_HEAD
from sync.ingest.facts_sql import FactDialect

SQLITE_NOW = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')"
"""``now()`` in the facts' text form (SQLite's clock has milliseconds)."""


def iso_utc(moment: datetime) -> str:
    """'YYYY-MM-DDTHH:MM:SS.ffffffZ': sorts as the moments do."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_SECONDS: dict[int, str] = {}
"""Second since the epoch → its 'YYYY-MM-DDTHH:MM:SS'. Formatting a datetime costs about a
microsecond, the largest single cost of a fact row; a batch's records share their seconds."""
_SECONDS_KEPT = 4096


def utc_text(us: int) -> str:
    """:func:`iso_utc` of the moment ``us`` µs after the epoch, from the integer (exact)."""
    second, micro = divmod(us, 1_000_000)
    head = _SECONDS.get(second)
    if head is None:
        if len(_SECONDS) >= _SECONDS_KEPT:
            _SECONDS.clear()
        head = (EPOCH + timedelta(seconds=second)).isoformat()[: -len("+00:00")]
        _SECONDS[second] = head
    return f"{head}.{micro:06d}Z"


_AS_IS = frozenset({str, int, float, bool, type(None)})
"""Values the sqlite3 module binds as SQLite keeps them, checked by exact type. A bool is
bound as the integer 1 or 0 (a flag column of a fact row is INTEGER): passed as it is, not
turned into an int here first, which cost a pack's row 0.75 µs for its four flags."""


def sqlite_value(value: object) -> object:
    """A fact value as the sqlite3 module binds it to what SQLite keeps."""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def sqlite_row(values: Sequence[object]) -> tuple[object, ...]:
    """Every value of a row as :func:`sqlite_value` gives it."""
    return tuple([v if type(v) in _AS_IS else sqlite_value(v) for v in values])


_TS, _TS_US = FACT_HEAD.index("ts"), FACT_HEAD.index("ts_us")


def sqlite_fact_row(row: Sequence[object]) -> tuple[object, ...]:
    """:func:`sqlite_row` of a fact row, its ``ts`` made from ``ts_us`` by :func:`utc_text`
    (the same text). The head's other columns (gateway, site, seq) are kept as they are."""
    return (*row[:_TS], utc_text(cast(int, row[_TS_US])), *sqlite_row(row[_TS + 1 :]))


SQLITE_FACTS = FactDialect(
    mark="?",
    now=SQLITE_NOW,
    greatest="max",
    least="min",
    ts_param="?",
    records_received_at="(substr(received_at, 1, 23) || '000Z')",
    adapt=sqlite_value,
    adapt_row=sqlite_row,
    adapt_fact_row=sqlite_fact_row,
    ts_from_us=True,
)

__all__ = [
    "SQLITE_FACTS",
    "SQLITE_NOW",
    "iso_utc",
    "sqlite_fact_row",
    "sqlite_row",
    "sqlite_value",
    "utc_text",
]
