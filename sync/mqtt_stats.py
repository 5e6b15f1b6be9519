"""The MQTT uplink's counters: the shared names of :class:`sync.uplink.UplinkCounters` and
its own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class UplinkStats:
    """Counters for metrics and the TUI (the shared names of :class:`sync.uplink.UplinkCounters`
    and the MQTT uplink's own)."""

    connect_attempts: int = 0
    connects: int = 0
    disconnects: int = 0
    batches_sent: int = 0
    batches_resent: int = 0
    batches_pubacked: int = 0
    """Batches the broker took (PUBACK < 0x80): nothing is deleted for that."""
    records_acked: int = 0
    records_quarantined: int = 0
    puback_failures: int = 0
    bad_acks: int = 0
    unauthenticated_acks: int = 0
    """Acks refused because their signature is missing or wrong (an ack key is configured)."""
    sessions_taken_over: int = 0
    """Disconnects because another client connected with this gateway's client id (0x8E)."""
    liveness_probes: int = 0
    hung_broker: int = 0
    """Connections dropped because the broker said nothing for a whole keep-alive."""
    andon_published: int = 0
    alerts_published: int = 0
    """Alert transitions the broker PUBACKed (a repeat after a reconnect counts again)."""
    last_error: str = ""


__all__ = ["UplinkStats"]
