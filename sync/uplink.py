"""What the gateway needs of an uplink, whichever transport carries the batches.

:class:`sync.mqtt_uplink.MqttUplink` and :class:`sync.https_uplink.HttpsUplink` both satisfy
:class:`Uplink`, and their counters share the names of :class:`UplinkCounters`, so the
status snapshot and the metrics read either the same way (no ``isinstance`` on the
transport). Each transport keeps further counters of its own beside these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.core.link import LinkState


class UplinkCounters(Protocol):
    """The counters every uplink keeps, under the same names (since the gateway started)."""

    @property
    def batches_sent(self) -> int:
        """Batches sent for the first time."""

    @property
    def batches_resent(self) -> int:
        """Sends of a batch again (no answer in time, a failed attempt, a reconnect)."""

    @property
    def records_acked(self) -> int:
        """Records the warehouse acknowledged as committed (deleted from the outbox)."""

    @property
    def records_quarantined(self) -> int:
        """Records moved to the outbox quarantine (refused by the broker or the ingest)."""

    @property
    def last_error(self) -> str:
        """Why the last attempt or connection failed ("" while none did)."""


class Uplink(Protocol):
    """A store-and-forward link from the outbox to the warehouse."""

    @property
    def kind(self) -> str:
        """The transport: ``"mqtt"`` or ``"https"`` (a metrics label and a snapshot key)."""

    @property
    def state(self) -> LinkState:
        """The link's state now."""

    @property
    def stats(self) -> UplinkCounters:
        """The shared counters (the transport's own object, read live)."""

    @property
    def ack_observers(self) -> list[Callable[[float], None]]:
        """Called with the seconds from a batch's first send to the warehouse's ack."""

    async def run(self) -> None:
        """Send the outbox until cancelled (or stopped)."""


__all__ = ["Uplink", "UplinkCounters"]
