"""Session takeover: another client connected to the broker with this gateway's client id.

The broker then disconnects us with reason code 0x8E. It is logged by name, the link
state's last error says so, and a MAJOR ``sync_session_taken_over`` alert is stored; it is
cleared once a connection has lasted ``stable_after_s`` again.
"""

from __future__ import annotations

import logging

from gateway.core.errors import StoreError
from gateway.core.records import AlertRecord, Severity
from gateway.store import Store
from sync.mqtt_stats import UplinkStats

# The uplink's logger: operators and their log filters know its messages by this name.
log = logging.getLogger("sync.mqtt_uplink")

TAKEOVER_RULE = "sync_session_taken_over"


class TakeoverWatch:
    """Raises the takeover alert on a 0x8E disconnect and clears it once a connection lasts."""

    def __init__(
        self,
        store: Store,
        stats: UplinkStats,
        *,
        client_id: str,
        broker: str,
        stable_after_s: float,
    ) -> None:
        self.store = store
        self.stats = stats
        self.client_id = client_id
        self.broker = broker
        """``host:port``, named in the message."""
        self.stable_after_s = stable_after_s
        self.raised = False
        """A ``sync_session_taken_over`` alert is raised and not cleared yet."""

    def taken_over(self) -> str:
        """Another client connected with our client id: say so by name, raise the alert."""
        self.stats.sessions_taken_over += 1
        message = (
            f"session taken over by another client with our client id ({self.client_id}) "
            f"on {self.broker}"
        )
        log.error("uplink: %s", message)
        self._alert("updated" if self.raised else "raised", message)
        self.raised = True
        return message

    def check_stable(self, ready_at: float, now: float) -> None:
        """Clear the takeover alert once a connection has lasted again."""
        if self.raised and now - ready_at >= self.stable_after_s:
            self.raised = False
            log.info("uplink: the connection as %s has lasted again", self.client_id)
            self._alert("cleared", f"the connection as {self.client_id} has lasted again")

    def _alert(self, state: str, message: str) -> None:
        record = AlertRecord(
            ts_us=self.store.clock.wall_us(),
            alert_id=f"sync.mqtt.session_taken_over.{self.client_id}",
            rule=TAKEOVER_RULE,
            subject=self.client_id,
            severity=Severity.MAJOR,
            state=state,
            message=message,
            detail={"client_id": self.client_id, "broker": self.broker},
        )
        try:
            self.store.submit(record)
        except StoreError as exc:
            log.error("uplink: cannot store the session takeover alert: %s", exc)


__all__ = ["TAKEOVER_RULE", "TakeoverWatch"]
