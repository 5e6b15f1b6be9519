"""The outbox reader: what still has to reach the warehouse, in batches, by priority.

The ``outbox`` table (written by :class:`gateway.store.Store` in the same transaction as each
record) is the only source of truth for what is unsent: a row leaves it only when the
warehouse acknowledges that it has *committed* the record (:meth:`Outbox.acknowledge`), or
when the record is refused and moved to ``outbox_quarantine`` (:meth:`Outbox.quarantine`).
Nothing here keeps a backlog in memory; the uplink only remembers which sequence numbers
it has in flight and passes them in, so they are not read twice.

Writes and the store's single writer connection
-----------------------------------------------
The store has one writer connection, and :meth:`Store.fetchall` runs on it, interleaved
with the group committer's ``BEGIN IMMEDIATE … COMMIT`` (each of its statements is a separate
call on that connection). An explicit ``BEGIN``/``COMMIT`` issued through ``fetchall`` could
therefore land *inside* the committer's transaction (ours fails: "cannot start a transaction
within a transaction"), or hold a transaction open while the committer's ``BEGIN IMMEDIATE``
fails, which stops the committer. So every write here is **one self-contained statement**
in autocommit mode, and multi-step changes are ordered so that any prefix is safe:

* acknowledge: one ``DELETE … RETURNING``.
* quarantine: ``INSERT OR IGNORE`` into the quarantine, then ``DELETE`` only the outbox rows
  that *are* in the quarantine (checked in the same statement). If a statement happens to
  run inside the committer's transaction and that transaction is rolled back (disk full),
  the worst outcome is a row that stays in the outbox and is sent again: the warehouse
  dedupes on ``(gateway, seq)``. Reading skips quarantined rows as well.
* requeue (an operator's ``lineside dead-letter requeue``): the mirror image. ``INSERT OR
  IGNORE`` the rows back into the outbox, then ``DELETE`` only the quarantine rows that *are*
  in the outbox. A row found in both is still quarantined (reading skips it) until the
  second statement runs, so a prefix never sends a record the operator did not release.

The quarantine table is part of the store's schema (:data:`gateway.schema.MIGRATIONS`). While
it holds rows, a ``sync_quarantined`` alert stands: raised when records are quarantined,
raised again at every start (:func:`quarantine_alert_at_start`), cleared only when the
quarantine is empty (:func:`quarantine_cleared_alerts`).

Reads on the writer connection can see a committer's batch before its ``COMMIT``; if that
batch is then rolled back (disk full), the records were sent under sequence numbers that
are never reused (:mod:`gateway.sequence`), and are stored again under new ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import StoreError
from gateway.records import AlertRecord, Severity
from gateway.schema import RECORD_TABLES
from gateway.store import Store
from sync.protocol import MAX_BATCH_BYTES, Batch, seq_ranges

log = logging.getLogger(__name__)

QUARANTINE_RULE = "sync_quarantined"
"""The rule of every alert about quarantined records."""

QUARANTINE_ALERT_ID = "sync.quarantine"
"""The standing alert raised at start while the quarantine holds records."""

_STREAM_PRIORITY: dict[str, int] = {t.table: int(t.priority) for t in RECORD_TABLES.values()}

_COLUMNS: dict[str, tuple[str, ...]] = {t.table: t.columns for t in RECORD_TABLES.values()}
"""Record columns (without ``seq``) per stream; also the whitelist of table names."""

SCAN_FACTOR = 8
"""A batch is gathered from at most ``SCAN_FACTOR * max_records`` (+ in flight) rows of its
priority class from the head on, so a rare stream behind a huge backlog of another stream of
the same class costs a bounded scan (it then goes in a smaller batch)."""

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

_WIRE_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
"""``json.dumps`` with the wire options, made once (it sizes every record read)."""


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """One row of the outbox quarantine."""

    seq: int
    stream: str
    reason: str
    ts_us: int
    """When it was quarantined (wall clock)."""


def _quarantined(row: Sequence[Any]) -> QuarantinedRecord:
    seq, stream, reason, ts_us = row
    return QuarantinedRecord(int(seq), str(stream), str(reason or ""), int(ts_us or 0))


def batch_seqs(batch: Batch) -> tuple[int, ...]:
    """A batch's sequence numbers, in order."""
    return tuple(seq for seq, _ in batch.records)


class Outbox:
    """Batches of unsent records from the store's outbox, alerts first."""

    def __init__(self, store: Store, *, gateway: str, site: str) -> None:
        self.store = store
        self.gateway = gateway
        self.site = site

    async def next_batch(
        self,
        max_records: int,
        max_bytes: int,
        *,
        exclude: Collection[int] = (),
        max_priority: int | None = None,
    ) -> Batch | None:
        """The oldest records of the most urgent stream that are not in ``exclude``.

        Picks the outbox row first in (priority, seq) order that is not excluded, then up to
        ``max_records`` records of that row's stream in seq order, cut so their JSON stays
        within ``max_bytes`` (a single larger record still goes alone, up to the protocol's
        limit; beyond it, it is quarantined). ``max_priority`` restricts the choice to urgent
        classes (0 = alerts only), for a slot reserved for them. ``None`` when nothing is due.
        """
        if max_records < 1 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be positive")
        excluded = json.dumps(sorted(exclude))
        while True:
            head = await self.store.fetchall(
                f"SELECT o.seq, o.stream, o.priority FROM outbox o WHERE {_NOT_IN_FLIGHT} "  # noqa: S608
                "ORDER BY o.priority, o.seq LIMIT 1",
                (excluded,),
            )
            if not head:
                return None
            first, stream, priority = int(head[0][0]), str(head[0][1]), int(head[0][2])
            if max_priority is not None and priority > max_priority:
                return None
            span = (priority, first, SCAN_FACTOR * max_records + len(exclude))
            columns = _COLUMNS.get(stream)
            if columns is None:
                seqs = await self._seqs_of_stream(stream, span, excluded, max_records)
                await self.quarantine(seqs, f"unknown stream {stream!r}")
                continue
            result = await self._read(
                stream=stream,
                columns=columns,
                span=span,
                excluded=excluded,
                max_records=max_records,
                max_bytes=max_bytes,
            )
            if result is not None:
                return result
            # Every record read was unusable and has been quarantined: look again.

    async def _seqs_of_stream(
        self, stream: str, span: tuple[int, int, int], excluded: str, limit: int
    ) -> list[int]:
        rows = await self.store.fetchall(
            f"SELECT o.seq FROM {_SPAN} o WHERE o.stream = ? AND {_NOT_IN_FLIGHT} "  # noqa: S608
            "ORDER BY o.seq LIMIT ?",
            (*span, stream, excluded, limit),
        )
        return [int(row[0]) for row in rows]

    async def _read(
        self,
        *,
        stream: str,
        columns: tuple[str, ...],
        span: tuple[int, int, int],
        excluded: str,
        max_records: int,
        max_bytes: int,
    ) -> Batch | None:
        # The table and column names come from RECORD_TABLES, never from the database.
        selected = ", ".join(f"t.{name}" for name in columns)
        priority, first, limit = span
        rows = await self.store.fetchall(
            f"SELECT o.seq, t.seq IS NOT NULL, {selected} FROM outbox o "  # noqa: S608
            f"LEFT JOIN {stream} t ON t.seq = o.seq "
            f"WHERE {_IN_SPAN} AND o.stream = ? AND {_NOT_IN_FLIGHT} ORDER BY o.seq LIMIT ?",
            (priority, first, priority, first, limit - 1, stream, excluded, max_records),
        )
        entries: list[tuple[int, dict[str, Any] | None]] = []
        for row in rows:
            if not row[1]:
                entries.append((int(row[0]), None))  # the record row is missing
                continue
            values = row[2:]
            data: dict[str, Any] = dict(zip(columns, values, strict=True))
            if bytes in set(map(type, values)):  # a BLOB (a scanner's raw read) goes as hex
                data = {name: _wire_value(value) for name, value in data.items()}
            entries.append((int(row[0]), data))
        refused: dict[str, list[int]] = {}
        records = _all_if_they_fit(entries, max_bytes, refused)
        if records is None:
            records = []
            size = 0
            for seq, entry in entries:
                if entry is None:
                    refused.setdefault("record row missing", []).append(seq)
                    continue
                try:
                    # Same rules as encode_batch: a non-finite number never leaves the gateway.
                    length = len(_WIRE_JSON.encode(entry)) + 20
                except ValueError as exc:
                    refused.setdefault(f"not encodable: {exc}", []).append(seq)
                    continue
                if length > MAX_BATCH_BYTES:
                    refused.setdefault(f"record larger than {MAX_BATCH_BYTES} bytes", []).append(
                        seq
                    )
                    continue
                if records and size + length > max_bytes:
                    break
                records.append((seq, entry))
                size += length
        for reason, seqs in refused.items():
            log.error("outbox: quarantining %d %s records: %s", len(seqs), stream, reason)
            await self.quarantine(seqs, reason)
        if not records:
            return None
        return Batch(gateway=self.gateway, site=self.site, stream=stream, records=tuple(records))

    async def acknowledge(self, seqs: Iterable[int]) -> int:
        """Delete the outbox rows of records the warehouse has committed; how many went.

        Only an end-to-end acknowledgement may call this (never a PUBACK). Unknown or
        already deleted sequence numbers are ignored, so a duplicate ack is harmless.
        """
        wanted = sorted({int(s) for s in seqs})
        if not wanted:
            return 0
        rows = await self.store.fetchall(
            "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) RETURNING seq",
            (json.dumps(wanted),),
        )
        return len(rows)

    async def quarantine(self, seqs: Iterable[int], reason: str) -> int:
        """Move refused records out of the outbox into ``outbox_quarantine``; how many moved.

        The record rows themselves stay in their tables; the quarantine keeps the reason so
        an operator can inspect and re-queue them.
        """
        wanted = sorted({int(s) for s in seqs})
        if not wanted:
            return 0
        encoded = json.dumps(wanted)
        await self.store.fetchall(
            "INSERT OR IGNORE INTO outbox_quarantine (seq, stream, reason, ts_us) "
            "SELECT seq, stream, ?, ? FROM outbox WHERE seq IN (SELECT value FROM json_each(?))",
            (reason, self.store.clock.wall_us(), encoded),
        )
        rows = await self.store.fetchall(
            "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) "
            "AND seq IN (SELECT seq FROM outbox_quarantine) RETURNING seq",
            (encoded,),
        )
        return len(rows)

    async def quarantined(self) -> list[tuple[int, str, str]]:
        """``(seq, stream, reason)`` of every quarantined record, in seq order."""
        rows = await self.store.fetchall(
            "SELECT seq, stream, reason FROM outbox_quarantine ORDER BY seq"
        )
        return [(int(seq), str(stream), str(reason)) for seq, stream, reason in rows]

    async def quarantine_count(self) -> int:
        """How many records wait in the quarantine."""
        rows = await self.store.fetchall("SELECT count(*) FROM outbox_quarantine")
        return int(rows[0][0])

    async def quarantine_page(
        self, *, after: int = 0, limit: int = 1000
    ) -> list[QuarantinedRecord]:
        """Up to ``limit`` quarantined records with a sequence number above ``after``."""
        rows = await self.store.fetchall(
            "SELECT seq, stream, reason, ts_us FROM outbox_quarantine WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [_quarantined(row) for row in rows]

    async def quarantined_record(
        self, seq: int
    ) -> tuple[QuarantinedRecord, dict[str, Any] | None] | None:
        """A quarantined record and its stored data (``None`` when the row is gone, e.g.
        evicted telemetry); ``None`` when ``seq`` is not in the quarantine."""
        rows = await self.store.fetchall(
            "SELECT seq, stream, reason, ts_us FROM outbox_quarantine WHERE seq = ?", (seq,)
        )
        if not rows:
            return None
        entry = _quarantined(rows[0])
        columns = _COLUMNS.get(entry.stream)
        if columns is None:
            return entry, None
        # The table and column names come from RECORD_TABLES, never from the database.
        found = await self.store.fetchall(
            f"SELECT {', '.join(columns)} FROM {entry.stream} WHERE seq = ?",  # noqa: S608
            (seq,),
        )
        if not found:
            return entry, None
        return entry, {name: _wire_value(v) for name, v in zip(columns, found[0], strict=True)}

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

    async def requeue(
        self, seqs: Iterable[int]
    ) -> tuple[list[QuarantinedRecord], dict[str, list[int]]]:
        """Move quarantined records back into the outbox, to be sent again.

        Returns the quarantine entries moved and, by reason, the sequence numbers that could
        not be: not in the quarantine, of a stream this gateway does not know, or whose
        record row is gone (evicted telemetry).
        """
        wanted = sorted({int(s) for s in seqs})
        refused: dict[str, list[int]] = {}
        if not wanted:
            return [], refused
        encoded = json.dumps(wanted)
        entries = {
            entry.seq: entry
            for entry in map(
                _quarantined,
                await self.store.fetchall(
                    "SELECT seq, stream, reason, ts_us FROM outbox_quarantine "
                    "WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
                    (encoded,),
                ),
            )
        }
        missing = [seq for seq in wanted if seq not in entries]
        if missing:
            refused["not in the quarantine"] = missing
        by_stream: dict[str, list[int]] = {}
        for entry in entries.values():
            by_stream.setdefault(entry.stream, []).append(entry.seq)
        now = self.store.clock.wall_us()
        for stream, stream_seqs in by_stream.items():
            priority = _STREAM_PRIORITY.get(stream)
            if priority is None:
                refused[f"unknown stream {stream!r}"] = stream_seqs
                continue
            # Only records whose row still exists go back: an evicted one cannot be sent.
            await self.store.fetchall(
                "INSERT OR IGNORE INTO outbox (seq, stream, priority, enqueued_us) "  # noqa: S608
                "SELECT q.seq, q.stream, ?, ? FROM outbox_quarantine q "
                "WHERE q.seq IN (SELECT value FROM json_each(?)) "
                f"AND q.seq IN (SELECT seq FROM {stream})",  # a table of RECORD_TABLES
                (priority, now, json.dumps(stream_seqs)),
            )
        rows = await self.store.fetchall(
            "DELETE FROM outbox_quarantine WHERE seq IN (SELECT value FROM json_each(?)) "
            "AND seq IN (SELECT seq FROM outbox) RETURNING seq",
            (encoded,),
        )
        moved = sorted(int(row[0]) for row in rows)
        left = set(entries) - set(moved)
        for stream_seqs in refused.values():
            left -= set(stream_seqs)
        if left:
            refused["record row missing (evicted or never stored)"] = sorted(left)
        return [entries[seq] for seq in moved], refused

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


def _all_if_they_fit(
    entries: Sequence[tuple[int, dict[str, Any] | None]],
    max_bytes: int,
    refused: dict[str, list[int]],
) -> list[tuple[int, Mapping[str, Any]]] | None:
    """Every record, when all encode and fit in ``max_bytes`` together (the usual case),
    sized with one encoder call for them all; ``None`` when each must be looked at.

    The same answer as sizing them one by one: a list's JSON is its items' JSON joined by
    commas in brackets, so the sum of the items' lengths is the list's length less
    ``len + 1``. Missing record rows are refused here as they would be there.
    """
    present = [data for _, data in entries if data is not None]
    if not present:
        return None
    try:
        lengths = len(_WIRE_JSON.encode(present)) - 1 - len(present)
    except ValueError:
        return None  # one of them is not encodable: found and refused one by one
    total = lengths + 20 * len(present)
    if total > max_bytes or total > MAX_BATCH_BYTES:
        return None
    for seq, data in entries:
        if data is None:
            refused.setdefault("record row missing", []).append(seq)
    return [(seq, data) for seq, data in entries if data is not None]


def _wire_value(value: object) -> object:
    """A column value as JSON: BLOBs (raw scanner bytes) as hex."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def only_quarantine_alerts(batch: Batch) -> bool:
    """Whether a batch holds nothing but alerts about quarantined records.

    Such a batch is quarantined without a new alert: an alert about refused sync alerts
    would be refused again, a chain reaction.
    """
    return batch.stream == "alerts" and all(
        data.get("rule") == QUARANTINE_RULE for _, data in batch.records
    )


async def quarantine_with_alert(
    outbox: Outbox, batch_id: str, stream: str, seqs: Sequence[int], reason: str, *, alert: bool
) -> int:
    """Move refused records out of the send queue with their reason, log it, and (unless
    ``alert`` is False) raise a ``sync_quarantined`` alert; returns how many moved."""
    moved = await outbox.quarantine(seqs, reason)
    ranges = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in seq_ranges(seqs))
    log.error("sync: %d %s records quarantined (%s): %s", moved, stream, ranges, reason)
    if not alert:
        return moved
    record = AlertRecord(
        ts_us=outbox.store.clock.wall_us(),
        alert_id=f"sync.quarantined.{batch_id}",
        rule=QUARANTINE_RULE,
        subject=batch_id,
        severity=Severity.MAJOR,
        state="raised",
        message=f"{len(seqs)} {stream} records refused and quarantined: {reason}",
        detail={"stream": stream, "seqs": ranges, "reason": reason, "batch_id": batch_id},
    )
    try:
        outbox.store.submit(record)
    except StoreError as exc:
        log.error("sync: cannot store the quarantine alert: %s", exc)
    return moved


_ACTIVE_QUARANTINE_ALERTS = """
SELECT alert_id, subject, severity, line FROM alerts a
WHERE rule = ? AND state IN ('raised', 'updated') AND seq = (
    SELECT max(seq) FROM alerts b WHERE b.alert_id = a.alert_id
    AND b.state IN ('raised', 'updated', 'cleared'))
ORDER BY seq
"""
"""Alerts about quarantined records whose newest raise/update/clear is not a clear."""


async def quarantine_alert_at_start(outbox: Outbox) -> AlertRecord | None:
    """The standing ``sync_quarantined`` alert when the quarantine holds records.

    A restart clears the alerts of other sources (the rules engine judges them again); records
    in the quarantine wait for an operator whatever the restart, so the alert is raised
    again at every start until ``lineside dead-letter requeue`` empties it.
    """
    rows = await outbox.store.fetchall(
        "SELECT stream, count(*), min(seq), max(seq) FROM outbox_quarantine GROUP BY stream "
        "ORDER BY stream"
    )
    if not rows:
        return None
    total = sum(int(n) for _, n, _, _ in rows)
    streams = {str(stream): int(n) for stream, n, _, _ in rows}
    message = (
        f"{total} records wait in the sync quarantine (refused, never sent): "
        "`lineside dead-letter list` shows them, `requeue` sends them again"
    )
    log.error("sync: %s (%s)", message, ", ".join(f"{n} {s}" for s, n in streams.items()))
    return AlertRecord(
        ts_us=outbox.store.clock.wall_us(),
        alert_id=QUARANTINE_ALERT_ID,
        rule=QUARANTINE_RULE,
        subject="outbox",
        severity=Severity.MAJOR,
        state="raised",
        message=message,
        detail={
            "records": total,
            "streams": streams,
            "first_seq": min(int(first) for _, _, first, _ in rows),
            "last_seq": max(int(last) for _, _, _, last in rows),
        },
    )


async def quarantine_cleared_alerts(outbox: Outbox, why: str) -> list[AlertRecord]:
    """A ``cleared`` transition for every ``sync_quarantined`` alert still standing, when
    the quarantine is empty; nothing while it holds records."""
    if await outbox.quarantine_count():
        return []
    now = outbox.store.clock.wall_us()
    return [
        AlertRecord(
            ts_us=now,
            alert_id=str(alert_id),
            rule=QUARANTINE_RULE,
            subject=str(subject),
            severity=Severity(str(severity)),
            state="cleared",
            message=why,
            line=line,
        )
        for alert_id, subject, severity, line in await outbox.store.fetchall(
            _ACTIVE_QUARANTINE_ALERTS, (QUARANTINE_RULE,)
        )
    ]
