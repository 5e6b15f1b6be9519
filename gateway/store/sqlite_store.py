"""The store itself: opening and closing, the group committer, and the reads and writes
other parts run on its one connection (the module overview is :mod:`gateway.store`)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.core.backoff import Backoff
from gateway.core.errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIOError,
    StoreUnavailableError,
)
from gateway.core.records import AlertRecord, Record, Severity
from gateway.store.base import Pending, StoreState
from gateway.store.batch_insert import insert_batch
from gateway.store.budget import BudgetedStore
from gateway.store.database import max_sequence, open_database
from gateway.store.file_quarantine import quarantine_database, quarantined_alert
from gateway.store.schema import SCHEMA_VERSION

log = logging.getLogger(__name__)


class Store(BudgetedStore):
    """The gateway's SQLite store with group commit and a transactional outbox.

    Use as ``async with Store(config, clock) as store:`` and run :meth:`run_committer` as a
    task; :meth:`close` (called on exit) commits whatever is still pending.
    """

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
        database_max = await max_sequence(self._connection())
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
        """Connect, verify, migrate and cap; raise StoreCorruptError for a damaged file."""
        return await open_database(self.path, self._apply_budget)

    def _quarantine(self, reason: str) -> Path:
        """Move the database and its -wal/-shm together into a new quarantine folder."""
        moved = quarantine_database(self.path, self.config.quarantine_path, reason)
        self.stats.quarantined.append(moved)
        return moved

    def _alert_quarantined(self, moved: Path, reason: str) -> None:
        self.submit(quarantined_alert(self.path, moved, reason, self.clock.wall_us()))

    # ---------------------------------------------------------------- writing

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

    async def write(self, record: Record) -> int:
        """Store one record and wait until it is committed; returns its sequence number."""
        return await self.submit(record)

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
        futures: list[asyncio.Future[int]] = [loop.create_future() for _ in records]
        batch = [Pending(record, done) for record, done in zip(records, futures, strict=True)]

        async def commit() -> int:
            async with self._commit_lock:
                await self._commit_batch(batch, meta)
            return len(batch)

        # Shielded like the group commit: a caller cancelled between BEGIN and COMMIT (the
        # ERP poller at shutdown, or when its first poll times out) must not leave the
        # transaction open on the shared connection, or every later BEGIN fails.
        await self._shielded(commit())
        return [done.result() for done in futures]

    async def get_meta(self, key: str) -> str | None:
        """A value stored with :meth:`commit_with_meta`."""
        rows = await self.fetchall("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def _recover_from_corruption(self, reason: str) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                await db.close()
        moved = self._quarantine(reason)
        self._db = await self._connect()
        self._alert_quarantined(moved, reason)
        # The alert was appended at the end; the retried batch is the front of the queue.

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
        """Run one reading statement on the writer connection, never inside a group commit.

        It waits for the commit lock, so a reader never sees the rows of a transaction that
        may still roll back (disk full). Writes go through :meth:`write_in_transaction`.

        Raises:
            ValueError: ``sql`` is not a read (``SELECT``, ``WITH``, ``VALUES``, ``EXPLAIN``
                or a ``PRAGMA`` that sets nothing).
        """
        if not is_read(sql):
            raise ValueError(f"Store.fetchall only reads; write with write_in_transaction: {sql!r}")
        async with self._commit_lock:
            return await self._query(sql, parameters)

    async def write_in_transaction(
        self, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[tuple[Any, ...]]]:
        """Run ``statements`` in ONE transaction on the writer connection; their rows (for
        ``RETURNING``) in order.

        It takes the commit lock, so it never runs inside a group commit, and it is shielded
        like a commit: a caller cancelled half-way cannot leave the transaction open on the
        shared connection. On any error the whole transaction is rolled back.

        Raises:
            StoreFullError: a write found the budget or the disk full (as a commit would);
                other ``sqlite3`` errors propagate as they are.
        """

        async def write() -> list[list[tuple[Any, ...]]]:
            async with self._commit_lock:
                db = self._connection()
                # One statement is a transaction on its own (autocommit): no BEGIN/COMMIT
                # round trips for the most frequent write, the acknowledgement.
                single = len(statements) == 1
                try:
                    if not single:
                        await db.execute("BEGIN IMMEDIATE")
                    results = [await self._query(sql, values) for sql, values in statements]
                    if not single:
                        await db.execute("COMMIT")
                except sqlite3.Error as exc:
                    if not single:
                        await self._rollback()
                    if self._classify(exc) is StoreFullError:
                        raise StoreFullError(f"{self.path}: {exc}") from exc
                    raise
                return results

        return await self._shielded(write())

    async def _commit_batch(
        self, batch: Sequence[Pending], meta: dict[str, str] | None = None
    ) -> None:
        if self._sequence.needs_reservation(len(batch)):
            try:
                await asyncio.to_thread(self._sequence.reserve, len(batch))
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                self._mark_full()
                raise StoreFullError(f"{self._sequence.path}: {exc}") from exc
        first = self._sequence.take(len(batch))
        records = [item.record for item in batch]
        try:
            tables = await insert_batch(
                self._connection(), records, first, self.clock.wall_us(), meta
            )
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
            done = item.done
            if done is not None and not done.done():
                done.set_result(first + offset)
        for observe in self.commit_observers if tables else ():
            try:
                observe(tables)
            except Exception:  # a notice must never undo or stop a commit that happened
                log.exception("store: a commit observer failed")


def is_read(sql: str) -> bool:
    """Whether ``sql`` only reads: its first keyword (after comments) is ``SELECT``,
    ``WITH``, ``VALUES`` or ``EXPLAIN``, or it is a ``PRAGMA`` that assigns nothing."""
    lines = [line for line in sql.strip().splitlines() if not line.strip().startswith("--")]
    words = " ".join(lines).split(None, 1)
    if not words:
        return False
    first = words[0].upper()
    if first == "PRAGMA":
        return "=" not in sql
    return first in {"SELECT", "WITH", "VALUES", "EXPLAIN"}
