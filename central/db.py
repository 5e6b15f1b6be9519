"""One read-only connection to the warehouse, PostgreSQL or SQLite, and the value forms of
each: statements are written once with ``?`` placeholders; values come back as Python types.

The warehouse keeps the same tables in both databases (sync/ingest/migrations/typed_ddl.py):
SQLite stores a timestamp as ISO-8601 UTC text, a boolean as 0/1, a NUMERIC as its decimal
string and JSONB as JSON text; PostgreSQL gives datetimes, booleans, Decimals and parsed
JSON. The helpers below turn either into one form.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from central.errors import WarehouseReadError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
_SQLITE_TS = "%Y-%m-%dT%H:%M:%S.%fZ"


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_us(ts_us: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch (exact, no float)."""
    return EPOCH + timedelta(microseconds=ts_us)


SESSION_OPTIONS = "-c default_transaction_read_only=on -c TimeZone=UTC"
"""Read-only, and in UTC: every timestamp is handed out in UTC (:func:`ts`), and psycopg
gives a session in UTC its datetimes in ``datetime.UTC`` itself, where another zone's cost a
zone conversion per value (a third of a batch trace's time at 10 million packs:
docs/benchmarks.md). The views' SQL names UTC itself, so no figure depends on it."""


class Db:
    """A read-only connection; ``rows`` runs one parameterised statement."""

    def __init__(self, target: str) -> None:
        self.postgres = target.startswith(("postgresql://", "postgres://"))
        self.target = target
        try:
            if self.postgres:
                self._pg: psycopg.Connection[tuple[Any, ...]] | None = psycopg.connect(
                    target,
                    autocommit=True,
                    connect_timeout=10,
                    # jit off: the reader's queries are per-run index lookups whose estimated
                    # cost (one subplan per pack in pack_products) crosses jit_above_cost on a
                    # long run, and compiling then costs a second the lookup itself does not.
                    options=SESSION_OPTIONS + " -c jit=off",
                )
                self._lite: sqlite3.Connection | None = None
            else:
                path = Path(target)
                if not path.is_file():
                    raise WarehouseReadError(f"no warehouse file at {target}")
                self._pg = None
                self._lite = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False
                )
        except (psycopg.Error, sqlite3.Error) as exc:
            raise WarehouseReadError(f"cannot open the warehouse: {_short(exc)}") from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._pg is not None:
            self._pg.close()
            self._pg = None
        if self._lite is not None:
            self._lite.close()
            self._lite = None

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one statement; database errors become WarehouseReadError."""
        try:
            if self._pg is not None:
                return self._pg.execute(sql.replace("?", "%s"), list(params)).fetchall()
            if self._lite is not None:
                return self._lite.execute(sql, tuple(params)).fetchall()
        except (psycopg.Error, sqlite3.Error) as exc:
            raise WarehouseReadError(f"warehouse query failed: {_short(exc)}") from exc
        raise WarehouseReadError("the warehouse reader is closed")

    def ts_param(self, moment: datetime) -> Any:
        """A timestamp as the database compares it."""
        if self.postgres:
            return moment
        return moment.astimezone(UTC).strftime(_SQLITE_TS)

    def json_text(self, column: str, key: str) -> str:
        """SQL for one top-level text field of a JSON column."""
        if self.postgres:
            return f"({column} ->> '{key}')"
        return f"json_extract({column}, '$.{key}')"


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def ts(value: Any) -> datetime:
    """A timestamptz column's value as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def ts_or_none(value: Any) -> datetime | None:
    return None if value is None else ts(value)


def day(value: Any) -> date | None:
    """A DATE column's value."""
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def boolean(value: Any) -> bool | None:
    return None if value is None else bool(value)


def decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def decimal_text(value: Any) -> str | None:
    """A NUMERIC column back as the edge's decimal string (PostgreSQL keeps its digits)."""
    return None if value is None else str(value)


def parsed(value: Any) -> Any:
    """A JSONB column's value, parsed."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def compact_json(value: Any) -> str:
    """JSON as the gateway's store writes a record's dict (gateway/store/record_tables.py)."""
    return json.dumps(parsed(value), allow_nan=False, sort_keys=True, separators=(",", ":"))
