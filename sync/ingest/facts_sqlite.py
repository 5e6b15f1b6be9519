"""The facts in SQLite: the SQL pieces and the values as the tables keep them (a timestamp
as ISO-8601 UTC text with microseconds, a boolean as 0/1, a date as 'YYYY-MM-DD')."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sync.ingest.facts_sql import FactDialect

SQLITE_NOW = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')"
"""``now()`` in the facts' text form (SQLite's clock has milliseconds)."""


def iso_utc(moment: datetime) -> str:
    """'YYYY-MM-DDTHH:MM:SS.ffffffZ': sorts as the moments do."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_AS_IS = frozenset({str, int, float, type(None)})
"""Values SQLite keeps as they are (checked by exact type: a bool is not an int here)."""


def sqlite_value(value: object) -> object:
    """A fact value as SQLite keeps it."""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


SQLITE_FACTS = FactDialect(
    mark="?",
    now=SQLITE_NOW,
    greatest="max",
    least="min",
    ts_param="?",
    records_received_at="(substr(received_at, 1, 23) || '000Z')",
    adapt=sqlite_value,
)

__all__ = ["SQLITE_FACTS", "SQLITE_NOW", "iso_utc", "sqlite_value"]
