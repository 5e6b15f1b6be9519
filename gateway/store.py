"""The local store: one SQLite database, the device's single source of truth.

* One writer connection (aiosqlite runs it on its own thread), WAL journal,
  ``synchronous=FULL``: a commit is on disk when it returns
  (sqlite.org/pragma.html#pragma_synchronous).
* Group commit: :meth:`Store.submit` queues a record; the committer task writes everything
  pending in one ``BEGIN IMMEDIATE`` transaction at most every ``commit_interval_ms`` or as
  soon as ``commit_max_rows`` are waiting, whichever comes first. One fsync per batch bounds
  flash wear and the loss window.
* Every record gets its gateway sequence number (:mod:`gateway.sequence`) and its outbox row
  in the same transaction (transactional outbox). A batch is committed whole or not at all.
* At start-up ``PRAGMA quick_check``; a database that is damaged (or not a database) is moved
  with its ``-wal`` and ``-shm`` into the quarantine folder, a fresh one is created, and an
  alert naming the file is stored. The same happens if corruption shows up while running.
* A size budget: ``max_page_count`` keeps the database under ``max_size_mb`` and leaves
  ``headroom_mb`` free on the disk. When the budget or the disk is full, the batch is rolled
  back explicitly, kept in memory, and retried with backoff (SQLite can't even DELETE on a
  full disk: docs/reference/reliability.md §2.4). An I/O error is fatal: the process exits, systemd
  restarts; but an I/O error while the disk has (almost) no free space, or ENOSPC writing the
  sequence reservation, is a full disk and handled like SQLITE_FULL.
* Eviction (:mod:`gateway.eviction` has the policy): near the budget, or when a commit hits
  it, the oldest telemetry rows and their outbox rows are deleted in bounded chunks, one
  transaction each, on the writer connection; compliance records and alerts never are.
  Evicted rows are counted per table in :attr:`StoreStats.evicted`, and one "edge storage
  full" alert (``store.full``) is raised, cleared again when the database is back well under
  its budget. Before each retry after a full commit the budget is recomputed from the free
  disk space, so space that comes back is used without a restart.
* Bounded intake: :meth:`Store.wait_for_space` holds back intake that can wait (the
  adapters that read or poll) while half of ``max_pending_rows`` records are pending, and
  :class:`gateway.pipeline.Pipeline` sheds device records beyond ``max_pending_rows``
  (counted: :mod:`gateway.shedding`). Reaching the backpressure level also starts a commit
  at once. Whatever is queued with :meth:`Store.submit` itself (alerts, the gateway's own
  events, operator commands) is never refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import shutil
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiosqlite

from gateway import eviction
from gateway.backoff import Backoff
from gateway.clock import Clock
from gateway.config import StoreSection
from gateway.errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIOError,
    StoreUnavailableError,
)
from gateway.records import AlertRecord, Record, Severity
from gateway.schema import MIGRATIONS, RECORD_STREAMS, RECORD_TABLES, SCHEMA_VERSION
from gateway.sequence import SequenceAllocator
from gateway.store_lock import StoreLock

log = logging.getLogger(__name__)

MIB = 1024 * 1024

# SQLite primary result codes (sqlite.org/rescode.html).
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_NOTADB = 26
SQLITE_HEADER = b"SQLite format 3\x00"

BACKPRESSURE_FRACTION = 0.5
"""Intake that can wait does so once this fraction of ``max_pending_rows`` is pending; the
rest is room for what cannot wait (OPC UA subscriptions, alerts, the gateway's own events)
before device records are shed."""

DISK_FULL_BYTES = 1 * MIB
"""An I/O error while less than this is free on the database's volume is taken as ENOSPC
(SQLite reports a failed write as SQLITE_FULL, but some other writes, e.g. growing the
``-shm`` file, as an SQLITE_IOERR variant)."""


class StoreState(StrEnum):
    """What the store can do right now; shown in the TUI and metrics."""

    CLOSED = "closed"
    OK = "ok"
    FULL = "full"
    """The size budget or the disk is full; records wait in memory and commits are retried."""


@dataclass
class StoreStats:
    """Counters for metrics and the TUI."""

    batches_committed: int = 0
    records_committed: int = 0
    last_commit_ms: float = 0.0
    full_events: int = 0
    quarantined: list[Path] = field(default_factory=list)
    evicted: dict[str, int] = field(default_factory=dict)
    """Telemetry rows evicted for space, per table, since the store was opened."""
    used_pages: int = 0
    max_pages: int = 0
    """Database pages in use and the budget in pages, as last checked."""


@dataclass(slots=True)
class _Pending:
    record: Record
    done: asyncio.Future[int]
    with_previous: bool = False
    """Committed in the same transaction as the record queued before it."""


def classify_sqlite_error(exc: sqlite3.Error) -> type[StoreError]:
    """Map a sqlite3 error to the store's exception tree."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    if (
        primary in (SQLITE_CORRUPT, SQLITE_NOTADB)
        or "malformed" in text
        or "not a database" in text
    ):
        return StoreCorruptError
    if primary == SQLITE_FULL or "database or disk is full" in text:
        return StoreFullError
    if primary == SQLITE_IOERR or "disk i/o error" in text:
        return StoreIOError
    return StoreError


class Store:
    """The gateway's SQLite store with group commit and a transactional outbox.

    Use as ``async with Store(config, clock) as store:`` and run :meth:`run_committer` as a
    task; :meth:`close` (called on exit) commits whatever is still pending.
    """

    def __init__(self, config: StoreSection, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.path = config.path
        self.state = StoreState.CLOSED
        self.stats = StoreStats()
        self._db: aiosqlite.Connection | None = None
        self._sequence = SequenceAllocator(self.path.with_name(self.path.name + ".seq"))
        self._lock = StoreLock(self.path)
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._backpressure_rows = max(1, int(config.max_pending_rows * BACKPRESSURE_FRACTION))
        # A commit starts as soon as a batch is full or intake is being held back.
        self._batch_rows = min(config.commit_max_rows, self._backpressure_rows)
        self.space_listeners: list[Callable[[], None]] = []
        """Called (inside the commit that did it) when the pending records fall below the
        backpressure level again: the end of intake pressure."""
        self._stopping = False
        self._committer_done = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._page_size = 4096
        self._alert_raised = False
        self._next_check = 0.0
        self._pages_per_row: float | None = None
        self.commit_observers: list[Callable[[frozenset[str]], None]] = []
        """Called after every commit with the tables it wrote, so a reader of committed rows
        (the alert feed) need not poll. Must be quick and must not raise."""

    # ---------------------------------------------------------------- life cycle

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open (or create) the database, check it, migrate it, quarantine it if damaged.

        Raises StoreInUseError, before touching the database or its sequence file, when
        another process has this store open.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except OSError as exc:
            raise self._unavailable(exc) from exc
        try:
            await self._open_locked()
        except OSError as exc:
            self._lock.release()
            raise self._unavailable(exc) from exc
        except (StoreFullError, StoreIOError) as exc:
            self._lock.release()
            raise self._unavailable(exc) from exc
        except StoreError as exc:
            self._lock.release()
            if type(exc) is StoreError:  # SQLite cannot open or write the file
                raise self._unavailable(exc) from exc
            raise
        except BaseException:
            self._lock.release()
            raise

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        """The one-line start-up failure for a store whose folder or files are unusable."""
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            if exc.filename is not None and str(exc.filename) != str(self.path):
                reason = f"{reason} ({exc.filename})"
        else:
            reason = str(exc).removeprefix(f"{self.path}: ")
        return StoreUnavailableError(
            f"cannot open the store {self.path}: {reason}; its folder {self.path.parent} must "
            "be writable by the gateway's user and have free space (StateDirectory= under "
            "systemd)"
        )

    async def _open_locked(self) -> None:
        try:
            self._db = await self._connect()
        except StoreCorruptError as exc:
            moved = self._quarantine(str(exc))
            self._db = await self._connect()
            self._alert_quarantined(moved, str(exc))
        self._alert_raised = await self._full_alert_is_raised()
        database_max = await self._max_sequence()
        await asyncio.to_thread(self._sequence.start, database_max)
        if self._sequence.recovered_from_damaged_file:
            self.submit(
                AlertRecord(
                    ts_us=self.clock.wall_us(),
                    alert_id="store.sequence_file",
                    rule="store_sequence_file",
                    subject=str(self._sequence.path),
                    severity=Severity.MAJOR,
                    state="raised",
                    message=(
                        f"sequence reservation file {self._sequence.path} was damaged; "
                        "numbering continued from the clock"
                    ),
                )
            )
        self.state = StoreState.OK
        log.info(
            "store open: %s (schema %d, next sequence %d)",
            self.path,
            SCHEMA_VERSION,
            self._sequence.next_value,
        )

    async def close(self) -> None:
        """Commit everything pending, then close the connection."""
        if self._db is None:
            return
        self._stopping = True
        self._wakeup.set()
        try:
            while self._pending:
                try:
                    await self.commit_pending()
                except StoreFullError:
                    # Telemetry may still make room for what is pending; if not, give up.
                    if not await self._shielded(self._make_room_locked(full=True)):
                        raise
        finally:
            db, self._db = self._db, None
            with contextlib.suppress(sqlite3.Error):
                await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await db.close()
            self._lock.release()
            self.state = StoreState.CLOSED
            self._wakeup.set()

    async def _connect(self) -> aiosqlite.Connection:
        """Connect, verify and migrate; raise StoreCorruptError for a damaged file."""
        self._check_header()
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None, timeout=5.0)
        except sqlite3.Error as exc:
            # "unable to open database file" names no file: the store's path is added.
            raise classify_sqlite_error(exc)(f"{self.path}: {exc}") from exc
        try:
            await self._prepare(db)
        except sqlite3.Error as exc:
            await db.close()
            error = classify_sqlite_error(exc)
            raise error(f"{self.path}: {exc}") from exc
        except StoreError:
            await db.close()
            raise
        return db

    def _check_header(self) -> None:
        """Refuse a file that is not a SQLite database before SQLite opens it.

        Opening it would let SQLite "recover" and delete a companion ``-wal`` on close,
        destroying what the quarantine should keep (sqlite.org/fileformat.html §1.3: every
        database starts with the 16 bytes "SQLite format 3\\0").
        """
        try:
            with open(self.path, "rb") as handle:
                header = handle.read(16)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreIOError(f"{self.path}: cannot read: {exc}") from exc
        if header and header != SQLITE_HEADER:
            raise StoreCorruptError(f"{self.path}: not a database (header {header[:16]!r})")

    async def _prepare(self, db: aiosqlite.Connection) -> None:
        # journal_mode is the first read of the file header: garbage fails here.
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute("PRAGMA temp_store=MEMORY")
        await db.execute(f"PRAGMA journal_size_limit={32 * MIB}")
        async with db.execute("PRAGMA quick_check") as cursor:
            rows = [str(r[0]) for r in await cursor.fetchall()]
        if rows != ["ok"]:
            raise StoreCorruptError(f"{self.path}: quick_check: {'; '.join(rows[:5])}")
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema {version}, newer than this Lineside ({SCHEMA_VERSION})"
            )
        for number in range(version, SCHEMA_VERSION):
            await db.execute("BEGIN IMMEDIATE")
            # executescript() would COMMIT on its own; run statement by statement instead so
            # the migration and its user_version bump are one transaction.
            for statement in _split_sql(MIGRATIONS[number]):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version={number + 1}")
            await db.execute("COMMIT")
            log.info("store migrated %s to schema %d", self.path, number + 1)
        await self._apply_budget(db)

    async def _apply_budget(self, db: aiosqlite.Connection) -> None:
        """Cap the database so it stays within its budget and leaves the disk headroom."""
        async with db.execute("PRAGMA page_size") as cursor:
            row = await cursor.fetchone()
        page_size = int(row[0]) if row else 4096
        size_now = self.path.stat().st_size if self.path.exists() else 0
        free = shutil.disk_usage(self.path.parent).free
        headroom = self.config.headroom_mb * MIB
        allowed = min(self.config.max_size_mb * MIB, size_now + max(free - headroom, 0))
        pages = max(allowed // page_size, (size_now // page_size) + 1, 64)
        # SQLite answers with the cap in force (never below the pages already in use).
        async with db.execute(f"PRAGMA max_page_count={pages}") as cursor:
            row = await cursor.fetchone()
        self._page_size = page_size
        self.stats.max_pages = int(row[0]) if row else pages
        log.debug("store budget: %d pages of %d bytes", self.stats.max_pages, page_size)

    async def _max_sequence(self) -> int:
        db = self._connection()
        highest = 0
        for table in (*RECORD_STREAMS, "runs", "outbox"):
            async with db.execute(f"SELECT max(seq) FROM {table}") as cursor:  # noqa: S608
                row = await cursor.fetchone()
            if row and row[0] is not None:
                highest = max(highest, int(row[0]))
        return highest

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    # ---------------------------------------------------------------- quarantine

    def _quarantine(self, reason: str) -> Path:
        """Move the database and its -wal/-shm together into a new quarantine folder."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        folder = self.config.quarantine_path / stamp
        folder.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                # Never move or delete a -wal on its own: that corrupts
                # (sqlite.org/howtocorrupt.html).
                shutil.move(source, folder / source.name)
        (folder / "REASON.txt").write_text(reason + "\n", encoding="utf-8")
        moved = folder / self.path.name
        self.stats.quarantined.append(moved)
        log.error(
            "store %s is damaged (%s); moved to %s and started fresh", self.path, reason, folder
        )
        return moved

    def _alert_quarantined(self, moved: Path, reason: str) -> None:
        self.submit(
            AlertRecord(
                ts_us=self.clock.wall_us(),
                alert_id=f"store.quarantined.{moved.parent.name}",
                rule="store_quarantined",
                subject=str(self.path),
                severity=Severity.MAJOR,
                state="raised",
                message=f"damaged database moved to {moved}; recording continues in a fresh store",
                detail={"file": str(moved), "reason": reason},
            )
        )

    # ---------------------------------------------------------------- writing

    def submit(self, record: Record, *, with_previous: bool = False) -> asyncio.Future[int]:
        """Queue a record for the next group commit; the future gives its sequence number.

        ``with_previous``: the record is a consequence of the one queued just before it (an
        alert a pack caused) and is committed in the same transaction, so a crash never
        leaves a pack stored without the alert it raised.
        """
        if self._db is None:
            raise StoreError("store is closed")
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(record, done, with_previous))
        pending = len(self._pending)
        # The first record starts the group-commit interval; a full batch ends it early, and
        # so does intake pressure (an adapter held back should not also wait the interval).
        if pending == 1 or pending >= self._batch_rows:
            self._wakeup.set()
        if pending >= self._backpressure_rows:
            self._space.clear()
        return done

    async def append(self, record: Record) -> asyncio.Future[int]:
        """Like :meth:`submit`, but first waits for space (see :meth:`wait_for_space`)."""
        await self.wait_for_space()
        return self.submit(record)

    async def wait_for_space(self) -> None:
        """Return once fewer than :attr:`backpressure_rows` records are pending.

        Intake that controls its own pace (a socket it reads, a device it polls) awaits this
        before taking in more; it returns at once, without suspending, when there is space.
        """
        while len(self._pending) >= self._backpressure_rows:
            self._space.clear()
            await self._space.wait()

    @property
    def backpressure_rows(self) -> int:
        """Pending records at which intake that can wait is held back."""
        return self._backpressure_rows

    @property
    def over_limit(self) -> bool:
        """True while ``max_pending_rows`` or more records are pending: device records are
        shed rather than queued (:class:`gateway.pipeline.Pipeline`)."""
        return len(self._pending) >= self.config.max_pending_rows

    async def write(self, record: Record) -> int:
        """Store one record and wait until it is committed; returns its sequence number."""
        return await self.submit(record)

    @property
    def page_size(self) -> int:
        """The database page size in bytes (to turn page counts into sizes)."""
        return self._page_size

    @property
    def pending_count(self) -> int:
        """Records queued but not committed yet."""
        return len(self._pending)

    async def run_committer(self) -> None:
        """Commit pending records in groups until :meth:`stop_committer` (run as a task)."""
        interval = self.config.commit_interval_ms / 1000
        # The floor keeps a full store from retrying in a tight loop.
        backoff = Backoff(initial=0.2, maximum=10.0, floor_fraction=0.5)
        while not (self._stopping and not self._pending):
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self._pending) < self._batch_rows and not self._stopping:
                # Group commit: give the batch up to one interval to fill.
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._wakeup.wait()
            try:
                await self.commit_pending()
            except StoreFullError as exc:
                if self._stopping:
                    raise
                delay = backoff.next_delay()
                log.error(
                    "store full, %d records waiting, retry in %.1fs: %s",
                    len(self._pending),
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                # Before the retry: recompute the budget from the free disk space and evict
                # telemetry; what still does not fit keeps waiting in memory.
                await self._shielded(self._make_room_locked(full=True))
            else:
                backoff.reset()
        self._committer_done.set()

    async def stop_committer(self) -> None:
        """Ask the committer to commit everything pending and return; wait until it has."""
        self._stopping = True
        self._wakeup.set()
        await self._committer_done.wait()

    async def commit_pending(self) -> int:
        """Commit up to ``commit_max_rows`` pending records in one transaction; return how many.

        The commit runs shielded: if the caller is cancelled half-way, the transaction still
        finishes and the batch is taken off the queue exactly once, so a later flush cannot
        store the same records again under new sequence numbers.
        """
        return await self._shielded(self._commit_front())

    @staticmethod
    async def _shielded(work: Coroutine[Any, Any, int]) -> int:
        """Run ``work`` to its end even if the caller is cancelled (no half transactions)."""
        inner = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await inner
            raise

    async def _commit_front(self) -> int:
        async with self._commit_lock:
            size = self.config.commit_max_rows
            while size < len(self._pending) and self._pending[size].with_previous:
                size += 1  # a record and its consequences are never split
            batch = self._pending[:size]
            if not batch:
                return 0
            started = time.perf_counter()
            for attempt in range(2):
                try:
                    await self._commit_batch(batch)
                    break
                except StoreCorruptError as exc:
                    if attempt:
                        raise
                    await self._recover_from_corruption(str(exc))
            del self._pending[: len(batch)]
            if len(self._pending) < self._backpressure_rows and not self._space.is_set():
                self._space.set()
                for listener in self.space_listeners:
                    listener()
            if self.state is StoreState.FULL:
                self.state = StoreState.OK
                log.warning("store has space again; %d records waiting", len(self._pending))
            self.stats.batches_committed += 1
            self.stats.records_committed += len(batch)
            self.stats.last_commit_ms = (time.perf_counter() - started) * 1000
            await self._check_budget()
            return len(batch)

    async def commit_with_meta(self, records: Sequence[Record], meta: dict[str, str]) -> list[int]:
        """Store records and ``meta`` key/values in ONE transaction, now (no group commit).

        Used where a position must move together with the data it covers, e.g. the ERP
        watermark with the runs fetched up to it: after a crash either both are stored or
        neither, so nothing is skipped and nothing fetched twice is lost.
        """
        loop = asyncio.get_running_loop()
        batch = [_Pending(record, loop.create_future()) for record in records]

        async def commit() -> int:
            async with self._commit_lock:
                await self._commit_batch(batch, meta)
            return len(batch)

        # Shielded like the group commit: a caller cancelled between BEGIN and COMMIT (the
        # ERP poller at shutdown, or when its first poll times out) must not leave the
        # transaction open on the shared connection, or every later BEGIN fails.
        await self._shielded(commit())
        return [item.done.result() for item in batch]

    async def get_meta(self, key: str) -> str | None:
        """A value stored with :meth:`commit_with_meta`."""
        rows = await self.fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def _commit_batch(
        self, batch: Sequence[_Pending], meta: dict[str, str] | None = None
    ) -> None:
        db = self._connection()
        if self._sequence.needs_reservation(len(batch)):
            try:
                await asyncio.to_thread(self._sequence.reserve, len(batch))
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                self._mark_full()
                raise StoreFullError(f"{self._sequence.path}: {exc}") from exc
        first = self._sequence.take(len(batch))
        now = self.clock.wall_us()
        by_table: dict[str, list[tuple[object, ...]]] = defaultdict(list)
        outbox: list[tuple[object, ...]] = []
        for seq, item in enumerate(batch, first):
            table, row, priority = _ROWS[type(item.record)]
            by_table[table].append((seq, *row(item.record)))
            outbox.append((seq, table, priority, now))
        try:
            await db.execute("BEGIN IMMEDIATE")
            for table, rows in by_table.items():
                await db.executemany(_INSERT_SQL[table], rows)
            await db.executemany(
                "INSERT INTO outbox (seq, stream, priority, enqueued_us) VALUES (?, ?, ?, ?)",
                outbox,
            )
            versions = by_table.get("run_versions")
            if versions:
                await db.executemany(_UPSERT_RUN, [_current_run(row) for row in versions])
            if meta:
                await db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    list(meta.items()),
                )
            await db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            await self._rollback()
            raise StoreError(f"a record broke a table constraint: {exc}") from exc
        except sqlite3.Error as exc:
            await self._rollback()
            error = self._classify(exc)
            if error is StoreFullError:
                self._mark_full()
            raise error(f"{self.path}: commit of {len(batch)} records failed: {exc}") from exc
        for offset, item in enumerate(batch):
            if not item.done.done():
                item.done.set_result(first + offset)
        if by_table and self.commit_observers:
            tables = frozenset(by_table)
            for observe in self.commit_observers:
                try:
                    observe(tables)
                except Exception:  # a notice must never undo or stop a commit that happened
                    log.exception("store: a commit observer failed")

    def _mark_full(self) -> None:
        self.state = StoreState.FULL
        self.stats.full_events += 1

    def _classify(self, exc: sqlite3.Error) -> type[StoreError]:
        """Like :func:`classify_sqlite_error`, but an I/O error on a full disk is "full"."""
        error = classify_sqlite_error(exc)
        if error is StoreIOError and self._disk_is_full():
            return StoreFullError
        return error

    def _disk_is_full(self) -> bool:
        try:
            return shutil.disk_usage(self.path.parent).free < DISK_FULL_BYTES
        except OSError:
            return False

    async def _rollback(self) -> None:
        # After SQLITE_FULL/IOERR SQLite may have undone only the failing statement; the whole
        # batch must go, explicitly (sqlite.org/lang_transaction.html).
        with contextlib.suppress(sqlite3.Error):
            await self._connection().execute("ROLLBACK")

    async def _recover_from_corruption(self, reason: str) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                await db.close()
        moved = self._quarantine(reason)
        self._db = await self._connect()
        self._alert_quarantined(moved, reason)
        # The alert was appended at the end; the retried batch is the front of the queue.

    # ---------------------------------------------------------------- eviction

    async def _used_pages(self) -> int:
        db = self._connection()
        async with db.execute("PRAGMA page_count") as cursor:
            row = await cursor.fetchone()
        pages = int(row[0]) if row else 0
        async with db.execute("PRAGMA freelist_count") as cursor:
            row = await cursor.fetchone()
        used = pages - (int(row[0]) if row else 0)
        self.stats.used_pages = used
        return used

    async def _check_budget(self) -> None:
        """After a commit: evict early when near the budget; clear the alert when well under.

        Looks every :data:`eviction.CHECK_INTERVAL_S` while all is well, after every commit
        while the "edge storage full" alert is raised. Runs under the commit lock.
        """
        now = time.monotonic()
        if not self._alert_raised and now < self._next_check:
            return
        self._next_check = now + eviction.CHECK_INTERVAL_S
        try:
            await self._make_room(full=False)
        except StoreFullError as exc:
            log.warning("store: eviction failed, the disk is full: %s", exc)
            return
        except StoreCorruptError as exc:
            # The batch is committed; the next commit meets the damage and quarantines.
            log.error("store: eviction check failed: %s", exc)
            return
        if (
            self._alert_raised
            and self.state is StoreState.OK
            and self.stats.used_pages < eviction.CLEAR_BELOW * self.stats.max_pages
        ):
            self._alert_raised = False
            self._submit_full_alert(
                "cleared",
                f"edge storage below {eviction.CLEAR_BELOW:.0%} of its budget again "
                f"({self._usage_text()}); telemetry evicted since start: "
                f"{self._evicted_text()}",
            )
            log.warning("store: edge storage no longer full (%s)", self._usage_text())

    async def _make_room_locked(self, *, full: bool) -> int:
        async with self._commit_lock:
            try:
                return await self._make_room(full=full)
            except StoreFullError as exc:
                # Not even a DELETE fits (a full file system): wait for space to come back.
                log.error("store: cannot evict, the disk is full: %s", exc)
                if not self._alert_raised:
                    self._raise_full_alert(
                        f"the disk is full, nothing can be written or evicted; "
                        f"{len(self._pending)} records waiting in memory"
                    )
                return 0

    async def _make_room(self, *, full: bool) -> int:
        """Recompute the budget and evict telemetry if needed; return the rows evicted.

        ``full``: a commit has just hit the budget, so evict at least one chunk. Raises the
        "edge storage full" alert (once) when eviction starts, or when the store is full and
        there is no telemetry left to evict. Call with the commit lock held.
        """
        await self._apply_budget(self._connection())
        used = await self._used_pages()
        limit = self.stats.max_pages
        if not full and used <= eviction.EVICT_ABOVE * limit:
            return 0
        evicted = await self._evict_telemetry(int(eviction.EVICT_DOWN_TO * limit), full=full)
        count = sum(evicted.values())
        if count:
            log.warning(
                "store near its budget (%s): evicted %d telemetry rows %s",
                self._usage_text(),
                count,
                evicted,
            )
            if not self._alert_raised:
                self._raise_full_alert(
                    f"evicting the oldest telemetry to keep recording; evicted so far: "
                    f"{self._evicted_text()}; compliance records and alerts are kept"
                )
        elif full and not self._alert_raised:
            self._raise_full_alert(
                f"only compliance records and alerts remain, nothing can be evicted; "
                f"{len(self._pending)} records waiting in memory"
            )
        return count

    async def _evict_telemetry(self, target_pages: int, *, full: bool) -> dict[str, int]:
        """Delete the oldest telemetry in chunks until ``target_pages`` are used."""
        db = self._connection()
        evicted: dict[str, int] = {}
        for chunk in range(eviction.MAX_CHUNKS_PER_ROUND):
            if chunk and self.stats.used_pages <= target_pages:
                break
            if not chunk and not full and self.stats.used_pages <= target_pages:
                break
            before = self.stats.used_pages
            oldest = await self._oldest_telemetry(self._chunk_rows(before - target_pages))
            if not oldest:
                break
            by_table: dict[str, list[int]] = defaultdict(list)
            for seq, table in oldest:
                by_table[table].append(seq)
            deleted: dict[str, int] = {}
            try:
                await db.execute("BEGIN IMMEDIATE")
                for table, seqs in by_table.items():
                    # Table names come from eviction.EVICTABLE_TABLES, never from input.
                    sql = f"DELETE FROM {table} WHERE seq IN (SELECT value FROM json_each(?))"  # noqa: S608
                    async with db.execute(sql, (_json_list(seqs),)) as cursor:
                        deleted[table] = cursor.rowcount
                await db.execute(
                    "DELETE FROM outbox WHERE priority = ? "
                    "AND seq IN (SELECT value FROM json_each(?))",
                    (eviction.EVICTABLE_PRIORITY, _json_list([seq for seq, _ in oldest])),
                )
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._rollback()
                error = self._classify(exc)
                raise error(f"{self.path}: eviction of {len(oldest)} rows failed: {exc}") from exc
            for table, rows in deleted.items():
                evicted[table] = evicted.get(table, 0) + rows
                self.stats.evicted[table] = self.stats.evicted.get(table, 0) + rows
            freed = before - await self._used_pages()
            if freed > 0:
                self._pages_per_row = freed / len(oldest)
        return evicted

    def _chunk_rows(self, excess_pages: int) -> int:
        """Rows for the next chunk: enough for ``excess_pages`` as far as we can tell.

        Sized from what the last chunk freed per row, so eviction stops near
        :data:`eviction.EVICT_DOWN_TO` instead of overshooting by a whole chunk.
        """
        if self._pages_per_row is None or excess_pages <= 0:
            return eviction.CHUNK_ROWS if excess_pages > 0 else eviction.MIN_CHUNK_ROWS
        wanted = math.ceil(1.1 * excess_pages / self._pages_per_row)
        return max(eviction.MIN_CHUNK_ROWS, min(eviction.CHUNK_ROWS, wanted))

    async def _oldest_telemetry(self, limit: int) -> list[tuple[int, str]]:
        """The next chunk to evict: the oldest evictable rows across the telemetry tables."""
        candidates: list[tuple[int, str]] = []
        for table in eviction.EVICTABLE_TABLES:
            if table == "device_events":
                marks = ", ".join("?" * len(eviction.PROTECTED_EVENT_KINDS))
                sql = (
                    f"SELECT seq FROM device_events WHERE kind NOT IN ({marks}) "  # noqa: S608
                    "ORDER BY seq LIMIT ?"
                )
                parameters: tuple[object, ...] = (*eviction.PROTECTED_EVENT_KINDS, limit)
            else:
                sql = f"SELECT seq FROM {table} ORDER BY seq LIMIT ?"  # noqa: S608
                parameters = (limit,)
            rows = await self._query(sql, parameters)  # under the commit lock already
            candidates.extend((int(row[0]), table) for row in rows)
        candidates.sort()
        return candidates[:limit]

    async def _full_alert_is_raised(self) -> bool:
        rows = await self._query(
            "SELECT state FROM alerts WHERE alert_id = ? ORDER BY seq DESC LIMIT 1",
            (eviction.ALERT_ID,),
        )
        return bool(rows) and str(rows[0][0]) != "cleared"

    def _raise_full_alert(self, what: str) -> None:
        self._alert_raised = True
        self._submit_full_alert("raised", f"edge storage full: {what} ({self._usage_text()})")
        log.error("store: edge storage full: %s", what)

    def _submit_full_alert(self, state: str, message: str) -> None:
        self.submit(
            AlertRecord(
                ts_us=self.clock.wall_us(),
                alert_id=eviction.ALERT_ID,
                rule=eviction.ALERT_RULE,
                subject=str(self.path),
                severity=Severity.MAJOR,
                state=state,
                message=message,
                detail={
                    "evicted": dict(self.stats.evicted),
                    "used_pages": self.stats.used_pages,
                    "max_pages": self.stats.max_pages,
                    "page_size": self._page_size,
                    "pending": len(self._pending),
                },
            )
        )

    def _usage_text(self) -> str:
        used, limit = self.stats.used_pages, max(self.stats.max_pages, 1)
        return f"{used * self._page_size / MIB:.1f} of {limit * self._page_size / MIB:.1f} MiB"

    def _evicted_text(self) -> str:
        if not self.stats.evicted:
            return "none"
        return ", ".join(f"{table} {rows}" for table, rows in sorted(self.stats.evicted.items()))

    # ---------------------------------------------------------------- reading

    async def last_pack_counter(self, device: str) -> int | None:
        """The checkweigher's pack counter as last recorded, so a restart loses no pack.

        Taken from the newest pack or counter event (baseline, reset, missed packs) of the
        device, whichever was stored last.
        """
        rows = await self.fetchall(
            """
            SELECT counter FROM (
                SELECT seq, pack_counter AS counter FROM packs
                WHERE device = ? AND pack_counter IS NOT NULL
                UNION ALL
                SELECT seq, json_extract(detail, '$.counter') FROM device_events
                WHERE device = ? AND kind IN
                    ('pack_counter_baseline', 'pack_counter_reset', 'missed_packs')
            ) ORDER BY seq DESC LIMIT 1
            """,
            (device, device),
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    async def fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the writer connection, never inside a group commit.

        It waits for the commit lock, so a reader never sees the rows of a transaction that
        may still roll back (disk full) and a statement such as ``DELETE ... RETURNING`` can
        never be half-way through when a COMMIT comes (SQLite refuses to commit then).

        Raises:
            StoreFullError: a write found the budget or the disk full (as a commit would);
                other ``sqlite3`` errors propagate as they are.
        """
        async with self._commit_lock:
            try:
                return await self._query(sql, parameters)
            except sqlite3.Error as exc:
                if self._classify(exc) is StoreFullError:
                    raise StoreFullError(f"{self.path}: {exc}") from exc
                raise

    async def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # One aiosqlite call: the statement runs and is fully stepped in the worker thread.
        rows = await self._connection().execute_fetchall(sql, parameters)
        return [tuple(row) for row in rows]


_ROWS: dict[type[Record], tuple[str, Callable[[Any], tuple[object, ...]], int]] = {
    kind: (spec.table, spec.row, int(spec.priority)) for kind, spec in RECORD_TABLES.items()
}
"""Per record type: its table, its row builder and its outbox priority (looked up per record
in a commit, so kept as a plain tuple)."""

_INSERT_SQL: dict[str, str] = {spec.table: spec.insert_sql for spec in RECORD_TABLES.values()}
"""The ``INSERT`` of each record table."""

_UPSERT_RUN = """
INSERT INTO runs (run_number, seq, line, status, source, provisional, payload, updated_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_number) DO UPDATE SET
    seq = excluded.seq, line = excluded.line, status = excluded.status,
    source = excluded.source, provisional = excluded.provisional,
    payload = excluded.payload, updated_us = excluded.updated_us
"""


def _current_run(row: tuple[object, ...]) -> tuple[object, ...]:
    # A run_versions row is (seq, ts_us, run_number, line, status, source, actor,
    # provisional, payload, flags): see RECORD_TABLES[RunVersion].
    seq, ts_us, run_number, line, status, source, _actor, provisional, payload, _flags = row
    return (run_number, seq, line, status, source, provisional, payload, ts_us)


def _json_list(values: Sequence[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our literals)."""
    statements = []
    for chunk in script.split(";"):
        lines = [ln for ln in chunk.splitlines() if not ln.strip().startswith("--")]
        text = "\n".join(lines).strip()
        if text:
            statements.append(text)
    return statements


def database_files(path: Path) -> list[Path]:
    """The database file and its companions that exist on disk."""
    return [p for s in ("", "-wal", "-shm") if (p := Path(os.fspath(path) + s)).exists()]
