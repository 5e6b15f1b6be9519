"""The warehouse interface and everything both databases share: the commit of a batch in one
transaction, idempotency keys, and the reconciliation queries, written once and completed by
each database's :class:`Dialect` (placeholders, JSON access, time). See
:mod:`sync.ingest.warehouse` for the commit rules.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from sync.ingest.backfill import CHUNK_RECORDS, Backfill, BackfillSummary, Progress
from sync.ingest.facts import Fact, FactError, build_fact, timestamp
from sync.ingest.facts_sql import FactWriter
from sync.ingest.warehouse_records import (
    BIGINT_MAX,
    IDEMPOTENCY_KEY_DAYS,
    PRUNE_EVERY,
    ConflictRow,
    CountRow,
    IdempotencyKeyReused,
    Prepared,
    WarehouseStats,
    WarehouseUnavailable,
    canonical_json,
    check_batch,
    classify,
    count_row,
    fingerprint,
    prepare,
)
from sync.protocol import Ack, Batch

# The module's old name: operators' log filters know the warehouse's messages by it.
logger = logging.getLogger("sync.ingest.warehouse")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Dialect:
    """The pieces of SQL that differ between PostgreSQL and SQLite."""

    mark: str
    """The parameter placeholder: ``%s`` or ``?``."""
    run_number: str
    """The run number of a record's JSON payload."""
    hour: str
    """The UTC hour (hours since the epoch) of a record's ``ts_us``, NULL without one."""
    now: str
    """The current time as the tables store it."""
    key_cutoff: str
    """``first_seen`` before this (with one parameter) is an expired idempotency key."""
    key_cutoff_param: Callable[[int], object]
    """The parameter of :attr:`key_cutoff` for a number of days."""


class Warehouse(ABC):
    """Where batches are committed. Async API; the database work on the warehouse's own
    threads: one (SQLite), or as many as PostgreSQL connections (each thread runs one
    transaction at a time, on a connection of its own)."""

    kind: str = "warehouse"
    dialect: Dialect
    """The SQL pieces that differ between the databases (set by each subclass)."""

    def __init__(self, *, workers: int = 1) -> None:
        self.stats = WarehouseStats()
        self._stats_lock = threading.Lock()
        self.workers = workers
        """Transactions that may run at once."""
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=self.kind)
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

    async def backfill(
        self, *, chunk: int = CHUNK_RECORDS, progress: Progress | None = None
    ) -> BackfillSummary:
        """Derive every missing fact, current-state and dimension row from ``records``
        (idempotent, resumable; see :mod:`sync.ingest.backfill`). ``progress`` is called
        after each chunk, on the warehouse's thread."""
        return await self._call(Backfill(self, chunk).run, progress)

    async def ping(self) -> None:
        """A trivial query; raises :class:`WarehouseError` if the database is unusable."""
        await self._call(self._ping)

    def _commit_sync(self, batch: Batch, idempotency_key: str | None = None) -> Ack:
        return self._retrying(
            f"batch {batch.batch_id}", functools.partial(self._commit_once, batch, idempotency_key)
        )

    def _retrying(self, what: str, transaction: Callable[[], T]) -> T:
        """Run one whole transaction; a database where concurrent transactions can abort
        each other runs it again (:mod:`sync.ingest.pg_retry`)."""
        return transaction()

    def _commit_once(self, batch: Batch, idempotency_key: str | None) -> Ack:
        prepared, facts = prepare_with_facts(batch)
        valid = [p for p in prepared if p.problem is None]
        with self._transaction():
            if idempotency_key is not None:
                self._check_key(batch, idempotency_key, fingerprint(batch, prepared))
            inserted, stored = self._insert_and_read(batch, valid)
            # The typed rows of the records this batch stored, in the same transaction.
            writer = self._fact_writer()
            writer.touch(batch.gateway, batch.site, sorted(inserted))
            if batch.backlog is not None and batch.backlog_at_us is not None:
                writer.backlog(batch.gateway, batch.backlog, timestamp(batch.backlog_at_us))
            writer.write([facts[seq] for seq in sorted(inserted)])
            outcome = classify(batch, prepared, inserted, stored)
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
                prune = self._keyed_commits % PRUNE_EVERY == 0
            if prune:
                self._prune_keys()

    # Backend primitives, all called on the warehouse thread.

    @abstractmethod
    def _fact_writer(self) -> FactWriter:
        """The writer of facts, current state and dimensions on this connection."""

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _transaction(self) -> Any:
        """A context manager: one transaction, errors mapped to :class:`WarehouseError`."""

    def _insert_and_read(
        self, batch: Batch, records: Sequence[Prepared]
    ) -> tuple[set[int], dict[int, tuple[str, str, str]]]:
        """Insert ``records`` and read back what is stored under their sequences: (the
        sequences inserted, seq → (site, stream, payload_sha256)). In the transaction."""
        inserted = self._insert_records(batch, records) if records else set()
        return inserted, self._stored(batch.gateway, sorted({p.seq for p in records}))

    @abstractmethod
    def _insert_records(self, batch: Batch, records: Sequence[Prepared]) -> set[int]:
        """Insert, skipping existing ``(gateway, seq)``; the sequences actually inserted."""

    @abstractmethod
    def _stored(self, gateway: str, seqs: Sequence[int]) -> dict[int, tuple[str, str, str]]:
        """seq → (site, stream, payload_sha256) of the stored records among ``seqs``."""

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[object]) -> Any:
        """Run one statement on the connection (in the transaction); its cursor."""

    @abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement for each of ``rows`` (in the transaction)."""

    @abstractmethod
    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        """The rows of one query, in a transaction of its own (or none: SQLite reads)."""

    # The statements both dialects share, written once with the dialect's pieces.

    def _claim_key(self, gateway: str, key: str, fingerprint: str) -> str | None:
        """Insert the key unless known; the fingerprint stored before, or None. In the
        transaction."""
        m = self.dialect.mark
        row = self._execute(
            f"SELECT fingerprint FROM idempotency_keys WHERE gateway = {m} AND key = {m}",  # noqa: S608 (the dialect's SQL)
            (gateway, key),
        ).fetchone()
        if row is not None:
            return str(row[0])
        self._execute(
            "INSERT INTO idempotency_keys (gateway, key, fingerprint)"  # noqa: S608 (marks)
            f" VALUES ({m}, {m}, {m}) ON CONFLICT (gateway, key) DO NOTHING",
            (gateway, key, fingerprint),
        )
        return None

    def _prune_keys(self) -> None:
        """Delete keys older than :data:`IDEMPOTENCY_KEY_DAYS` (in the transaction)."""
        d = self.dialect
        self._execute(
            f"DELETE FROM idempotency_keys WHERE first_seen < {d.key_cutoff}",  # noqa: S608 (the dialect's SQL)
            (d.key_cutoff_param(IDEMPOTENCY_KEY_DAYS),),
        )

    def _insert_conflicts(
        self, batch: Batch, rows: Sequence[tuple[Prepared, str | None, str]]
    ) -> None:
        m = ", ".join([self.dialect.mark] * 8)
        self._executemany(
            "INSERT INTO conflicts (gateway, site, seq, stream, payload, payload_sha256,"  # noqa: S608 (the dialect's SQL)
            f" existing_sha256, reason) VALUES ({m})"
            " ON CONFLICT (gateway, seq, payload_sha256) DO UPDATE SET"
            f" occurrences = conflicts.occurrences + 1, last_seen = {self.dialect.now},"
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

    def _counts(self, gateway: str) -> list[CountRow]:
        d = self.dialect
        rows = self._query(
            f"SELECT gateway, stream, {d.run_number} AS run_number,"  # noqa: S608 (the dialect's SQL)
            f" {d.hour} AS hour, count(*), min(seq), max(seq)"
            f" FROM records WHERE gateway = {d.mark} GROUP BY 1, 2, 3, 4"
            " ORDER BY 2, 3 NULLS FIRST, 4 NULLS FIRST",
            (gateway,),
        )
        return [count_row(row) for row in rows]

    def _conflicts(self, gateway: str) -> list[ConflictRow]:
        rows = self._query(
            "SELECT gateway, site, seq, stream, payload_sha256, existing_sha256, reason,"  # noqa: S608 (the dialect's SQL)
            f" occurrences FROM conflicts WHERE gateway = {self.dialect.mark} ORDER BY seq, id",
            (gateway,),
        )
        return [ConflictRow(*row) for row in rows]

    def _record_hashes(self, gateway: str) -> dict[int, str]:
        rows = self._query(
            f"SELECT seq, payload_sha256 FROM records WHERE gateway = {self.dialect.mark}",  # noqa: S608 (the dialect's SQL)
            (gateway,),
        )
        return {int(seq): str(sha) for seq, sha in rows}

    def _ping(self) -> None:
        self._query("SELECT 1", ())


def prepare_with_facts(batch: Batch) -> tuple[list[Prepared], dict[int, Fact]]:
    """Every record prepared, and the fact of each valid one (by seq, its first valid
    occurrence: the one an insert stores). A record whose fact cannot be built is invalid."""
    prepared: list[Prepared] = []
    facts: dict[int, Fact] = {}
    texts = received_texts(batch)
    for index, (seq, data) in enumerate(batch.records):
        record = prepare(seq, data, batch.stream, None if texts is None else texts[index])
        if record.problem is None:
            try:
                fact = build_fact(batch.stream, batch.gateway, batch.site, seq, data)
            except FactError as exc:
                record = dataclasses.replace(record, problem=f"invalid record: {exc}"[:500])
            else:
                facts.setdefault(seq, fact)
        prepared.append(record)
    return prepared, facts


def received_texts(batch: Batch) -> tuple[str, ...] | None:
    """The batch's record texts as received, when its first record's is its canonical text.

    A gateway that writes its records array in the canonical form says its texts are the
    canonical ones; this checks the first, so a peer that writes that form with other text
    (another encoder's numbers, escapes) has each record encoded here as any batch's is. A
    record whose received text was not canonical could not be taken for another: text decodes
    to one value, so different data never shares a text or its hash
    (docs/topics-and-payloads.md, "Canonical record text").
    """
    texts = batch.data_texts
    if texts is None or len(texts) != len(batch.records):
        return None
    try:
        first = canonical_json(batch.records[0][1])
    except (ValueError, TypeError):
        return None
    return texts if first == texts[0] else None


__all__ = ["Dialect", "Warehouse", "prepare_with_facts", "received_texts"]
