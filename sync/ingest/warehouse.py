"""The central warehouse: idempotent, conflict-detecting storage of gateway record batches.

Every record is stored once under its identity ``(gateway, seq)`` in the ``records`` table,
with its JSON payload and the SHA-256 of the payload's canonical JSON (sorted keys, no
whitespace). :meth:`Warehouse.commit_batch` runs ONE transaction per batch:

1. ``INSERT … ON CONFLICT (gateway, seq) DO NOTHING`` for every valid record;
2. read back the stored ``(site, stream, payload_sha256)`` of every sequence in the batch:
   the same values → the record is committed (newly inserted, or a *duplicate*: a redelivery
   or a resend, counted and still acknowledged); different values → an id-reuse bug at the
   gateway (docs/reference/reliability.md §3.4): a row in ``conflicts``, an ERROR log line, and the
   sequence is refused in the ack (``conflicts``), never acknowledged as committed;
3. ``COMMIT``; only then is the :class:`~sync.protocol.Ack` built and returned.

A record the database could not store faithfully (a non-finite number, a NUL character, a
lone surrogate, a sequence outside BIGINT), or that does not match its stream's schema (exact
JSON types derived from the gateway's own tables, no coercion, no unknown fields, bounded
sizes: :mod:`sync.record_schema`), is refused the same way, with an ``invalid record``
reason, instead of failing the whole batch and blocking the gateway's outbox (a poison record is
refused, never left to block the queue). A batch of an unknown stream is refused whole.

**Idempotency keys** (HTTPS): a batch committed with an ``Idempotency-Key`` records the key
with a fingerprint of the batch (site, stream, every ``(seq, payload_sha256)``) in the same
transaction. The same key again with the same content is a retry (acked again); with other
content it is refused whole (:class:`IdempotencyKeyReused`, HTTP 422) and nothing of it is
stored. Keys are kept :data:`IDEMPOTENCY_KEY_DAYS` days.

Two implementations share that logic: :class:`PostgresWarehouse` (psycopg 3, JSONB, a pool
of connections) and :class:`SqliteWarehouse` (stdlib ``sqlite3``, the embedded default).
Each runs its database work on threads of its own (SQLite: one, so its transactions are
serialised; PostgreSQL: one per pooled connection, so that many batches commit at once), so
the event loop never blocks, and a caller cancelled mid-commit never leaves a transaction
half done: the thread finishes it (COMMIT or ROLLBACK) and the result is discarded — the
batch is then not acknowledged, is sent again, and lands as a duplicate.

Durability: an ack makes the gateway delete the records from its outbox, so a commit must
survive power loss before it is acknowledged: SQLite runs ``synchronous=FULL`` in WAL mode,
and PostgreSQL sessions force ``synchronous_commit = on`` whatever the server default.

In the same transaction, each record inserted gets its typed fact row (``packs``,
``temperatures``, ``label_scans``, …), and the current state (``alerts_current``, ``runs``)
and dimensions (``sites``, ``gateways``, ``lines``) it changes are updated
(docs/warehouse-schema.md). ``counts(gateway)`` is the reconciliation query: records per
gateway, stream, run and hour of the record's own ``ts_us``.

The schema is made by migrations (:mod:`sync.ingest.migrations`), upgraded to head at
:meth:`Warehouse.open`.

Files: :mod:`sync.ingest.warehouse_records` (errors, rows, the preparation and checks of
records), :mod:`sync.ingest.warehouse_base` (the commit and the queries both databases
share), :mod:`sync.ingest.warehouse_postgres` and :mod:`sync.ingest.warehouse_sqlite` (the
dialects and connections), :mod:`sync.ingest.facts` (a record's typed row),
:mod:`sync.ingest.fact_state` (runs and names from facts), :mod:`sync.ingest.facts_sql` with
:mod:`sync.ingest.facts_pg` and :mod:`sync.ingest.facts_sqlite` (writing them),
:mod:`sync.ingest.backfill`. This module names the warehouse's parts and picks one.
"""

from __future__ import annotations

from pathlib import Path

from sync.ingest.warehouse_base import Dialect, Warehouse
from sync.ingest.warehouse_postgres import PostgresWarehouse
from sync.ingest.warehouse_records import (
    IDEMPOTENCY_KEY_DAYS,
    REASON_DIFFERENT_PAYLOAD,
    REASON_DIFFERENT_SITE,
    REASON_DIFFERENT_STREAM,
    ConflictRow,
    CountRow,
    IdempotencyKeyReused,
    WarehouseError,
    WarehouseStats,
    WarehouseUnavailable,
    canonical_json,
    check_batch,
    decode_message,
    payload_sha256,
)
from sync.ingest.warehouse_sqlite import SqliteWarehouse


def create_warehouse(
    *, postgres_dsn: str | None, sqlite_path: Path | None, pool_size: int = 4
) -> Warehouse:
    """PostgreSQL (``pool_size`` connections) when a DSN is given, otherwise the embedded
    SQLite file."""
    if postgres_dsn:
        return PostgresWarehouse(postgres_dsn, pool_size=pool_size)
    if sqlite_path is None:
        raise ValueError("give a PostgreSQL DSN or a SQLite path for the warehouse")
    return SqliteWarehouse(sqlite_path)


__all__ = [
    "IDEMPOTENCY_KEY_DAYS",
    "REASON_DIFFERENT_PAYLOAD",
    "REASON_DIFFERENT_SITE",
    "REASON_DIFFERENT_STREAM",
    "ConflictRow",
    "CountRow",
    "Dialect",
    "IdempotencyKeyReused",
    "PostgresWarehouse",
    "SqliteWarehouse",
    "Warehouse",
    "WarehouseError",
    "WarehouseStats",
    "WarehouseUnavailable",
    "canonical_json",
    "check_batch",
    "create_warehouse",
    "decode_message",
    "payload_sha256",
]
