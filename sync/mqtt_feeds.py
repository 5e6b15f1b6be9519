"""What the MQTT uplink publishes besides batches: the retained status and andon states,
and the alert transitions from the store.

* Andon (docs/reference/reliability.md §7 row 19): the retained state of every line is
  published again as soon as the broker's CONNACK arrives, before anything else, and each
  change after that; a publish paho does not accept is retried with the whole state.
* Alerts: transitions come from the store through :class:`sync.alert_feed.AlertFeed`, a
  small window of QoS 1 publishes after a cursor that moves only on PUBACK (at least once,
  in ``seq`` order). A publish paho refuses stays in the store and is sent next.
"""

from __future__ import annotations

import logging

from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sync.alert_feed import AlertFeed
from sync.andon import AndonMessage, AndonPublisher
from sync.mqtt_client import Connection
from sync.mqtt_stats import UplinkStats
from sync.paho_codes import describe_rc

# The uplink's logger: operators and their log filters know its messages by this name.
log = logging.getLogger("sync.mqtt_uplink")


class FeedPublisher:
    """Publishes status, andon and alert messages on a connection and settles their PUBACKs."""

    def __init__(
        self, stats: UplinkStats, andon: AndonPublisher | None, alerts: AlertFeed | None
    ) -> None:
        self.stats = stats
        self.andon = andon
        self.alerts = alerts
        self._andon_resync = False
        """A publish was not accepted: the whole andon state goes out again."""

    def publish(self, conn: Connection, topic: str, payload: bytes, *, retain: bool) -> bool:
        """One QoS 1 message that is not a batch; False if paho did not accept it."""
        info = conn.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning(
                "uplink: publish to %s (%d bytes) not accepted by paho, published again later: %s",
                topic,
                len(payload),
                describe_rc(info.rc),
            )
            return False
        conn.sent[info.mid] = None
        conn.other_topics[info.mid] = topic
        return True

    def andon_on_connect(self, conn: Connection) -> None:
        """First thing on a new connection: a board must not show a stale state for longer
        than the reconnect takes (issue 17)."""
        if self.andon is not None:
            self._publish_andon(conn, self.andon.retained_messages(everything=True))

    def andon_changes(self, conn: Connection) -> None:
        """The lines whose state changed (all of them after a refused publish)."""
        if self.andon is None:
            return
        if self._andon_resync or self.andon.pending():
            everything, self._andon_resync = self._andon_resync, False
            self._publish_andon(conn, self.andon.retained_messages(everything=everything))

    def _publish_andon(self, conn: Connection, messages: list[AndonMessage]) -> None:
        for message in messages:
            if self.publish(conn, message.topic, message.payload, retain=message.retain):
                self.stats.andon_published += 1
            else:
                self._andon_resync = True

    async def alerts_after_cursor(self, conn: Connection) -> None:
        """Publish stored alert transitions after the cursor while the feed's window has room."""
        feed = self.alerts
        if feed is None:
            return
        await feed.load()
        while conn.connected and (message := await feed.next_message()) is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = message.expiry_s
            info = conn.client.publish(
                message.topic, message.payload, qos=1, retain=False, properties=properties
            )
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                # Nothing is lost: the transition is still in the store and still next.
                log.warning(
                    "uplink: alert transition seq %d to %s not accepted by paho, "
                    "kept in the store and sent next: %s",
                    message.seq,
                    message.topic,
                    describe_rc(info.rc),
                )
                feed.not_accepted()
                break
            conn.alerts[info.mid] = (feed.epoch, message.seq)
            feed.sent(message.seq)
        await feed.save()

    def alert_puback(self, conn: Connection, mid: int, rc: ReasonCode) -> bool:
        """Settle the PUBACK of an alert transition; False if ``mid`` was not one."""
        alert = conn.alerts.pop(mid, None)
        if alert is None or self.alerts is None:
            return False
        epoch, seq = alert
        if rc.is_failure:
            self.stats.puback_failures += 1
            self.alerts.refused(seq, epoch, rc.value, str(rc))
        else:
            self.stats.alerts_published += 1
            self.alerts.confirmed(seq, epoch)
        return True


__all__ = ["FeedPublisher"]
