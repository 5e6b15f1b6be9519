"""The counts since the gateway started that the status snapshot does not carry, for the
metrics (:mod:`gateway.metrics`): the acknowledgement latency histogram and :class:`Counters`.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

ACK_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
"""Upper bounds of the acknowledgement latency histogram (seconds; +Inf is implied). From
a healthy round trip (well under a second) to an outage drained after half an hour."""


@dataclass(slots=True)
class LatencyHistogram:
    """Durations counted into fixed buckets: bounded memory however many are observed."""

    bounds: tuple[float, ...] = ACK_LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    """Observations per bucket (not cumulative); the last one is above every bound."""
    total: int = 0
    sum_s: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        """Count one duration."""
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += 1
        self.sum_s += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at or below it)`` pairs, ending with +Inf."""
        running, out = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(frozen=True, slots=True)
class Counters:
    """Counts since the gateway started that the snapshot does not carry (for metrics)."""

    rejected: dict[tuple[str, str], int]
    """Rejected device inputs per (device, reason)."""
    link_down: dict[str, int]
    """Outages per device (``link_down`` events)."""
    reconnects: dict[str, int]
    """Recoveries per device (``link_up`` events after an outage)."""
    alerts: dict[tuple[str, str], int]
    """Alerts in the book that still matter (active, or cleared but not acknowledged) per
    (severity, state)."""
    ack_latency: list[tuple[float, int]]
    """Cumulative acknowledgement latency buckets (see :meth:`LatencyHistogram.cumulative`)."""
    ack_latency_sum_s: float
    ack_latency_count: int
    records_acked: int
    """Records the warehouse acknowledged (deleted from the outbox)."""
    store_commits: int
    records_committed: int
    shed: dict[tuple[str, str], int] = field(default_factory=dict)
    """Device records shed under intake pressure per (device, kind) (:mod:`gateway.shedding`)."""
    records_quarantined: int = 0
    """Records the uplink moved to the outbox quarantine (refused by broker or ingest)."""
    batches_sent: int = 0
    """Batches the uplink sent for the first time."""
    batches_resent: int = 0
    """Batches the uplink sent again (no ack in time, a failed attempt, a reconnect)."""


__all__ = ["ACK_LATENCY_BUCKETS_S", "Counters", "LatencyHistogram"]
