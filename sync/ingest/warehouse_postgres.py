"""The warehouse in PostgreSQL: its SQL dialect, the schema's upgrade at open
(:mod:`sync.ingest.migrations`), and its connections: a pool of ``pool_size``
(``lineside ingest --db-pool-size``), each with ``synchronous_commit = on``, a statement
timeout and TCP keep-alives; a connection found broken is discarded and replaced by the pool.
See :mod:`sync.ingest.warehouse` for the commit rules.

**Concurrency.** Up to ``pool_size`` batches commit at once, each on a thread and a
connection of its own (READ COMMITTED). Locks are taken in one order in every transaction:
the batch's ``records`` keys in ``seq`` order, then its site and gateway rows, then the
facts, the current state and the dimensions of that gateway (in key order), so two
transactions never wait for each other in a cycle. The gateway row, locked from the
gateway's upsert to COMMIT, serialises the batches of one gateway from that point on: each
re-derives the gateway's current state from the facts committed before it, and the
``seq`` guards of the upserts make the result independent of the commit order. A
transaction PostgreSQL aborts anyway (deadlock, serialisation) is run again
(:mod:`sync.ingest.pg_retry`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg import conninfo as pg_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from sync.ingest.facts_pg import POSTGRES_FACTS, Partitions
from sync.ingest.facts_sql import FactWriter
from sync.ingest.migrations import postgres_engine, upgrade_to_head
from sync.ingest.pg_retry import RETRIED_SQLSTATES, retry_transaction
from sync.ingest.warehouse_base import Dialect, Warehouse
from sync.ingest.warehouse_records import (
    Prepared,
    WarehouseError,
    WarehouseUnavailable,
)
from sync.protocol import Batch

# The module's old name: operators' log filters know the warehouse's messages by it.
logger = logging.getLogger("sync.ingest.warehouse")

T = TypeVar("T")
Connection = psycopg.Connection[tuple[Any, ...]]

POOL_SIZE_MAX = 32


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


MIGRATION_LOCK_TIMEOUT_MS = 5_000
"""How long a schema upgrade at start waits for any one lock before it gives up and is tried
again later (docs/warehouse.md, "Schema upgrades"). PostgreSQL queues a lock request behind
the locks held, and every later request for the same table behind it: an ``ALTER TABLE``
waiting for an analyst's long query would hold up every dashboard reading that table
until the query ended. Also bounds the wait for the advisory lock of another instance's
upgrade."""


def _pg_error(exc: psycopg.Error, *, broken: bool) -> WarehouseError:
    state = exc.sqlstate
    if (
        broken
        or state is None
        or state[:2] in _PG_TRANSIENT_CLASSES
        or state in RETRIED_SQLSTATES  # a lock not granted in time (55P03): try again later
    ):
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
    """The warehouse in PostgreSQL (payload as JSONB), on a pool of ``pool_size``
    connections; as many transactions may run at once."""

    kind = "postgres"
    dialect = POSTGRES

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 4,
        statement_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        today: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not 1 <= pool_size <= POOL_SIZE_MAX:
            raise ValueError(f"pool_size must be in 1..{POOL_SIZE_MAX}")
        super().__init__(workers=pool_size)
        self.pool_size = pool_size
        self._today = today
        self._partitions = Partitions(self._execute)
        params = pg_conninfo.conninfo_to_dict(dsn)
        defaults: dict[str, str | int] = {
            "connect_timeout": max(1, round(connect_timeout_s)),
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
        self._connect_timeout_s = connect_timeout_s
        self._pool: ConnectionPool[Connection] | None = None
        self._pool_lock = threading.Lock()
        self._local = threading.local()
        """The connection of the transaction running on this thread."""

    def _configure(self, conn: Connection) -> None:
        """Every pooled connection, once, when the pool makes it."""
        # An ack promises durability: never let a server default weaken COMMIT.
        conn.execute("SET synchronous_commit = on")
        conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")

    def _open_pool(self) -> ConnectionPool[Connection]:
        with self._pool_lock:
            if self._pool is not None:
                return self._pool
            pool: ConnectionPool[Connection] = ConnectionPool(
                self._conninfo,
                kwargs={"autocommit": True},
                min_size=self.pool_size,
                max_size=self.pool_size,
                configure=self._configure,
                # A connection the server closed while it was idle is replaced, not handed out.
                check=ConnectionPool.check_connection,
                timeout=self._connect_timeout_s,
                name="lineside-ingest",
                open=False,
            )
            try:
                pool.open(wait=True, timeout=self._connect_timeout_s)
            except PoolTimeout as exc:
                pool.close(timeout=0)
                raise WarehouseUnavailable(f"PostgreSQL unreachable: {exc}") from exc
            self._pool = pool
            return pool

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("warehouse statement outside a transaction")
        return conn

    def _open(self) -> None:
        self._upgrade_schema()
        self._open_pool()
        with self._transaction():
            self._partitions.load()
            self._partitions.ensure_months(self._today())
            self._prune_keys()

    def _fact_writer(self) -> FactWriter:
        return FactWriter(
            POSTGRES_FACTS, self._execute, self._executemany, self._partitions.ensure_for
        )

    def _retrying(self, what: str, transaction: Callable[[], T]) -> T:
        return retry_transaction(what, transaction)

    def _upgrade_schema(self) -> None:
        """``upgrade head`` on a connection of its own, made with the warehouse's settings;
        under an advisory lock, as several ingest instances may start together."""
        engine = postgres_engine(self._conninfo, lock_timeout_ms=MIGRATION_LOCK_TIMEOUT_MS)
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
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        pool = self._open_pool()
        try:
            with pool.connection() as conn:
                self._local.conn = conn
                try:
                    # The partitions made here are known to all threads after COMMIT only.
                    with self._partitions.transaction(), conn.transaction():
                        yield conn
                except psycopg.Error as exc:
                    # The pool discards a broken connection when it gets it back.
                    raise _pg_error(exc, broken=bool(conn.broken or conn.closed)) from exc
                finally:
                    self._local.conn = None
        except PoolTimeout as exc:
            raise WarehouseUnavailable(f"PostgreSQL: no connection: {exc}") from exc

    def _insert_records(self, batch: Batch, records: Sequence[Prepared]) -> set[int]:
        conn = self._connection()
        # In seq order: two batches with common sequences lock their keys in one order.
        records = sorted(records, key=lambda r: r.seq)
        # The arrays go in binary (%b): psycopg's text format quotes and escapes every
        # payload in Python, which cost 50-100 µs per record, more than everything else the
        # ingest does with it (docs/scale-out.md); binary sends each string as it is.
        cur = conn.execute(
            "INSERT INTO records (gateway, site, seq, stream, payload, payload_sha256)"
            " SELECT %s, %s, t.seq, %s, t.payload::jsonb, t.sha"
            " FROM unnest(%b::bigint[], %b::text[], %b::text[]) AS t(seq, payload, sha)"
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

    def _insert_and_read(
        self, batch: Batch, records: Sequence[Prepared]
    ) -> tuple[set[int], dict[int, tuple[str, str, str]]]:
        # A sequence this INSERT stored holds the batch's one record with it: its row was
        # written by this transaction, which nobody else can change before it ends. Only the
        # others are read back: those stored before, and those the batch holds more than once
        # (which occurrence went in is the server's to say). On a fresh batch that is none.
        inserted = self._insert_records(batch, records) if records else set()
        first: dict[int, Prepared] = {}
        repeated: set[int] = set()
        for record in records:
            if first.setdefault(record.seq, record) is not record:
                repeated.add(record.seq)
        known = {
            seq: (batch.site, batch.stream, first[seq].sha256)
            for seq in inserted
            if seq not in repeated
        }
        others = sorted(seq for seq in first if seq not in known)
        stored = self._stored(batch.gateway, others)
        stored.update(known)
        return inserted, stored

    def _stored(self, gateway: str, seqs: Sequence[int]) -> dict[int, tuple[str, str, str]]:
        if not seqs:
            return {}
        cur = self._connection().execute(
            "SELECT seq, site, stream, payload_sha256 FROM records"
            " WHERE gateway = %s AND seq = ANY(%b::bigint[])",
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
