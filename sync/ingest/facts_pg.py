"""The facts in PostgreSQL: the SQL pieces, and the monthly partitions of the partitioned
fact tables, made when needed (docs/warehouse-schema.md).

Each partitioned table has ``<table>_YYYYMM`` per month and ``<table>_default``. The
partitions of the current month and the next two are made at open; a record of a month
without its partition gets it made in the batch's own transaction, before the insert. A
month outside :data:`FIRST_YEAR`..:data:`LAST_YEAR` (a gateway clock far off) goes to the
default partition, which therefore never holds a row of a month that has a partition.
The partitions known are cached (loaded at open, added after COMMIT), so a batch of
known months costs one set difference.

Several threads (and several ingest instances) make partitions at once: each transaction
takes an advisory transaction lock before ``CREATE TABLE IF NOT EXISTS``, so one makes a
month and the others, once it committed, find it there. The partitions a transaction made
are its own (per thread) until it committed; only then does the shared cache learn them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sync.ingest.facts import PARTITIONED_FACTS, Fact
from sync.ingest.facts_sql import FactDialect
from sync.ingest.migrations.typed_ddl import TABLES, column_parts

FIRST_YEAR = 2000
LAST_YEAR = 2099
PARTITION_LOCK = "lineside-warehouse-partitions"


def _identity(value: object) -> object:
    return value


def _json_value(value: object) -> str:
    """A value JSON has no type for, as the text its column's input function reads: ISO 8601
    for datetimes (with their offset) and dates, the digits of a Decimal."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"no JSON form for a fact value of type {type(value).__name__}")


_JSONB_COLUMNS: dict[str, frozenset[str]] = {
    table.name: frozenset(
        name for name, kind, _ in (column_parts(c) for c in table.columns) if kind == "JSONB"
    )
    for table in TABLES
}
"""The JSONB columns of each table: their values are JSON texts, sent as the JSON they hold
(sent as strings, ``json_populate_recordset`` would store a JSON string)."""


def json_rows_insert(
    table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[str, str]:
    """One INSERT of all ``rows``, and its parameter: the rows as a JSON array of objects.

    ``json_populate_recordset`` turns each value into its column's type with that type's
    input function (json, not jsonb: a number stays the text it was sent as, and a float's
    shortest round-trip form reads back as the same double). One statement per batch, where
    a pipelined ``executemany`` cost the driver a protocol round per row and the server a
    statement per row (docs/scale-out.md)."""
    names = ", ".join(columns)
    sql = (
        f"INSERT INTO {table} ({names}) SELECT {names}"  # noqa: S608 (fixed names)
        f" FROM json_populate_recordset(NULL::{table}, %s::json) ON CONFLICT DO NOTHING"
    )
    embedded = [i for i, c in enumerate(columns) if c in _JSONB_COLUMNS.get(table, ())]
    objects = []
    for row in rows:
        obj = dict(zip(columns, row, strict=True))
        for i in embedded:
            text = row[i]
            if isinstance(text, str):
                obj[columns[i]] = json.loads(text)
        objects.append(obj)
    body = json.dumps(objects, default=_json_value, allow_nan=False, separators=(",", ":"))
    return sql, body


POSTGRES_FACTS = FactDialect(
    mark="%s",
    now="now()",
    greatest="GREATEST",
    least="LEAST",
    ts_param="%s::timestamptz",
    records_received_at="received_at",
    adapt=_identity,
    adapt_row=tuple,
    adapt_fact_row=tuple,
    json_rows=json_rows_insert,
)

Month = tuple[int, int]


def months_from(today: datetime, count: int) -> list[Month]:
    """``count`` months starting with ``today``'s."""
    year, month = today.year, today.month
    months = []
    for _ in range(count):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def partition_name(table: str, month: Month) -> str:
    return f"{table}_{month[0]:04d}{month[1]:02d}"


def _bounds(month: Month) -> tuple[str, str]:
    year, mon = month
    after = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return f"{year:04d}-{mon:02d}-01 00:00:00+00", f"{after[0]:04d}-{after[1]:02d}-01 00:00:00+00"


class Partitions:
    """The monthly partitions: which exist, and making the missing ones. Safe to use from
    several threads, each running one transaction at a time (:meth:`transaction`)."""

    def __init__(self, execute: Callable[[str, Sequence[object]], Any]) -> None:
        self._execute = execute
        self.known: frozenset[str] = frozenset()
        """The partitions known to exist (committed); replaced whole, never mutated."""
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def _pending(self) -> set[str]:
        """The partitions this thread's transaction made, not committed yet."""
        pending: set[str] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = set()
        return pending

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Around one transaction (outside its COMMIT): the partitions it made become
        known if it committed, and are forgotten if it did not."""
        self._pending.clear()
        try:
            yield
        except BaseException:
            self.rolled_back()
            raise
        self.committed()

    def load(self) -> None:
        """Read the existing partitions (at open)."""
        rows = self._execute(
            "SELECT c.relname FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE p.relname = ANY(%s) AND p.relnamespace = to_regnamespace(current_schema())",
            (sorted(PARTITIONED_FACTS),),
        ).fetchall()
        with self._lock:
            self.known = frozenset(str(row[0]) for row in rows)

    def ensure(self, wanted: Iterable[tuple[str, Month]]) -> None:
        """Make the partitions of ``(table, month)`` not known yet (in the transaction)."""
        missing = sorted(
            {
                (table, month)
                for table, month in wanted
                if FIRST_YEAR <= month[0] <= LAST_YEAR
                and partition_name(table, month) not in self.known
            }
        )
        if not missing:
            return
        # Several ingest instances may need the same month at once.
        self._execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (PARTITION_LOCK,))
        for table, month in missing:
            low, high = _bounds(month)
            name = partition_name(table, month)
            self._execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table}"
                f" FOR VALUES FROM ('{low}') TO ('{high}')",
                (),
            )
            self._pending.add(name)

    def ensure_for(self, facts: Sequence[Fact]) -> None:
        """The partitions the facts of a batch go to."""
        self.ensure(
            {(f.stream, (f.ts.year, f.ts.month)) for f in facts if f.stream in PARTITIONED_FACTS}
        )

    def ensure_months(self, today: datetime, count: int = 3) -> None:
        """The partitions of ``today``'s month and the next ones (at open)."""
        self.ensure(
            (table, month) for table in PARTITIONED_FACTS for month in months_from(today, count)
        )

    def committed(self) -> None:
        """The transaction that made the pending partitions committed."""
        pending = self._pending
        if pending:
            with self._lock:
                self.known = self.known | pending
            pending.clear()

    def rolled_back(self) -> None:
        self._pending.clear()


__all__ = [
    "FIRST_YEAR",
    "LAST_YEAR",
    "POSTGRES_FACTS",
    "Partitions",
    "months_from",
    "partition_name",
]
