"""Which acks the MQTT uplink reads: well formed, for this gateway, and signed with its key
(or no key configured).

Signed acks (issue 18): with an ``ack_key`` (``[sync.mqtt] ack_key``) an ack is honoured
only when its HMAC-SHA256 signature (an MQTT 5 user property, :func:`sync.protocol.verify_ack`)
verifies with that key; an unsigned or badly signed ack is counted (``unauthenticated_acks``),
logged at most once a minute, and ignored.
"""

from __future__ import annotations

import logging
import time

from sync.mqtt_stats import UplinkStats
from sync.protocol import Ack, ProtocolError, decode_ack, verify_ack

# The uplink's logger: operators and their log filters know its messages by this name.
log = logging.getLogger("sync.mqtt_uplink")

UNAUTHENTICATED_LOG_EVERY_S = 60.0
"""Unsigned or badly signed acks are logged at most this often (each is counted)."""


class AckCheck:
    """Checks acks' signatures and counts (and now and then logs) the ones refused."""

    def __init__(self, key: bytes | None, stats: UplinkStats, ack_topic: str, gateway: str) -> None:
        self.key = key
        self.gateway = gateway
        self.stats = stats
        self.ack_topic = ack_topic
        self._logged = 0
        """``unauthenticated_acks`` when one was last logged."""
        self._log_at = float("-inf")

    def read(self, payload: bytes, signature: str | None) -> Ack | None:
        """The ack, if it is authentic, well formed and for this gateway (else counted)."""
        if not self.authentic(payload, signature):
            return None
        try:
            ack = decode_ack(payload)
        except ProtocolError as exc:
            self.stats.bad_acks += 1
            log.warning("uplink: ignoring a malformed ack: %s", exc)
            return None
        if ack.gateway != self.gateway:
            self.stats.bad_acks += 1
            return None
        return ack

    def authentic(self, payload: bytes, signature: str | None) -> bool:
        """Whether the ack may be read at all: signed with our key, or no key configured."""
        if self.key is None:
            return True
        if verify_ack(payload, signature, self.key):
            return True
        self.stats.bad_acks += 1
        self.stats.unauthenticated_acks += 1
        now = time.monotonic()
        if now - self._log_at >= UNAUTHENTICATED_LOG_EVERY_S:
            since = self.stats.unauthenticated_acks - self._logged
            self._log_at = now
            self._logged = self.stats.unauthenticated_acks
            log.warning(
                "uplink: ignoring %s ack on %s (%d refused since the last report, %d in all)",
                "an unsigned" if signature is None else "a badly signed",
                self.ack_topic,
                since,
                self.stats.unauthenticated_acks,
            )
        return False


__all__ = ["UNAUTHENTICATED_LOG_EVERY_S", "AckCheck"]
