"""The sync side of the outbox: batches of unsent records by priority, and the alerts about
records refused into the quarantine.

The statements on the ``outbox`` and ``outbox_quarantine`` tables are the store's
(:class:`gateway.store.outbox.OutboxTable`, which also says how they meet the group
committer); :class:`Outbox` adds what the uplinks need: cutting the records of one stream
into a :class:`~sync.protocol.Batch` that fits the protocol's limits, and quarantining what
can never be sent. Nothing here keeps a backlog in memory; the uplink only remembers which
sequence numbers it has in flight and passes them in, so they are not read twice.

While the quarantine holds rows, a ``sync_quarantined`` alert stands: raised when records
are quarantined, raised again at every start (:func:`quarantine_alert_at_start`), cleared
only when the quarantine is empty (:func:`quarantine_cleared_alerts`).

Reads wait for the store's commit lock, so a batch never holds records of a transaction that
may still roll back (:meth:`gateway.store.Store.fetchall`).
"""

from __future__ import annotations

import bisect
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from gateway.core.errors import StoreError
from gateway.core.records import AlertRecord, Severity
from gateway.store import Store
from gateway.store.outbox import STREAM_COLUMNS, OutboxTable, Span
from sync.canonical import canonical_json
from sync.protocol import (
    BACKLOG_AT_MAX_US,
    MAX_BATCH_BYTES,
    Batch,
    seq_ranges,
    wire_bytes,
    wire_records,
)

log = logging.getLogger(__name__)

QUARANTINE_RULE = "sync_quarantined"
"""The rule of every alert about quarantined records."""

QUARANTINE_ALERT_ID = "sync.quarantine"
"""The standing alert raised at start while the quarantine holds records."""

SCAN_FACTOR = 8
"""A batch is gathered from at most ``SCAN_FACTOR * max_records`` (+ in flight) rows of its
priority class from the head on, so a rare stream behind a huge backlog of another stream of
the same class costs a bounded scan (it then goes in a smaller batch)."""

BACKLOG_REFRESH_S = 1.0
"""The outbox depth a batch reports is counted at most once in this many seconds: a
``count(*)`` per batch would cost the drain most when the backlog is largest."""


def batch_seqs(batch: Batch) -> tuple[int, ...]:
    """A batch's sequence numbers, in order."""
    return tuple(seq for seq, _ in batch.records)


class Outbox(OutboxTable):
    """Batches of unsent records from the store's outbox, alerts first."""

    def __init__(
        self, store: Store, *, gateway: str, site: str, report_backlog: bool = False
    ) -> None:
        super().__init__(store)
        self.gateway = gateway
        self.site = site
        self.report_backlog = report_backlog
        """Whether batches carry the outbox depth (the ingest must know the fields)."""
        self._backlog: tuple[float, int, int] | None = None
        """(monotonic time counted, depth, wall clock µs then), reused for a second."""

    async def backlog(self) -> tuple[int, int]:
        """The outbox depth and the wall clock (µs) when it was counted, counted again only
        when the last count is :data:`BACKLOG_REFRESH_S` old."""
        now = self.store.clock.monotonic()
        cached = self._backlog
        if cached is None or now - cached[0] >= BACKLOG_REFRESH_S or now < cached[0]:
            cached = (now, await self.depth(), self.store.clock.wall_us())
            self._backlog = cached
        return cached[1], cached[2]

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
        in_flight = sorted(exclude)
        excluded = json.dumps(in_flight)
        while True:
            head = await self.head(excluded)
            if head is None:
                return None
            first, stream, priority = head
            if max_priority is not None and priority > max_priority:
                return None
            span: Span = (priority, first, SCAN_FACTOR * max_records + len(exclude))
            # The span starts at the head, so only the sequence numbers in flight from there
            # on can be among its rows: the usual window (the oldest records in flight, the
            # head just after them) passes none, instead of SQLite building its exclusion
            # list from thousands of numbers once more for this read.
            after_head = json.dumps(in_flight[bisect.bisect_left(in_flight, first) :])
            if stream not in STREAM_COLUMNS:
                seqs = await self.stream_seqs(stream, span, after_head, max_records)
                await self.quarantine(seqs, f"unknown stream {stream!r}")
                continue
            entries = await self.read(stream, span, after_head, max_records)
            result = await self._batch(stream, entries, max_bytes)
            if result is not None:
                return result
            # Every record read was unusable and has been quarantined: look again.

    async def _batch(
        self, stream: str, entries: Sequence[tuple[int, dict[str, Any] | None]], max_bytes: int
    ) -> Batch | None:
        """The records that fit in ``max_bytes`` as a batch, the unusable ones quarantined;
        ``None`` when none is left."""
        refused: dict[str, list[int]] = {}
        wire = None
        fitting = _all_if_they_fit(entries, max_bytes, refused)
        if fitting is not None:
            records, wire = fitting
        else:
            records = []
            size = 0
            for seq, entry in entries:
                if entry is None:
                    refused.setdefault("record row missing", []).append(seq)
                    continue
                try:
                    # Same rules as encode_batch: a non-finite number never leaves the gateway.
                    length = wire_bytes(canonical_json(entry)) + 20
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
        batch = Batch(
            gateway=self.gateway,
            site=self.site,
            stream=stream,
            records=tuple(records),
            wire_records=wire,
        )
        if not self.report_backlog:
            return batch
        depth, at_us = await self.backlog()
        if not 0 <= at_us <= BACKLOG_AT_MAX_US:
            return batch  # a clock the protocol cannot carry: the records go, the figure not
        # Counted before this cut at most a second ago: never fewer than this batch holds.
        return replace(batch, backlog=max(depth, len(records)), backlog_at_us=at_us)


def _all_if_they_fit(
    entries: Sequence[tuple[int, dict[str, Any] | None]],
    max_bytes: int,
    refused: dict[str, list[int]],
) -> tuple[list[tuple[int, Mapping[str, Any]]], str] | None:
    """Every record and their wire text (:func:`~sync.protocol.wire_records`), when all
    encode and fit in ``max_bytes`` together (the usual case): sized with the one encoder
    call whose text the batch is then sent with. ``None`` when each must be looked at.

    The same answer as sizing them one by one (each record's ``data`` JSON bytes + 20): the
    wire text is the items ``{"data":D,"seq":N}`` joined by commas in brackets, so the data's
    lengths sum to its length less the brackets, the commas and each item's wrapping. Missing
    record rows are refused here as they would be there.
    """
    records: list[tuple[int, Mapping[str, Any]]] = [
        (seq, data) for seq, data in entries if data is not None
    ]
    if not records:
        return None
    try:
        wire = wire_records(records)
    except ValueError:
        return None  # one of them is not encodable: found and refused one by one
    wrapping = sum(_ITEM_WRAPPING + len(str(seq)) for seq, _ in records)
    lengths = wire_bytes(wire) - 2 - (len(records) - 1) - wrapping
    total = lengths + 20 * len(records)
    if total > max_bytes or total > MAX_BATCH_BYTES:
        return None
    for seq, data in entries:
        if data is None:
            refused.setdefault("record row missing", []).append(seq)
    return records, wire


_ITEM_WRAPPING = len('{"data":,"seq":}')
"""The characters of a record's wire item besides its seq digits and its data."""


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


async def quarantine_alert_at_start(outbox: Outbox) -> AlertRecord | None:
    """The standing ``sync_quarantined`` alert when the quarantine holds records.

    A restart clears the alerts of other sources (the rules engine judges them again); records
    in the quarantine wait for an operator whatever the restart, so the alert is raised
    again at every start until ``lineside dead-letter requeue`` empties it.
    """
    rows = await outbox.quarantine_by_stream()
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
        for alert_id, subject, severity, line in await outbox.standing_alerts(QUARANTINE_RULE)
    ]
