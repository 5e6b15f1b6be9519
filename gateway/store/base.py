"""The store's state, its pending queue and its one connection: what the budget
(:mod:`gateway.store.budget`) and the committer (:mod:`gateway.store.sqlite_store`) share."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from gateway.core.clock import Clock
from gateway.core.errors import StoreError
from gateway.core.records import Record
from gateway.store.lock import StoreLock
from gateway.store.sequence import SequenceAllocator
from gateway.store.sqlite_errors import classify_on_disk

T = TypeVar("T")


class StoreSettings(Protocol):
    """What the store reads from its configuration: the ``[store]`` section
    (``gateway.config.StoreSection``). A protocol, so the store depends on no config code."""

    @property
    def path(self) -> Path: ...

    @property
    def quarantine_path(self) -> Path: ...

    @property
    def commit_interval_ms(self) -> int: ...

    @property
    def commit_max_rows(self) -> int: ...

    @property
    def max_pending_rows(self) -> int: ...

    @property
    def max_size_mb(self) -> int: ...

    @property
    def headroom_mb(self) -> int: ...


BACKPRESSURE_FRACTION = 0.5
"""Intake that can wait does so once this fraction of ``max_pending_rows`` is pending; the
rest is room for what cannot wait (OPC UA subscriptions, alerts, the gateway's own events)
before device records are shed."""


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
class Pending:
    record: Record
    done: asyncio.Future[int] | None
    """Given the record's sequence number at its commit; ``None`` for a record queued with
    :meth:`StoreBase.enqueue`, whose caller does not wait for it."""
    with_previous: bool = False
    """Committed in the same transaction as the record queued before it."""


class StoreBase:
    """What every part of the store works on: the configuration, the state and counters,
    the queue of pending records, the commit lock and the one writer connection."""

    def __init__(self, config: StoreSettings, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.path = config.path
        self.state = StoreState.CLOSED
        self.stats = StoreStats()
        self._db: aiosqlite.Connection | None = None
        self._sequence = SequenceAllocator(self.path.with_name(self.path.name + ".seq"))
        self._lock = StoreLock(self.path)
        self._pending: list[Pending] = []
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

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    # ---------------------------------------------------------------- writing

    def submit(self, record: Record, *, with_previous: bool = False) -> asyncio.Future[int]:
        """Queue a record for the next group commit; the future gives its sequence number.

        ``with_previous``: the record is a consequence of the one queued just before it (an
        alert a pack caused) and is committed in the same transaction, so a crash never
        leaves a pack stored without the alert it raised.
        """
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue(Pending(record, done, with_previous))
        return done

    def enqueue(self, record: Record, *, with_previous: bool = False) -> None:
        """Queue a record like :meth:`submit`, for a caller that does not wait for its commit.

        Why: the readings of the devices and the alerts they cause are queued this way,
        thousands a second, and nobody awaits them (the store never fails a record; a
        commit that fails keeps its records pending, or stops the gateway). A future per
        record, and setting its result at the commit, cost the event loop for nothing.
        """
        self._queue(Pending(record, None, with_previous))

    def _queue(self, item: Pending) -> None:
        if self._db is None:
            raise StoreError("store is closed")
        self._pending.append(item)
        pending = len(self._pending)
        # The first record starts the group-commit interval; a full batch ends it early, and
        # so does intake pressure (an adapter held back should not also wait the interval).
        if pending == 1 or pending >= self._batch_rows:
            self._wakeup.set()
        if pending >= self._backpressure_rows:
            self._space.clear()

    @property
    def backpressure_rows(self) -> int:
        """Pending records at which intake that can wait is held back."""
        return self._backpressure_rows

    @property
    def over_limit(self) -> bool:
        """True while ``max_pending_rows`` or more records are pending: device records are
        shed rather than queued (:class:`gateway.pipeline.Pipeline`)."""
        return len(self._pending) >= self.config.max_pending_rows

    @property
    def page_size(self) -> int:
        """The database page size in bytes (to turn page counts into sizes)."""
        return self._page_size

    @property
    def pending_count(self) -> int:
        """Records queued but not committed yet."""
        return len(self._pending)

    @staticmethod
    async def _shielded(work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` to its end even if the caller is cancelled (no half transactions)."""
        inner = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await inner
            raise

    def _mark_full(self) -> None:
        self.state = StoreState.FULL
        self.stats.full_events += 1

    def _classify(self, exc: sqlite3.Error) -> type[StoreError]:
        """Like :func:`classify_sqlite_error`, but an I/O error on a full disk is "full"."""
        return classify_on_disk(exc, self.path.parent)

    async def _rollback(self) -> None:
        # After SQLITE_FULL/IOERR SQLite may have undone only the failing statement; the whole
        # batch must go, explicitly (sqlite.org/lang_transaction.html).
        with contextlib.suppress(sqlite3.Error):
            await self._connection().execute("ROLLBACK")

    async def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # One aiosqlite call: the statement runs and is fully stepped in the worker thread.
        rows = await self._connection().execute_fetchall(sql, parameters)
        return [tuple(row) for row in rows]
