"""The warehouse in PostgreSQL: its SQL dialect, the schema's upgrade at open
(:mod:`sync.ingest.migrations`), and the connection (``synchronous_commit = on``, TCP
keep-alives, reconnected on loss). See :mod:`sync.ingest.warehouse` for the commit rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import conninfo as pg_conninfo

from sync.ingest.facts_pg import POSTGRES_FACTS, Partitions
from sync.ingest.facts_sql import FactWriter
from sync.ingest.migrations import postgres_engine, upgrade_to_head
from sync.ingest.warehouse_base import Dialect, Warehouse
from sync.ingest.warehouse_records import (
    Prepared,
    WarehouseError,
    WarehouseUnavailable,
)
from sync.protocol import Batch

# The module's old name: operators' log filters know the warehouse's messages by it.
logger = logging.getLogger("sync.ingest.warehouse")


_PG_HOUR = (
    "CASE WHEN jsonb_typeof(payload->'ts_us') = 'number'"
    " AND abs((payload->>'ts_us')::numeric) < 1e18"
    " THEN floor((payload->>'ts_us')::numeric / 3600000000)::bigint END"
)


_PG_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
"""SQLSTATE classes worth retrying: connection exception, transaction rollback (serialisation,
deadlock), insufficient resources (disk full), operator intervention (shutdown, statement
timeout), system error (I/O). Anything else (data, integrity, program limits) would fail the
same way again: retrying it forever would block the queue behind one poison batch."""


def _pg_error(exc: psycopg.Error, *, broken: bool) -> WarehouseError:
    state = exc.sqlstate
    if broken or state is None or state[:2] in _PG_TRANSIENT_CLASSES:
        return WarehouseUnavailable(f"PostgreSQL: {exc}")
    return WarehouseError(f"PostgreSQL [{state}]: {exc}")


POSTGRES = Dialect(
    mark="%s",
    run_number="payload->>'run_number'",
    hour=_PG_HOUR,
    now="now()",
    key_cutoff="now() - make_interval(days => %s)",
    key_cutoff_param=lambda days: days,
)


class PostgresWarehouse(Warehouse):
    """The warehouse in PostgreSQL (payload as JSONB). One connection, reconnected on loss."""

    kind = "postgres"
    dialect = POSTGRES

    def __init__(
        self,
        dsn: str,
        *,
        statement_timeout_s: float = 30.0,
        today: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self._today = today
        self._partitions = Partitions(self._execute)
        params = pg_conninfo.conninfo_to_dict(dsn)
        defaults: dict[str, str | int] = {
            "connect_timeout": 10,
            "application_name": "lineside-ingest",
            # Detect a dead server or a cut network instead of waiting forever.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        self._conninfo = pg_conninfo.make_conninfo(
            dsn, **{k: v for k, v in defaults.items() if k not in params}
        )
        self._statement_timeout_ms = int(statement_timeout_s * 1000)
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._conn.close()
            self._conn = None
        if self._conn is None:
            try:
                conn = psycopg.connect(self._conninfo, autocommit=True)
                # An ack promises durability: never let a server default weaken COMMIT.
                conn.execute("SET synchronous_commit = on")
                conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")
            except psycopg.Error as exc:
                raise WarehouseUnavailable(f"PostgreSQL unreachable: {exc}") from exc
            self._conn = conn
        return self._conn

    def _open(self) -> None:
        self._upgrade_schema()
        with self._transaction():
            self._partitions.load()
            self._partitions.ensure_months(self._today())
            self._prune_keys()

    def _fact_writer(self) -> FactWriter:
        return FactWriter(
            POSTGRES_FACTS, self._execute, self._executemany, self._partitions.ensure_for
        )

    def _upgrade_schema(self) -> None:
        """``upgrade head`` on a connection of its own, made with the warehouse's settings;
        under an advisory lock, as several ingest instances may start together."""
        engine = postgres_engine(self._conninfo)
        try:
            with engine.connect() as connection:
                upgrade_to_head(connection)
        except sa.exc.DBAPIError as exc:
            if isinstance(exc.orig, psycopg.Error):
                raise _pg_error(exc.orig, broken=exc.connection_invalidated) from exc
            raise WarehouseUnavailable(f"PostgreSQL: {exc}") from exc
        finally:
            engine.dispose()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        conn = self._connection()
        try:
            with conn.transaction():
                yield conn
        except psycopg.Error as exc:
            self._partitions.rolled_back()
            broken = conn.broken or conn.closed
            if broken:
                self._close()
            raise _pg_error(exc, broken=bool(broken)) from exc
        except BaseException:
            self._partitions.rolled_back()
            raise
        self._partitions.committed()

    def _insert_records(self, batch: Batch, records: Sequence[Prepared]) -> set[int]:
        conn = self._connection()
        cur = conn.execute(
            "INSERT INTO records (gateway, site, seq, stream, payload, payload_sha256)"
            " SELECT %s, %s, t.seq, %s, t.payload::jsonb, t.sha"
            " FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS t(seq, payload, sha)"
            " ON CONFLICT (gateway, seq) DO NOTHING RETURNING seq",
            (
                batch.gateway,
                batch.site,
                batch.stream,
                [r.seq for r in records],
                [r.payload for r in records],
                [r.sha256 for r in records],
            ),
        )
        return {int(row[0]) for row in cur.fetchall()}

    def _stored(self, gateway: str, seqs: Sequence[int]) -> dict[int, tuple[str, str, str]]:
        if not seqs:
            return {}
        cur = self._connection().execute(
            "SELECT seq, site, stream, payload_sha256 FROM records"
            " WHERE gateway = %s AND seq = ANY(%s::bigint[])",
            (gateway, list(seqs)),
        )
        return {int(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in cur.fetchall()}

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._transaction() as conn:
            return conn.execute(sql, params).fetchall()

    def _execute(self, sql: str, params: Sequence[object]) -> Any:
        return self._connection().execute(sql, params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._connection().cursor() as cur:
            cur.executemany(sql, rows)


__all__ = ["POSTGRES", "PostgresWarehouse"]
