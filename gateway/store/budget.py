"""The size budget: the page cap, eviction of the oldest telemetry (the policy is in
:mod:`gateway.store.eviction`) and the one "edge storage full" alert."""

from __future__ import annotations

import logging
import math
import shutil
import sqlite3
import time
from collections import defaultdict
from collections.abc import Sequence

import aiosqlite

from gateway.core.errors import StoreCorruptError, StoreFullError
from gateway.core.records import AlertRecord, Severity
from gateway.store.base import StoreBase, StoreState
from gateway.store.database import MIB
from gateway.store.eviction import (
    ALERT_ID,
    ALERT_RULE,
    CHECK_INTERVAL_S,
    CHUNK_ROWS,
    CLEAR_BELOW,
    EVICT_ABOVE,
    EVICT_DOWN_TO,
    EVICTABLE_PRIORITY,
    EVICTABLE_TABLES,
    MAX_CHUNKS_PER_ROUND,
    MIN_CHUNK_ROWS,
    PROTECTED_EVENT_KINDS,
)

log = logging.getLogger(__name__)


class BudgetedStore(StoreBase):
    """The store's budget: keeps the database within ``max_size_mb`` and the disk's
    headroom by evicting telemetry, and says so with one alert."""

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

        Looks every :data:`CHECK_INTERVAL_S` while all is well, after every commit
        while the "edge storage full" alert is raised. Runs under the commit lock.
        """
        now = time.monotonic()
        if not self._alert_raised and now < self._next_check:
            return
        self._next_check = now + CHECK_INTERVAL_S
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
            and self.stats.used_pages < CLEAR_BELOW * self.stats.max_pages
        ):
            self._alert_raised = False
            self._submit_full_alert(
                "cleared",
                f"edge storage below {CLEAR_BELOW:.0%} of its budget again "
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
        if not full and used <= EVICT_ABOVE * limit:
            return 0
        evicted = await self._evict_telemetry(int(EVICT_DOWN_TO * limit), full=full)
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
        for chunk in range(MAX_CHUNKS_PER_ROUND):
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
                    # Table names come from EVICTABLE_TABLES, never from input.
                    sql = f"DELETE FROM {table} WHERE seq IN (SELECT value FROM json_each(?))"  # noqa: S608
                    async with db.execute(sql, (_json_list(seqs),)) as cursor:
                        deleted[table] = cursor.rowcount
                await db.execute(
                    "DELETE FROM outbox WHERE priority = ? "
                    "AND seq IN (SELECT value FROM json_each(?))",
                    (EVICTABLE_PRIORITY, _json_list([seq for seq, _ in oldest])),
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
        :data:`EVICT_DOWN_TO` instead of overshooting by a whole chunk.
        """
        if self._pages_per_row is None or excess_pages <= 0:
            return CHUNK_ROWS if excess_pages > 0 else MIN_CHUNK_ROWS
        wanted = math.ceil(1.1 * excess_pages / self._pages_per_row)
        return max(MIN_CHUNK_ROWS, min(CHUNK_ROWS, wanted))

    async def _oldest_telemetry(self, limit: int) -> list[tuple[int, str]]:
        """The next chunk to evict: the oldest evictable rows across the telemetry tables."""
        candidates: list[tuple[int, str]] = []
        for table in EVICTABLE_TABLES:
            if table == "device_events":
                marks = ", ".join("?" * len(PROTECTED_EVENT_KINDS))
                sql = (
                    f"SELECT seq FROM device_events WHERE kind NOT IN ({marks}) "  # noqa: S608
                    "ORDER BY seq LIMIT ?"
                )
                parameters: tuple[object, ...] = (*PROTECTED_EVENT_KINDS, limit)
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
            (ALERT_ID,),
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
                alert_id=ALERT_ID,
                rule=ALERT_RULE,
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


def _json_list(values: Sequence[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"
