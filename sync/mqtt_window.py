"""The MQTT uplink's window: the batches published and not acknowledged by the warehouse.

A batch leaves the outbox only when the warehouse's ack lists its records as committed; a
PUBACK only means the broker has it (docs/reference/reliability.md §0.1, §3.1). Until the
ack comes the batch stays here and is published again, as the same bytes with the same
``batch_id``, after ``ack_timeout_s`` (doubling per attempt, capped) and after every
reconnect; the warehouse dedupes on ``(gateway, seq)``. Batches are taken alerts →
compliance → telemetry, and ``alert_slots`` slots beyond the window are kept for alerts, so
a new alert is not starved by a backlog replay (docs/reference/reliability.md §7 rows 19, 22).
How big the batches are and how many are in flight follows the link
(:class:`sync.delivery_pace.DeliveryPace`): ``size``, ``max_records`` and ``max_bytes`` are
the ceilings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from sync.alert_feed import QUOTA_EXCEEDED
from sync.delivery_pace import DeliveryPace
from sync.mqtt_client import Connection
from sync.mqtt_stats import UplinkStats
from sync.outbox import Outbox, batch_seqs, only_quarantine_alerts, quarantine_with_alert
from sync.paho_codes import describe_rc, seq_text
from sync.protocol import Ack, Batch, data_topic, encode_batch

# The uplink's logger: operators and their log filters know its messages by this name.
log = logging.getLogger("sync.mqtt_uplink")
PACKET_HEADER = 64
"""A PUBLISH packet's bytes besides its payload and topic: fixed header, topic length,
packet id and properties, with room to spare."""
PACKET_MARGIN = 4096
"""Bytes of a batch's records kept under the broker's packet limit: room for the batch's
envelope, the header, and zlib's few bytes of growth on data that does not compress."""


@dataclass(slots=True)
class InFlight:
    """One batch published and not acknowledged yet."""

    batch: Batch
    payload: bytes
    topic: str
    attempts: int = 0
    generation: int = 0
    """The connection it was last published on."""
    deadline: float = 0.0
    """Monotonic time to publish again if no ack has come."""
    first_sent: float = 0.0
    """Monotonic time of the first publish: the acknowledgement latency counts from here."""
    full: bool = False
    """Cut at the pace's limits: the outbox had more waiting."""

    @property
    def seqs(self) -> tuple[int, ...]:
        return batch_seqs(self.batch)


@dataclass(frozen=True, slots=True)
class WindowSettings:
    """How many batches, how big, and how long to wait for their acks."""

    site: str
    gateway: str
    size: int
    """Most batches in flight (besides the alert slots)."""
    alert_slots: int
    max_records: int
    """Most records in a batch."""
    max_bytes: int
    """Most bytes of JSON records in a batch."""
    ack_timeout_s: float
    ack_timeout_max_s: float
    poll_interval_s: float


class BatchWindow:
    """Takes batches from the outbox, publishes them, and settles them on acks."""

    def __init__(self, outbox: Outbox, stats: UplinkStats, settings: WindowSettings) -> None:
        self.outbox = outbox
        self.stats = stats
        self.settings = settings
        self.entries: dict[str, InFlight] = {}
        self.seqs: set[int] = set()
        """Every record in flight: the outbox does not hand them out again."""
        self.next_poll = 0.0
        """Monotonic time to look at the outbox again."""
        self.ack_observers: list[Callable[[float], None]] = []
        """Called with the seconds from a batch's first publish to the warehouse's ack."""
        self.max_packet: int | None = None
        """The broker's Maximum Packet Size, if its CONNACK gave one."""
        # An ack within a quarter of the ack timeout leaves room for the queue ahead of a
        # batch to double before anything is sent again for want of an ack.
        self.pace = DeliveryPace(
            max_records=settings.max_records,
            max_bytes=settings.max_bytes,
            max_window=settings.size,
            target_s=settings.ack_timeout_s / 4,
        )

    def __len__(self) -> int:
        return len(self.entries)

    def limit_packet(self, max_packet: int | None) -> None:
        """The broker's Maximum Packet Size from its CONNACK (None: it announced none).

        Batches are cut to fit: the pace's byte ceiling drops below the limit (a compressed
        body is never much larger than its JSON). A batch in flight that does not fit is
        given back to the outbox at :meth:`rearm`, to be cut again smaller.
        """
        self.max_packet = max_packet
        if max_packet is None:
            return
        ceiling = self.pace.ceiling
        room = max(1024, max_packet - PACKET_MARGIN)
        if room < ceiling.bytes:
            log.warning(
                "uplink: the broker takes packets of at most %d bytes; batches of at most %d "
                "bytes of records from now on (batch_bytes %d)",
                max_packet,
                room,
                ceiling.bytes,
            )
            self.pace.lower_ceiling(ceiling.records, room)

    def _fits(self, entry: InFlight) -> bool:
        limit = self.max_packet
        return limit is None or len(entry.payload) + len(entry.topic) + PACKET_HEADER <= limit

    def rearm(self, now: float) -> None:
        """A new connection: whatever was in flight may have died with the last one."""
        for entry in list(self.entries.values()):
            if not self._fits(entry):
                # Cut before the broker said its limit: sent as it is, it would end the
                # connection again. Its records are still in the outbox.
                log.warning(
                    "uplink: batch %s (%d bytes) is above the broker's packet limit; its "
                    "records go again in smaller batches",
                    entry.batch.batch_id,
                    len(entry.payload),
                )
                self.entries.pop(entry.batch.batch_id, None)
                self.seqs.difference_update(entry.seqs)
                continue
            entry.deadline = now
        self.next_poll = now

    def deadlines(self) -> list[float]:
        """When the window needs attention next (each batch's resend, the next poll)."""
        return [self.next_poll, *(entry.deadline for entry in self.entries.values())]

    def resend_due(self, conn: Connection, now: float) -> bool:
        """Publish again the batches whose ack is overdue. True if one of them was sent on
        this connection: connected all along, yet the ingest has not answered."""
        overdue_here = False
        for entry in [e for e in self.entries.values() if e.deadline <= now]:
            overdue_here = overdue_here or entry.generation == conn.generation
            if entry.generation == conn.generation:
                self.pace.overdue()
            log.info(
                "uplink: no ack for %s after %d attempts, publishing again",
                entry.batch.batch_id,
                entry.attempts,
            )
            self.send(conn, entry)
        return overdue_here

    async def fill(self, conn: Connection) -> None:
        """Publish new batches while the window (and, for alerts, the reserved slots) has room."""
        if time.monotonic() < self.next_poll:
            return
        while conn.ready:
            pace = self.pace.limits
            if len(self.entries) >= pace.window + self.settings.alert_slots:
                return
            # Past the normal window, only alerts may use the reserved slots.
            urgent_only = len(self.entries) >= pace.window
            batch = await self.outbox.next_batch(
                pace.records,
                pace.bytes,
                exclude=self.seqs,
                max_priority=0 if urgent_only else None,
            )
            if batch is None:
                self.next_poll = time.monotonic() + self.settings.poll_interval_s
                return
            try:
                payload = encode_batch(batch)
            except ValueError as exc:  # the outbox checks this; defence in depth
                await self.refuse(batch, f"not encodable: {exc}")
                continue
            topic = data_topic(self.settings.site, self.settings.gateway, batch.stream)
            entry = InFlight(batch, payload, topic)
            if not self._fits(entry):
                if len(batch.records) == 1:
                    await self.refuse(
                        batch, f"{len(payload)} bytes, above the broker's packet limit"
                    )
                    continue
                # Rarely: the records compressed worse than the margin allows. Smaller
                # batches from now on; these records stay in the outbox for the next cut.
                self.pace.lower_ceiling(len(batch.records) // 2, self.pace.limits.bytes // 2)
                continue
            entry.full = self.pace.is_full(batch)
            self.entries[batch.batch_id] = entry
            self.seqs.update(entry.seqs)
            self.send(conn, entry)

    def send(self, conn: Connection, entry: InFlight) -> None:
        """Publish one batch (again) and set when to publish it again without an ack."""
        now = time.monotonic()
        entry.attempts += 1
        entry.generation = conn.generation
        if entry.attempts == 1:
            entry.first_sent = now
        entry.deadline = now + self._ack_timeout(entry.attempts - 1)
        info = conn.client.publish(entry.topic, entry.payload, qos=1)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            conn.sent[info.mid] = entry.batch.batch_id
        else:
            # Queue full or connection gone: not sent; try again later, never in a hot loop.
            log.warning(
                "uplink: batch %s (%d %s records, seq %s, to %s) not accepted by paho, "
                "kept in the store and sent again: %s",
                entry.batch.batch_id,
                len(entry.seqs),
                entry.batch.stream,
                seq_text(entry.seqs),
                entry.topic,
                describe_rc(info.rc),
            )
            entry.deadline = now + min(self.settings.ack_timeout_s, 1.0)
        if entry.attempts == 1:
            self.stats.batches_sent += 1
        else:
            self.stats.batches_resent += 1

    async def on_puback(self, conn: Connection, mid: int, rc: ReasonCode) -> None:
        """The broker's PUBACK of a batch (or of a status or andon message)."""
        if mid not in conn.sent:
            return
        batch_id = conn.sent.pop(mid)
        topic = conn.other_topics.pop(mid, None)
        if not rc.is_failure:
            if batch_id is not None:
                self.stats.batches_pubacked += 1
            return  # the broker has it; only the ingest's ack deletes anything
        self.stats.puback_failures += 1
        entry = self.entries.get(batch_id) if batch_id is not None else None
        if entry is None:
            what = f"batch {batch_id}" if batch_id is not None else f"the message to {topic}"
            log.error("uplink: broker refused %s (PUBACK %s)", what, rc)
            return
        if rc.value == QUOTA_EXCEEDED:
            # Temporary: publish again after a longer wait.
            delay = self._ack_timeout(entry.attempts)
            entry.deadline = time.monotonic() + delay
            log.warning("uplink: broker quota exceeded for %s, retry in %.1f s", batch_id, delay)
            return
        await self.refuse(entry.batch, f"PUBACK {rc.value:#04x} {rc} on {entry.topic}")

    def _ack_timeout(self, doublings: int) -> float:
        timeout: float = self.settings.ack_timeout_s * 2 ** min(doublings, 16)
        return min(timeout, self.settings.ack_timeout_max_s)

    async def settle(self, ack: Ack) -> bool:
        """Delete what the ack commits and quarantine its conflicts, for a batch in flight
        only and only that batch's records. False: not a batch in flight."""
        entry = self.entries.get(ack.batch_id)
        if entry is None:
            return False
        # Only what this batch carried: an ack never deletes records it did not cover.
        mine = set(entry.seqs)
        committed = [seq for seq in ack.committed if seq in mine]
        conflicts = [(seq, reason) for seq, reason in ack.conflicts if seq in mine]
        latency = time.monotonic() - entry.first_sent
        for observe in self.ack_observers:
            observe(latency)
        self.pace.acked(latency, full=entry.full)
        self.stats.records_acked += await self.outbox.acknowledge(committed)
        by_reason: dict[str, list[int]] = {}
        for seq, reason in conflicts:
            by_reason.setdefault(reason, []).append(seq)
        for reason, seqs in by_reason.items():
            await self._quarantine(ack.batch_id, entry.batch.stream, seqs, f"ingest: {reason}")
        # Out of the window only once its records are out of the outbox: whoever sees
        # nothing in flight also sees an outbox without them.
        self.entries.pop(ack.batch_id, None)
        self.seqs.difference_update(mine)
        self.next_poll = 0.0
        return True

    async def refuse(self, batch: Batch, reason: str) -> None:
        """The broker refused the batch for good: its records go to the quarantine."""
        seqs = batch_seqs(batch)
        self.entries.pop(batch.batch_id, None)
        self.seqs.difference_update(seqs)
        self.next_poll = 0.0
        await self._quarantine(
            batch.batch_id,
            batch.stream,
            list(seqs),
            reason,
            alert=not only_quarantine_alerts(batch),
        )

    async def _quarantine(
        self, batch_id: str, stream: str, seqs: Sequence[int], reason: str, *, alert: bool = True
    ) -> None:
        self.stats.records_quarantined += await quarantine_with_alert(
            self.outbox, batch_id, stream, seqs, reason, alert=alert
        )


__all__ = ["BatchWindow", "InFlight", "WindowSettings"]
