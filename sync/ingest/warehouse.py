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

Two implementations share that logic: :class:`PostgresWarehouse` (psycopg 3, JSONB) and
:class:`SqliteWarehouse` (stdlib ``sqlite3``, the embedded default). Each runs all of its
database work on one dedicated thread, so the event loop never blocks, transactions are
serialised, and a caller cancelled mid-commit never leaves a transaction half done: the
thread finishes it (COMMIT or ROLLBACK) and the result is discarded — the batch is then not
acknowledged, is sent again, and lands as a duplicate.

Durability: an ack makes the gateway delete the records from its outbox, so a commit must
survive power loss before it is acknowledged: SQLite runs ``synchronous=FULL`` in WAL mode,
and PostgreSQL sessions force ``synchronous_commit = on`` whatever the server default.

Per-stream views (``packs``, ``temperatures``, ``label_scans``, …) expose the edge columns
(taken from :mod:`gateway.schema`, so they follow its migrations) typed from the JSON, and
``counts(gateway)`` is the reconciliation query: records per gateway, stream, run and hour
of the record's own ``ts_us``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg
from psycopg import conninfo as pg_conninfo

from gateway.schema import MIGRATIONS, RECORD_STREAMS
from sync.protocol import MAX_BATCH_BYTES, Ack, Batch, ProtocolError, decode_batch
from sync.record_schema import SchemaViolation, stream_schemas, validate_record

logger = logging.getLogger(__name__)

T = TypeVar("T")

BIGINT_MAX = 2**63 - 1
HOUR_US = 3_600_000_000
REASON_DIFFERENT_PAYLOAD = "same sequence, different payload"
REASON_DIFFERENT_STREAM = "same sequence, different stream"
REASON_DIFFERENT_SITE = "same sequence, different site"
_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_IN_CHUNK = 500
"""Sequences per ``IN (…)`` list for SQLite (far below its variable limit)."""
IDEMPOTENCY_KEY_DAYS = 30
"""How long an Idempotency-Key and its batch's fingerprint are remembered."""
_PRUNE_EVERY = 1000
"""Expired idempotency keys are deleted at open and every this many keyed commits."""


class WarehouseError(Exception):
    """The warehouse could not commit a batch: nothing of it is acknowledged."""


class WarehouseUnavailable(WarehouseError):
    """A transient failure (connection lost, database locked or full): retry later."""


class IdempotencyKeyReused(ProtocolError):
    """An Idempotency-Key already used for a batch with other content: nothing stored."""


@dataclass(frozen=True, slots=True)
class CountRow:
    """One reconciliation bucket: records of a gateway's stream, run and hour."""

    gateway: str
    stream: str
    run_number: str | None
    hour: datetime | None
    """Start of the UTC hour of the records' ``ts_us`` (None: the records have no ts_us)."""
    records: int
    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class ConflictRow:
    """A refused record: id reuse at the gateway, or a record that cannot be stored."""

    gateway: str
    site: str
    seq: int
    stream: str
    payload_sha256: str
    existing_sha256: str | None
    reason: str
    occurrences: int


@dataclass(slots=True)
class WarehouseStats:
    """Counters since start (the durable facts are in the tables)."""

    batches: int = 0
    inserted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    invalid: int = 0


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
)
"""What ``json.dumps`` with these options builds on every call; made once (every record is
encoded, so this is on the path of every record)."""


def canonical_json(data: Mapping[str, Any]) -> str:
    """The payload as hashed and stored: sorted keys, no whitespace, finite numbers only."""
    return _CANONICAL.encode(data)


def payload_sha256(data: Mapping[str, Any]) -> str:
    """The hex SHA-256 of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def check_batch(batch: Batch) -> None:
    """Refuse a batch whose ids could not have come from a gateway config, or of no stream."""
    for name in ("gateway", "site", "stream"):
        value = getattr(batch, name)
        if not _ID.fullmatch(value):
            raise ProtocolError(f"{name} must match [A-Za-z0-9_.-]{{1,128}}, got {value!r}")
    if batch.stream not in stream_schemas():
        raise ProtocolError(f"unknown stream {batch.stream!r}")


def decode_message(payload: bytes, *, max_bytes: int = MAX_BATCH_BYTES) -> Batch:
    """:func:`~sync.protocol.decode_batch`, with every parse failure a :class:`ProtocolError`."""
    try:
        return decode_batch(payload, max_bytes=max_bytes)
    except RecursionError:  # json's answer to absurdly deep nesting
        raise ProtocolError("batch nested too deeply") from None


def _has_nul(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


@dataclass(frozen=True, slots=True)
class _Prepared:
    seq: int
    payload: str
    """Canonical JSON, or (for an invalid record) a lossless-as-possible text for the log."""
    sha256: str
    problem: str | None


def _prepare(seq: int, data: Mapping[str, Any], stream: str) -> _Prepared:
    problem: str | None = None
    encoded: bytes | None = None
    try:
        validate_record(stream, data)
    except SchemaViolation as exc:
        problem = f"invalid record: not a {stream} record ({exc})"
    try:
        text = canonical_json(data)
        encoded = text.encode()  # lone surrogates: not storable as UTF-8
    except (ValueError, TypeError) as exc:
        problem = problem or f"invalid record: not storable as JSON ({exc})"
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr)
        encoded = None
    # JSON always escapes U+0000 as \u0000, so a text without that sequence has no NUL; the
    # walk settles the rare text that has it (it may be an escaped backslash before "u0000").
    if problem is None and "\\u0000" in text and _has_nul(data):
        problem = "invalid record: NUL character in a string"
    if not 0 <= seq <= BIGINT_MAX:
        problem = "invalid record: sequence out of range"
    if len(problem or "") > 500:
        problem = (problem or "")[:500] + "…"
    if encoded is None:
        encoded = text.encode(errors="backslashreplace")
    digest = hashlib.sha256(encoded).hexdigest()
    return _Prepared(seq, text, digest, problem)


@dataclass(slots=True)
class _Outcome:
    committed: list[int]
    conflicts: list[tuple[int, str]]
    conflict_rows: list[tuple[_Prepared, str | None, str]]
    """(record, existing sha or None, reason) to write to ``conflicts``."""
    inserted: int
    duplicates: int
    invalid: int


def _classify(
    batch: Batch,
    prepared: Sequence[_Prepared],
    inserted: set[int],
    stored: Mapping[int, tuple[str, str, str]],
) -> _Outcome:
    """Decide, per sequence number, committed or refused (every occurrence must match)."""
    outcome = _Outcome([], [], [], 0, 0, 0)
    refused: dict[int, str] = {}
    accepted: list[int] = []
    counted_insert: set[int] = set()
    for record in prepared:
        existing = stored.get(record.seq)
        reason: str | None = record.problem
        if reason is not None:
            outcome.invalid += 1
        elif existing is None:  # cannot happen after the insert; refuse rather than ack
            reason = "not stored"
        elif existing[0] != batch.site:
            reason = REASON_DIFFERENT_SITE
        elif existing[1] != batch.stream:
            reason = REASON_DIFFERENT_STREAM
        elif existing[2] != record.sha256:
            reason = REASON_DIFFERENT_PAYLOAD
        if reason is not None:
            outcome.conflict_rows.append((record, existing[2] if existing else None, reason))
            refused.setdefault(record.seq, reason)
            continue
        if record.seq in inserted and record.seq not in counted_insert:
            counted_insert.add(record.seq)
            outcome.inserted += 1
        else:
            outcome.duplicates += 1
        accepted.append(record.seq)
    outcome.committed = sorted(set(accepted) - refused.keys())
    outcome.conflicts = sorted(refused.items())
    return outcome


# --------------------------------------------------------------------------------------
# The edge columns, for the typed per-stream views


@functools.cache
def edge_columns() -> dict[str, tuple[tuple[str, str], ...]]:
    """(column, declared type) of every edge record table, except ``seq``, in table order.

    Read from the edge schema itself (applied to an in-memory SQLite database), so the views
    follow the gateway's migrations; added columns are appended, as ``ALTER TABLE`` does.
    """
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        for migration in MIGRATIONS:
            db.executescript(migration)
        return {
            table: tuple(
                (str(row[1]), str(row[2]).upper())
                for row in db.execute(f"PRAGMA table_info({table})")
                if row[1] != "seq"
            )
            for table in RECORD_STREAMS
        }


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------
# The interface and the shared commit logic


class Warehouse(ABC):
    """Where batches are committed. Async API; all database work on one dedicated thread."""

    kind: str = "warehouse"

    def __init__(self) -> None:
        self.stats = WarehouseStats()
        self._stats_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.kind}")
        self._closed = False
        self._keyed_commits = 0

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise WarehouseUnavailable("the warehouse is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def open(self) -> None:
        """Connect and create (or update) the schema."""
        await self._call(self._open)

    async def close(self) -> None:
        """Finish the work in progress and disconnect."""
        if self._closed:
            return
        try:
            await self._call(self._close)
        finally:
            self._closed = True
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def commit_batch(self, batch: Batch, *, idempotency_key: str | None = None) -> Ack:
        """Store a batch in one transaction; the ack is built after COMMIT returned.

        :raises ProtocolError: ids the contract does not allow (nothing stored).
        :raises IdempotencyKeyReused: ``idempotency_key`` was used for other content.
        :raises WarehouseUnavailable: a transient database failure (nothing acknowledged).
        :raises WarehouseError: any other database failure (nothing acknowledged).
        """
        check_batch(batch)
        return await self._call(self._commit_sync, batch, idempotency_key)

    async def counts(self, gateway: str) -> list[CountRow]:
        """Reconciliation: records per stream, run number and hour of ``ts_us``."""
        return await self._call(self._counts, gateway)

    async def conflicts(self, gateway: str) -> list[ConflictRow]:
        """The refused records of a gateway, in sequence order."""
        return await self._call(self._conflicts, gateway)

    async def record_hashes(self, gateway: str) -> dict[int, str]:
        """seq → payload SHA-256 of every stored record of a gateway."""
        return await self._call(self._record_hashes, gateway)

    async def ping(self) -> None:
        """A trivial query; raises :class:`WarehouseError` if the database is unusable."""
        await self._call(self._ping)

    def _commit_sync(self, batch: Batch, idempotency_key: str | None = None) -> Ack:
        prepared = [_prepare(seq, data, batch.stream) for seq, data in batch.records]
        valid = [p for p in prepared if p.problem is None]
        with self._transaction():
            if idempotency_key is not None:
                self._check_key(batch, idempotency_key, _fingerprint(batch, prepared))
            inserted, stored = self._insert_and_read(batch, valid)
            outcome = _classify(batch, prepared, inserted, stored)
            rows = [row for row in outcome.conflict_rows if 0 <= row[0].seq <= BIGINT_MAX]
            if rows:
                self._insert_conflicts(batch, rows)
        # COMMIT has returned: only now is anything acknowledged.
        ack = Ack(
            gateway=batch.gateway,
            batch_id=batch.batch_id,
            committed=tuple(outcome.committed),
            conflicts=tuple(outcome.conflicts),
        )
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.inserted += outcome.inserted
            self.stats.duplicates += outcome.duplicates
            self.stats.conflicts += len(outcome.conflict_rows) - outcome.invalid
            self.stats.invalid += outcome.invalid
        if outcome.duplicates:
            logger.info(
                "batch %s: %d duplicate record(s) already stored",
                batch.batch_id,
                outcome.duplicates,
            )
        for record, existing, reason in outcome.conflict_rows:
            logger.error(
                "gateway %s seq %d (%s) refused: %s (stored sha256 %s, received %s)",
                batch.gateway,
                record.seq,
                batch.stream,
                reason,
                existing,
                record.sha256,
            )
        return ack

    def _check_key(self, batch: Batch, key: str, fingerprint: str) -> None:
        """Remember ``key`` for this content, or refuse it if it was used for other content."""
        known = self._claim_key(batch.gateway, key, fingerprint)
        if known is not None and known != fingerprint:
            logger.error(
                "gateway %s reused Idempotency-Key %r for a batch with other content: refused",
                batch.gateway,
                key,
            )
            raise IdempotencyKeyReused(
                f"Idempotency-Key {key!r} was already used for a batch with other content"
            )
        if known is None:
            with self._stats_lock:
                self._keyed_commits += 1
                prune = self._keyed_commits % _PRUNE_EVERY == 0
            if prune:
                self._prune_keys()

    # Backend primitives, all called on the warehouse thread.

    @abstractmethod
    def _claim_key(self, gateway: str, key: str, fingerprint: str) -> str | None:
        """Insert the key unless known; the fingerprint stored before, or None. In the
        transaction."""

    @abstractmethod
    def _prune_keys(self) -> None:
        """Delete keys older than :data:`IDEMPOTENCY_KEY_DAYS` (in the transaction)."""

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _transaction(self) -> Any:
        """A context manager: one transaction, errors mapped to :class:`WarehouseError`."""

    def _insert_and_read(
        self, batch: Batch, records: Sequence[_Prepared]
    ) -> tuple[set[int], dict[int, tuple[str, str, str]]]:
        """Insert ``records`` and read back what is stored under their sequences: (the
        sequences inserted, seq → (site, stream, payload_sha256)). In the transaction."""
        inserted = self._insert_records(batch, records) if records else set()
        return inserted, self._stored(batch.gateway, sorted({p.seq for p in records}))

    @abstractmethod
    def _insert_records(self, batch: Batch, records: Sequence[_Prepared]) -> set[int]:
        """Insert, skipping existing ``(gateway, seq)``; the sequences actually inserted."""

    @abstractmethod
    def _stored(self, gateway: str, seqs: Sequence[int]) -> dict[int, tuple[str, str, str]]:
        """seq → (site, stream, payload_sha256) of the stored records among ``seqs``."""

    @abstractmethod
    def _insert_conflicts(
        self, batch: Batch, rows: Sequence[tuple[_Prepared, str | None, str]]
    ) -> None: ...

    @abstractmethod
    def _counts(self, gateway: str) -> list[CountRow]: ...

    @abstractmethod
    def _conflicts(self, gateway: str) -> list[ConflictRow]: ...

    @abstractmethod
    def _record_hashes(self, gateway: str) -> dict[int, str]: ...

    @abstractmethod
    def _ping(self) -> None: ...


def _fingerprint(batch: Batch, prepared: Sequence[_Prepared]) -> str:
    """What an Idempotency-Key stands for: the batch's site, stream and records."""
    digest = hashlib.sha256(f"{batch.site}\n{batch.stream}\n".encode())
    for record in prepared:
        digest.update(f"{record.seq}:{record.sha256}\n".encode())
    return digest.hexdigest()


def _count_row(row: Sequence[Any]) -> CountRow:
    gateway, stream, run, hour, n, lo, hi = row
    return CountRow(
        gateway=str(gateway),
        stream=str(stream),
        run_number=None if run is None else str(run),
        hour=None if hour is None else datetime.fromtimestamp(int(hour) * 3600, UTC),
        records=int(n),
        first_seq=int(lo),
        last_seq=int(hi),
    )


# --------------------------------------------------------------------------------------
# PostgreSQL

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
    value, text = f"payload->{_literal(name)}", f"payload->>{_literal(name)}"
    if declared == "INTEGER":
        return (
            f"CASE jsonb_typeof({value})"
            f" WHEN 'number' THEN CASE WHEN abs(({text})::numeric) < 9e18"
            f" THEN trunc(({text})::numeric)::bigint END"
            f" WHEN 'boolean' THEN ({text})::boolean::int::bigint END AS {_quote(name)}"
        )
    if declared == "REAL":
        return (
            f"CASE WHEN jsonb_typeof({value}) = 'number'"
            f" AND abs(({text})::numeric) < 1e300"
            f" THEN ({text})::double precision END AS {_quote(name)}"
        )
    return f"{text} AS {_quote(name)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pg_views() -> list[str]:
    views = []
    for stream, columns in edge_columns().items():
        select = ", ".join(_pg_column(name, declared) for name, declared in columns)
        views.append(
            f"CREATE OR REPLACE VIEW {_quote(stream)} AS"  # noqa: S608 (names from the schema)
            f" SELECT gateway, site, seq, received_at, {select}"
            f" FROM records WHERE stream = {_literal(stream)}"
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


class PostgresWarehouse(Warehouse):
    """The warehouse in PostgreSQL (payload as JSONB). One connection, reconnected on loss."""

    kind = "postgres"

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

    def _claim_key(self, gateway: str, key: str, fingerprint: str) -> str | None:
        conn = self._connection()
        row = conn.execute(
            "SELECT fingerprint FROM idempotency_keys WHERE gateway = %s AND key = %s",
            (gateway, key),
        ).fetchone()
        if row is not None:
            return str(row[0])
        conn.execute(
            "INSERT INTO idempotency_keys (gateway, key, fingerprint) VALUES (%s, %s, %s)"
            " ON CONFLICT (gateway, key) DO NOTHING",
            (gateway, key, fingerprint),
        )
        return None

    def _prune_keys(self) -> None:
        self._connection().execute(
            "DELETE FROM idempotency_keys WHERE first_seen < now() - make_interval(days => %s)",
            (IDEMPOTENCY_KEY_DAYS,),
        )

    def _insert_records(self, batch: Batch, records: Sequence[_Prepared]) -> set[int]:
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

    def _insert_conflicts(
        self, batch: Batch, rows: Sequence[tuple[_Prepared, str | None, str]]
    ) -> None:
        with self._connection().cursor() as cur:
            cur.executemany(
                "INSERT INTO conflicts (gateway, site, seq, stream, payload, payload_sha256,"
                " existing_sha256, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (gateway, seq, payload_sha256) DO UPDATE SET"
                " occurrences = conflicts.occurrences + 1, last_seen = now(),"
                " existing_sha256 = EXCLUDED.existing_sha256, reason = EXCLUDED.reason",
                [
                    (
                        batch.gateway,
                        batch.site,
                        record.seq,
                        batch.stream,
                        record.payload,
                        record.sha256,
                        existing,
                        reason,
                    )
                    for record, existing, reason in rows
                ],
            )

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._transaction() as conn:
            return conn.execute(sql, params).fetchall()

    def _counts(self, gateway: str) -> list[CountRow]:
        rows = self._query(
            "SELECT gateway, stream, payload->>'run_number' AS run_number,"  # noqa: S608
            f" {_PG_HOUR} AS hour, count(*), min(seq), max(seq)"
            " FROM records WHERE gateway = %s GROUP BY 1, 2, 3, 4"
            " ORDER BY 2, 3 NULLS FIRST, 4 NULLS FIRST",
            (gateway,),
        )
        return [_count_row(row) for row in rows]

    def _conflicts(self, gateway: str) -> list[ConflictRow]:
        rows = self._query(
            "SELECT gateway, site, seq, stream, payload_sha256, existing_sha256, reason,"
            " occurrences FROM conflicts WHERE gateway = %s ORDER BY seq, id",
            (gateway,),
        )
        return [ConflictRow(*row) for row in rows]

    def _record_hashes(self, gateway: str) -> dict[int, str]:
        rows = self._query("SELECT seq, payload_sha256 FROM records WHERE gateway = %s", (gateway,))
        return {int(seq): str(sha) for seq, sha in rows}

    def _ping(self) -> None:
        self._query("SELECT 1", ())


# --------------------------------------------------------------------------------------
# SQLite

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    gateway        TEXT    NOT NULL,
    site           TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    stream         TEXT    NOT NULL,
    payload        TEXT    NOT NULL CHECK (json_valid(payload)),
    payload_sha256 TEXT    NOT NULL,
    received_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (gateway, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_gateway_stream ON records (gateway, stream, seq);
CREATE TABLE IF NOT EXISTS conflicts (
    id              INTEGER PRIMARY KEY,
    gateway         TEXT    NOT NULL,
    site            TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    stream          TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    payload_sha256  TEXT    NOT NULL,
    existing_sha256 TEXT,
    reason          TEXT    NOT NULL,
    occurrences     INTEGER NOT NULL DEFAULT 1,
    first_seen      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_seen       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (gateway, seq, payload_sha256)
) STRICT;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    gateway     TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    first_seen  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (gateway, key)
) STRICT;
CREATE INDEX IF NOT EXISTS idempotency_keys_first_seen ON idempotency_keys (first_seen);
"""


def _sqlite_column(name: str, declared: str) -> str:
    path = _literal(f"$.{_quote(name)}")
    value, kind = f"json_extract(payload, {path})", f"json_type(payload, {path})"
    if declared == "INTEGER":
        return (
            f"CASE {kind} WHEN 'integer' THEN {value} WHEN 'real' THEN CAST({value} AS INTEGER)"
            f" WHEN 'true' THEN 1 WHEN 'false' THEN 0 END AS {_quote(name)}"
        )
    if declared == "REAL":
        return (
            f"CASE WHEN {kind} IN ('integer', 'real') THEN CAST({value} AS REAL) END"
            f" AS {_quote(name)}"
        )
    return f"{value} AS {_quote(name)}"


def _sqlite_views() -> list[str]:
    views = []
    for stream, columns in edge_columns().items():
        select = ", ".join(_sqlite_column(name, declared) for name, declared in columns)
        views.append(f"DROP VIEW IF EXISTS {_quote(stream)}")
        views.append(
            f"CREATE VIEW {_quote(stream)} AS"  # noqa: S608 (names from the schema)
            f" SELECT gateway, site, seq, received_at, {select}"
            f" FROM records WHERE stream = {_literal(stream)}"
        )
    return views


# Floor division for integers (SQLite's '/' truncates towards zero), without relying on
# the optional math functions.
_SQLITE_TS = "CAST(json_extract(payload, '$.ts_us') AS INTEGER)"
_SQLITE_HOUR = (
    "CASE WHEN json_type(payload, '$.ts_us') IN ('integer', 'real')"
    " AND abs(json_extract(payload, '$.ts_us')) < 1e18"
    f" THEN {_SQLITE_TS} / {HOUR_US} - ({_SQLITE_TS} % {HOUR_US} < 0) END"
)


_SQLITE_TRANSIENT = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
)
"""Locked by another process, disk full, I/O trouble: retry. Anything else: refuse the batch."""


def _sqlite_error(exc: sqlite3.Error, path: Path) -> WarehouseError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(_SQLITE_TRANSIENT):
        return WarehouseUnavailable(f"SQLite {path}: {exc}")
    return WarehouseError(f"SQLite {path} [{name}]: {exc}")


class SqliteWarehouse(Warehouse):
    """The embedded warehouse: one SQLite file, WAL, ``synchronous=FULL``."""

    kind = "sqlite"

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        super().__init__()
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, isolation_level=None)
                db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
                db.execute("PRAGMA journal_mode = WAL")
                # An ack promises durability: a commit must survive power loss.
                db.execute("PRAGMA synchronous = FULL")
            except (OSError, sqlite3.Error) as exc:
                raise WarehouseUnavailable(f"SQLite {self.path}: {exc}") from exc
            self._db = db
        return self._db

    def _open(self) -> None:
        with self._transaction() as db:
            for statement in _SQLITE_SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            for view in _sqlite_views():
                db.execute(view)
            self._prune_keys()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, self.path) from exc
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    logger.exception("SQLite rollback failed; reopening %s", self.path)
                    self._close()
            if isinstance(exc, sqlite3.Error):
                raise _sqlite_error(exc, self.path) from exc
            raise

    def _insert_and_read(
        self, batch: Batch, records: Sequence[_Prepared]
    ) -> tuple[set[int], dict[int, tuple[str, str, str]]]:
        # Inside BEGIN IMMEDIATE nobody else writes, so one read before the INSERT tells
        # everything: a sequence not stored yet is inserted from its first occurrence in the
        # batch, and then holds exactly that record (no read-back needed).
        stored = self._stored(batch.gateway, sorted({r.seq for r in records}))
        fresh: dict[int, _Prepared] = {}
        for record in records:
            if record.seq not in stored and record.seq not in fresh:
                fresh[record.seq] = record
        if fresh:
            self._connection().executemany(
                "INSERT INTO records (gateway, site, seq, stream, payload, payload_sha256)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (gateway, seq) DO NOTHING",
                [
                    (batch.gateway, batch.site, r.seq, batch.stream, r.payload, r.sha256)
                    for r in fresh.values()
                ],
            )
        for seq, record in fresh.items():
            stored[seq] = (batch.site, batch.stream, record.sha256)
        return set(fresh), stored

    def _insert_records(self, batch: Batch, records: Sequence[_Prepared]) -> set[int]:
        return self._insert_and_read(batch, records)[0]

    def _claim_key(self, gateway: str, key: str, fingerprint: str) -> str | None:
        db = self._connection()
        row = db.execute(
            "SELECT fingerprint FROM idempotency_keys WHERE gateway = ? AND key = ?",
            (gateway, key),
        ).fetchone()
        if row is not None:
            return str(row[0])
        db.execute(
            "INSERT INTO idempotency_keys (gateway, key, fingerprint) VALUES (?, ?, ?)",
            (gateway, key, fingerprint),
        )
        return None

    def _prune_keys(self) -> None:
        self._connection().execute(
            "DELETE FROM idempotency_keys WHERE first_seen"
            " < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)",
            (f"-{IDEMPOTENCY_KEY_DAYS} days",),
        )

    def _stored(self, gateway: str, seqs: Sequence[int]) -> dict[int, tuple[str, str, str]]:
        db = self._connection()
        stored: dict[int, tuple[str, str, str]] = {}
        for start in range(0, len(seqs), _IN_CHUNK):
            chunk = list(seqs[start : start + _IN_CHUNK])
            marks = ", ".join("?" * len(chunk))
            for seq, site, stream, sha in db.execute(
                "SELECT seq, site, stream, payload_sha256 FROM records"  # noqa: S608 (marks)
                f" WHERE gateway = ? AND seq IN ({marks})",
                (gateway, *chunk),
            ):
                stored[int(seq)] = (str(site), str(stream), str(sha))
        return stored

    def _insert_conflicts(
        self, batch: Batch, rows: Sequence[tuple[_Prepared, str | None, str]]
    ) -> None:
        self._connection().executemany(
            "INSERT INTO conflicts (gateway, site, seq, stream, payload, payload_sha256,"
            " existing_sha256, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (gateway, seq, payload_sha256) DO UPDATE SET"
            " occurrences = occurrences + 1,"
            " last_seen = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),"
            " existing_sha256 = excluded.existing_sha256, reason = excluded.reason",
            [
                (
                    batch.gateway,
                    batch.site,
                    record.seq,
                    batch.stream,
                    record.payload,
                    record.sha256,
                    existing,
                    reason,
                )
                for record, existing, reason in rows
            ],
        )

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        db = self._connection()
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, self.path) from exc

    def _counts(self, gateway: str) -> list[CountRow]:
        rows = self._query(
            "SELECT gateway, stream, json_extract(payload, '$.run_number') AS run_number,"  # noqa: S608
            f" {_SQLITE_HOUR} AS hour, count(*), min(seq), max(seq)"
            " FROM records WHERE gateway = ? GROUP BY 1, 2, 3, 4"
            " ORDER BY 2, 3 NULLS FIRST, 4 NULLS FIRST",
            (gateway,),
        )
        return [_count_row(row) for row in rows]

    def _conflicts(self, gateway: str) -> list[ConflictRow]:
        rows = self._query(
            "SELECT gateway, site, seq, stream, payload_sha256, existing_sha256, reason,"
            " occurrences FROM conflicts WHERE gateway = ? ORDER BY seq, id",
            (gateway,),
        )
        return [ConflictRow(*row) for row in rows]

    def _record_hashes(self, gateway: str) -> dict[int, str]:
        rows = self._query("SELECT seq, payload_sha256 FROM records WHERE gateway = ?", (gateway,))
        return {int(seq): str(sha) for seq, sha in rows}

    def _ping(self) -> None:
        self._query("SELECT 1", ())


def create_warehouse(*, postgres_dsn: str | None, sqlite_path: Path | None) -> Warehouse:
    """PostgreSQL when a DSN is given, otherwise the embedded SQLite file."""
    if postgres_dsn:
        return PostgresWarehouse(postgres_dsn)
    if sqlite_path is None:
        raise ValueError("give a PostgreSQL DSN or a SQLite path for the warehouse")
    return SqliteWarehouse(sqlite_path)
