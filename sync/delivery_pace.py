"""How big the uplink's batches are, and how many are in flight: they follow the link.

Fixed sizes cap delivery. With 500 records a batch and 4 batches in flight, each slot waits
for the warehouse's ack, the outbox delete, and the read and encode of its next batch, and a
gateway behind that cycle could not send more than about 7,000 records a second, however idle
the link and the warehouse were. Large fixed sizes cap the other way: on a slow link every
byte in flight is a byte an alert queues behind, and a batch that takes longer than the ack
timeout to cross is sent again and again (docs/architecture.md, "Delivery pace").

So the configured sizes are ceilings. The pace starts at sizes that suit a slow link and a
near-empty outbox (:data:`START_RECORDS`, :data:`START_BYTES`, :data:`START_WINDOW`, or the
ceilings when they are lower). A batch cut full (the outbox had more waiting) and
acknowledged within ``target_s`` means the link and the warehouse keep up: the pace takes one
step up, first doubling the batch, then widening the window by one. A slow ack takes two steps
back, an ack overdue (the batch was sent again) takes it back to the start. It never goes
below the start, so a slow link carries what it carried before the pace existed.

Pure: no clock, no I/O; the uplink passes the latency it measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.protocol import Batch

START_RECORDS = 500
START_BYTES = 256 * 1024
START_WINDOW = 4


@dataclass(frozen=True, slots=True)
class PaceLimits:
    """The next batch's size limits and how many batches may be in flight."""

    records: int
    bytes: int
    window: int


class DeliveryPace:
    """Batch size and window for the next batch, from how quickly full batches are acked."""

    def __init__(
        self, *, max_records: int, max_bytes: int, max_window: int, target_s: float
    ) -> None:
        if max_records < 1 or max_bytes < 1 or max_window < 1 or target_s <= 0:
            raise ValueError("max_records, max_bytes, max_window and target_s must be positive")
        self.target_s = target_s
        self._start = PaceLimits(
            min(START_RECORDS, max_records),
            min(START_BYTES, max_bytes),
            min(START_WINDOW, max_window),
        )
        self._ceiling = PaceLimits(max_records, max_bytes, max_window)
        self._steps = self._path()
        self._step = 0

    def _path(self) -> list[PaceLimits]:
        """Every pace from the start to the ceiling: the batch doubles, then the window grows."""
        path = [self._start]
        records, size, window = self._start.records, self._start.bytes, self._start.window
        while records < self._ceiling.records or size < self._ceiling.bytes:
            records = min(records * 2, self._ceiling.records)
            size = min(size * 2, self._ceiling.bytes)
            path.append(PaceLimits(records, size, window))
        while window < self._ceiling.window:
            window += 1
            path.append(PaceLimits(records, size, window))
        return path

    @property
    def limits(self) -> PaceLimits:
        return self._steps[self._step]

    @property
    def ceiling(self) -> PaceLimits:
        return self._ceiling

    def is_full(self, batch: Batch) -> bool:
        """Whether ``batch`` was cut at the limits, so the outbox had more waiting, rather
        than being all there was."""
        if batch.wire_records is None:
            return True  # the outbox cut it record by record: they did not all fit
        limits = self.limits
        return (
            len(batch.records) >= limits.records or len(batch.wire_records) * 4 >= limits.bytes * 3
        )

    def acked(self, latency_s: float, *, full: bool) -> None:
        """The warehouse acknowledged a batch ``latency_s`` after it was first sent."""
        if latency_s > self.target_s:
            self._step = max(0, self._step - 2)
        elif full:
            self._step = min(len(self._steps) - 1, self._step + 1)

    def overdue(self) -> None:
        """A batch's ack did not come within the ack timeout on a live connection."""
        self._step = 0

    def lower_ceiling(self, records: int, size: int) -> None:
        """The peer refused bodies this big (an HTTP 413), or announced a limit (a broker's
        Maximum Packet Size): nothing above from now on. Back to the start if it moved."""
        lowered = PaceLimits(
            max(1, min(records, self._ceiling.records)),
            max(1, min(size, self._ceiling.bytes)),
            self._ceiling.window,
        )
        if lowered == self._ceiling:
            return
        self._ceiling = lowered
        self._start = PaceLimits(
            min(self._start.records, self._ceiling.records),
            min(self._start.bytes, self._ceiling.bytes),
            self._start.window,
        )
        self._steps = self._path()
        self._step = 0


__all__ = ["START_BYTES", "START_RECORDS", "START_WINDOW", "DeliveryPace", "PaceLimits"]
