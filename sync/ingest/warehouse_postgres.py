"""The warehouse in PostgreSQL: the schema (payload as JSONB), typed views per stream, its
SQL dialect, and the connection (``synchronous_commit = on``, TCP keep-alives, reconnected
on loss). See :mod:`sync.ingest.warehouse` for the commit rules.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo

from sync.ingest.warehouse_base import Dialect, Warehouse
from sync.ingest.warehouse_records import (
    Prepared,
    WarehouseError,
    WarehouseUnavailable,
    edge_columns,
    quote_identifier,
    sql_literal,
)
from sync.protocol import Batch

# The module's old name: operators' log filters know the warehouse's messages by it.
logger = logging.getLogger("sync.ingest.warehouse")


_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    gateway        TEXT        NOT NULL,
    site           TEXT        NOT NULL,
    seq            BIGINT      NOT NULL,
    stream         TEXT        NOT NULL,
    payload        JSONB       NOT NULL,
    payload_sha256 TEXT        NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, seq)
);
CREATE INDEX IF NOT EXISTS records_gateway_stream ON records (gateway, stream, seq);
CREATE TABLE IF NOT EXISTS conflicts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway         TEXT        NOT NULL,
    site            TEXT        NOT NULL,
    seq             BIGINT      NOT NULL,
    stream          TEXT        NOT NULL,
    payload         TEXT        NOT NULL,
    payload_sha256  TEXT        NOT NULL,
    existing_sha256 TEXT,
    reason          TEXT        NOT NULL,
    occurrences     BIGINT      NOT NULL DEFAULT 1,
    first_seen      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (gateway, seq, payload_sha256)
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    gateway     TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    first_seen  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_first_seen ON idempotency_keys (first_seen);
"""


def _pg_column(name: str, declared: str) -> str:
    value, text = f"payload->{sql_literal(name)}", f"payload->>{sql_literal(name)}"
    if declared == "INTEGER":
        return (
            f"CASE jsonb_typeof({value})"
            f" WHEN 'number' THEN CASE WHEN abs(({text})::numeric) < 9e18"
            f" THEN trunc(({text})::numeric)::bigint END"
            f" WHEN 'boolean' THEN ({text})::boolean::int::bigint END AS {quote_identifier(name)}"
        )
    if declared == "REAL":
        return (
            f"CASE WHEN jsonb_typeof({value}) = 'number'"
            f" AND abs(({text})::numeric) < 1e300"
            f" THEN ({text})::double precision END AS {quote_identifier(name)}"
        )
    return f"{text} AS {quote_identifier(name)}"


def _pg_views() -> list[str]:
    views = []
    for stream, columns in edge_columns().items():
        select = ", ".join(_pg_column(name, declared) for name, declared in columns)
        views.append(
            f"CREATE OR REPLACE VIEW {quote_identifier(stream)} AS"  # noqa: S608 (names from the schema)
            f" SELECT gateway, site, seq, received_at, {select}"
            f" FROM records WHERE stream = {sql_literal(stream)}"
        )
    return views


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

    def __init__(self, dsn: str, *, statement_timeout_s: float = 30.0) -> None:
        super().__init__()
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
        conn = self._connection()
        with self._transaction():
            # Several ingest instances may start together: serialise the DDL.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('lineside-ingest-schema'))")
            conn.execute(_PG_SCHEMA)
            for view in _pg_views():
                conn.execute(view)
            self._prune_keys()

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
            broken = conn.broken or conn.closed
            if broken:
                self._close()
            raise _pg_error(exc, broken=bool(broken)) from exc

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
