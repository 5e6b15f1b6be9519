"""Every statement on the ``outbox`` table and its ``outbox_quarantine``.

The ``outbox`` table is written by the group commit in the same transaction as each record
(:mod:`gateway.store.batch_insert`) and is the only source of truth for what is unsent: a
row leaves it only when the warehouse acknowledges that it has *committed* the record
(:meth:`OutboxTable.acknowledge`), when the record is refused and moved to
``outbox_quarantine`` (:meth:`OutboxTable.quarantine`), or when its telemetry is evicted for
space (:mod:`gateway.store.eviction`). Both tables are created by the store's migrations
(:data:`gateway.store.schema.MIGRATIONS`; the quarantine by migration 3 -> 4).

How the statements meet the group committer
-------------------------------------------
The store has one writer connection. Reads here go through :meth:`Store.fetchall` and
writes through :meth:`Store.write_in_transaction`; both wait for the store's commit lock,
so they never run inside a group commit and never see rows of a batch that may still roll
back (disk full). Each change is one transaction: acknowledging deletes the rows in one
statement; quarantining copies the rows into the quarantine and deletes them from the
outbox together; re-queueing (an operator's ``lineside dead-letter requeue``) does the
mirror image together. A change either happens whole or not at all, so a record is never
in both tables, nor in neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.store.record_tables import RECORD_TABLES, STREAM_PRIORITY
from gateway.store.sqlite_store import Store

STREAM_COLUMNS: dict[str, tuple[str, ...]] = {
    t.table: tuple(sorted(t.columns)) for t in RECORD_TABLES.values()
}
"""Record columns (without ``seq``) per stream, in name order; also the whitelist of table
names. Name order because a record is read into a dict in this order and sent as canonical
JSON, whose keys are sorted (sync/canonical.py): keys already in order sort in one pass."""

_NOT_IN_FLIGHT = (
    "o.seq NOT IN (SELECT value FROM json_each(?)) "
    "AND o.seq NOT IN (SELECT seq FROM outbox_quarantine)"
)

_SPAN = "(SELECT seq, stream FROM outbox WHERE priority = ? AND seq >= ? ORDER BY seq LIMIT ?)"
"""The rows of one priority class from the head on, in seq order, bounded."""

_IN_SPAN = (
    "o.priority = ? AND o.seq >= ? AND o.seq <= coalesce("
    "(SELECT seq FROM outbox WHERE priority = ? AND seq >= ? ORDER BY seq LIMIT 1 OFFSET ?), "
    "9223372036854775807)"  # the largest seq SQLite can hold: no bound
)
"""The same rows as :data:`_SPAN`, as a condition on ``outbox o``: up to the seq of the span's
last row. Read through the ``(priority, seq)`` index in seq order, so a query can stop at its
LIMIT instead of joining every row of the span and sorting them."""

_ACTIVE_QUARANTINE_ALERTS = """
SELECT alert_id, subject, severity, line FROM alerts a
WHERE rule = ? AND state IN ('raised', 'updated') AND seq = (
    SELECT max(seq) FROM alerts b WHERE b.alert_id = a.alert_id
    AND b.state IN ('raised', 'updated', 'cleared'))
ORDER BY seq
"""
"""Alerts of a rule whose newest raise/update/clear is not a clear."""

Span = tuple[int, int, int]
"""``(priority, first seq, rows)``: the rows of one priority class read for a batch."""


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """One row of the outbox quarantine."""

    seq: int
    stream: str
    reason: str
    ts_us: int
    """When it was quarantined (wall clock)."""


# The quarantine's reads, shared with ``lineside dead-letter`` reading a stopped gateway's
# store through a read-only connection (gateway/commands/dead_letter.py).
QUARANTINE_COUNT = "SELECT count(*) FROM outbox_quarantine"
QUARANTINE_PAGE = (
    "SELECT seq, stream, reason, ts_us FROM outbox_quarantine WHERE seq > ? ORDER BY seq LIMIT ?"
)
QUARANTINE_ENTRY = "SELECT seq, stream, reason, ts_us FROM outbox_quarantine WHERE seq = ?"


def quarantined_entry(row: Sequence[Any]) -> QuarantinedRecord:
    """A row of :data:`QUARANTINE_PAGE` or :data:`QUARANTINE_ENTRY`."""
    seq, stream, reason, ts_us = row
    return QuarantinedRecord(int(seq), str(stream), str(reason or ""), int(ts_us or 0))


def record_query(stream: str) -> str | None:
    """The statement reading a record of ``stream`` by its ``seq``; ``None`` for a stream
    that is not a record table."""
    columns = STREAM_COLUMNS.get(stream)
    if columns is None:
        return None
    # The table and column names come from RECORD_TABLES, never from the database.
    return f"SELECT {', '.join(columns)} FROM {stream} WHERE seq = ?"  # noqa: S608


def record_data(stream: str, row: Sequence[Any]) -> dict[str, Any]:
    """A row of :func:`record_query` as JSON-ready values by column name."""
    return {name: wire_value(v) for name, v in zip(STREAM_COLUMNS[stream], row, strict=True)}


def wire_value(value: object) -> object:
    """A column value as JSON: BLOBs (raw scanner bytes) as hex."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def _seq_list(seqs: Iterable[int]) -> list[int]:
    return sorted({int(s) for s in seqs})


class OutboxTable:
    """The outbox and its quarantine in the store: what is unsent, what was refused."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---------------------------------------------------------------- what to send

    async def head(self, excluded: str) -> tuple[int, str, int] | None:
        """``(seq, stream, priority)`` of the first row in (priority, seq) order that is
        neither in the JSON list ``excluded`` nor quarantined."""
        rows = await self.store.fetchall(
            f"SELECT o.seq, o.stream, o.priority FROM outbox o WHERE {_NOT_IN_FLIGHT} "  # noqa: S608
            "ORDER BY o.priority, o.seq LIMIT 1",
            (excluded,),
        )
        if not rows:
            return None
        return int(rows[0][0]), str(rows[0][1]), int(rows[0][2])

    async def stream_seqs(self, stream: str, span: Span, excluded: str, limit: int) -> list[int]:
        """Up to ``limit`` sequence numbers of ``stream`` within ``span``, not excluded."""
        rows = await self.store.fetchall(
            f"SELECT o.seq FROM {_SPAN} o WHERE o.stream = ? AND {_NOT_IN_FLIGHT} "  # noqa: S608
            "ORDER BY o.seq LIMIT ?",
            (*span, stream, excluded, limit),
        )
        return [int(row[0]) for row in rows]

    async def read(
        self, stream: str, span: Span, excluded: str, limit: int
    ) -> list[tuple[int, dict[str, Any] | None]]:
        """Up to ``limit`` records of ``stream`` within ``span``, not excluded, in seq order,
        each as its columns (BLOBs as hex), or ``None`` when its record row is missing."""
        columns = STREAM_COLUMNS[stream]
        # The table and column names come from RECORD_TABLES, never from the database.
        selected = ", ".join(f"t.{name}" for name in columns)
        priority, first, rows_in_span = span
        rows = await self.store.fetchall(
            f"SELECT o.seq, t.seq IS NOT NULL, {selected} FROM outbox o "  # noqa: S608
            f"LEFT JOIN {stream} t ON t.seq = o.seq "
            f"WHERE {_IN_SPAN} AND o.stream = ? AND {_NOT_IN_FLIGHT} ORDER BY o.seq LIMIT ?",
            (priority, first, priority, first, rows_in_span - 1, stream, excluded, limit),
        )
        entries: list[tuple[int, dict[str, Any] | None]] = []
        for row in rows:
            if not row[1]:
                entries.append((int(row[0]), None))  # the record row is missing
                continue
            values = row[2:]
            data: dict[str, Any] = dict(zip(columns, values, strict=True))
            if bytes in set(map(type, values)):  # a BLOB (a scanner's raw read) goes as hex
                data = {name: wire_value(value) for name, value in data.items()}
            entries.append((int(row[0]), data))
        return entries

    # ---------------------------------------------------------------- changes

    async def acknowledge(self, seqs: Iterable[int]) -> int:
        """Delete the outbox rows of records the warehouse has committed; how many went.

        Only an end-to-end acknowledgement may call this (never a PUBACK). Unknown or
        already deleted sequence numbers are ignored, so a duplicate ack is harmless.
        """
        wanted = _seq_list(seqs)
        if not wanted:
            return 0
        (deleted,) = await self.store.write_in_transaction(
            [
                (
                    "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) "
                    "RETURNING seq",
                    (json.dumps(wanted),),
                )
            ]
        )
        return len(deleted)

    async def quarantine(self, seqs: Iterable[int], reason: str) -> int:
        """Move refused records out of the outbox into ``outbox_quarantine``; how many moved.

        The record rows themselves stay in their tables; the quarantine keeps the reason so
        an operator can inspect and re-queue them.
        """
        wanted = _seq_list(seqs)
        if not wanted:
            return 0
        encoded = json.dumps(wanted)
        _, deleted = await self.store.write_in_transaction(
            [
                (
                    "INSERT OR IGNORE INTO outbox_quarantine (seq, stream, reason, ts_us) "
                    "SELECT seq, stream, ?, ? FROM outbox "
                    "WHERE seq IN (SELECT value FROM json_each(?))",
                    (reason, self.store.clock.wall_us(), encoded),
                ),
                (
                    "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) "
                    "AND seq IN (SELECT seq FROM outbox_quarantine) RETURNING seq",
                    (encoded,),
                ),
            ]
        )
        return len(deleted)

    async def requeue(
        self, seqs: Iterable[int]
    ) -> tuple[list[QuarantinedRecord], dict[str, list[int]]]:
        """Move quarantined records back into the outbox, to be sent again.

        Returns the quarantine entries moved and, by reason, the sequence numbers that could
        not be: not in the quarantine, of a stream this gateway does not know, or whose
        record row is gone (evicted telemetry).
        """
        wanted = _seq_list(seqs)
        refused: dict[str, list[int]] = {}
        if not wanted:
            return [], refused
        encoded = json.dumps(wanted)
        rows = await self.store.fetchall(
            "SELECT seq, stream, reason, ts_us FROM outbox_quarantine "
            "WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
            (encoded,),
        )
        entries = {entry.seq: entry for entry in map(quarantined_entry, rows)}
        missing = [seq for seq in wanted if seq not in entries]
        if missing:
            refused["not in the quarantine"] = missing
        by_stream: dict[str, list[int]] = {}
        for entry in entries.values():
            by_stream.setdefault(entry.stream, []).append(entry.seq)
        now = self.store.clock.wall_us()
        statements: list[tuple[str, Sequence[Any]]] = []
        for stream, stream_seqs in by_stream.items():
            priority = STREAM_PRIORITY.get(stream)
            if priority is None:
                refused[f"unknown stream {stream!r}"] = stream_seqs
                continue
            # Only records whose row still exists go back: an evicted one cannot be sent.
            statements.append(
                (
                    "INSERT OR IGNORE INTO outbox (seq, stream, priority, enqueued_us) "  # noqa: S608
                    "SELECT q.seq, q.stream, ?, ? FROM outbox_quarantine q "
                    f"WHERE q.seq IN (SELECT value FROM json_each(?)) "
                    f"AND q.seq IN (SELECT seq FROM {stream})",  # a table of RECORD_TABLES
                    (priority, now, json.dumps(stream_seqs)),
                )
            )
        statements.append(
            (
                "DELETE FROM outbox_quarantine WHERE seq IN (SELECT value FROM json_each(?)) "
                "AND seq IN (SELECT seq FROM outbox) RETURNING seq",
                (encoded,),
            )
        )
        deleted = (await self.store.write_in_transaction(statements))[-1]
        moved = sorted(int(row[0]) for row in deleted)
        left = set(entries) - set(moved)
        for stream_seqs in refused.values():
            left -= set(stream_seqs)
        if left:
            refused["record row missing (evicted or never stored)"] = sorted(left)
        return [entries[seq] for seq in moved], refused

    # ---------------------------------------------------------------- the quarantine

    async def quarantined(self) -> list[tuple[int, str, str]]:
        """``(seq, stream, reason)`` of every quarantined record, in seq order."""
        rows = await self.store.fetchall(
            "SELECT seq, stream, reason FROM outbox_quarantine ORDER BY seq"
        )
        return [(int(seq), str(stream), str(reason)) for seq, stream, reason in rows]

    async def quarantine_count(self) -> int:
        """How many records wait in the quarantine."""
        rows = await self.store.fetchall(QUARANTINE_COUNT)
        return int(rows[0][0])

    async def quarantine_page(
        self, *, after: int = 0, limit: int = 1000
    ) -> list[QuarantinedRecord]:
        """Up to ``limit`` quarantined records with a sequence number above ``after``."""
        rows = await self.store.fetchall(QUARANTINE_PAGE, (after, limit))
        return [quarantined_entry(row) for row in rows]

    async def quarantined_record(
        self, seq: int
    ) -> tuple[QuarantinedRecord, dict[str, Any] | None] | None:
        """A quarantined record and its stored data (``None`` when the row is gone, e.g.
        evicted telemetry); ``None`` when ``seq`` is not in the quarantine."""
        rows = await self.store.fetchall(QUARANTINE_ENTRY, (seq,))
        if not rows:
            return None
        entry = quarantined_entry(rows[0])
        query = record_query(entry.stream)
        if query is None:
            return entry, None
        found = await self.store.fetchall(query, (seq,))
        return entry, record_data(entry.stream, found[0]) if found else None

    async def quarantined_in(
        self, ranges: Iterable[tuple[int, int]], *, limit: int = 1_000_000
    ) -> list[int]:
        """The quarantined sequence numbers within the inclusive ``ranges``, in order (the
        first ``limit`` of each range)."""
        found: set[int] = set()
        for first, last in ranges:
            rows = await self.store.fetchall(
                "SELECT seq FROM outbox_quarantine WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?",
                (first, last, limit),
            )
            found.update(int(row[0]) for row in rows)
        return sorted(found)

    async def quarantine_by_stream(self) -> list[tuple[str, int, int, int]]:
        """``(stream, records, first seq, last seq)`` per stream in the quarantine."""
        rows = await self.store.fetchall(
            "SELECT stream, count(*), min(seq), max(seq) FROM outbox_quarantine "
            "GROUP BY stream ORDER BY stream"
        )
        return [(str(s), int(n), int(first), int(last)) for s, n, first, last in rows]

    async def standing_alerts(self, rule: str) -> list[tuple[Any, ...]]:
        """``(alert_id, subject, severity, line)`` of the alerts of ``rule`` still standing."""
        return await self.store.fetchall(_ACTIVE_QUARANTINE_ALERTS, (rule,))

    # ---------------------------------------------------------------- the backlog

    async def depth(self) -> int:
        """Records waiting for an acknowledgement (the backlog)."""
        rows = await self.store.fetchall("SELECT count(*) FROM outbox")
        return int(rows[0][0])

    async def depth_by_priority(self) -> dict[int, int]:
        """Backlog per priority class (0 alerts, 1 compliance, 2 telemetry)."""
        rows = await self.store.fetchall(
            "SELECT priority, count(*) FROM outbox GROUP BY priority ORDER BY priority"
        )
        return {int(p): int(n) for p, n in rows}

    async def oldest_age_s(self) -> float:
        """Age in seconds of the oldest unacknowledged record; 0 when the outbox is empty."""
        rows = await self.store.fetchall("SELECT min(enqueued_us) FROM outbox")
        oldest = rows[0][0] if rows else None
        if oldest is None:
            return 0.0
        return max(0.0, (self.store.clock.wall_us() - int(oldest)) / 1_000_000)
