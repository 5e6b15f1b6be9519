"""Store-and-forward to the warehouse over MQTT 5 (paho-mqtt 2.x), plus the andon feed.

A record leaves the outbox only when the warehouse's **ack** (on
:func:`sync.protocol.ack_topic`) lists it as committed; a PUBACK changes nothing in SQLite
(docs/reference/reliability.md §0.1, §3.1). Until then its batch stays in the window
(:mod:`sync.mqtt_window`), the only in-memory state: the backlog lives in SQLite, and after
a restart everything unacked is read from the outbox again.

* Refusals: a PUBACK reason code ≥ 0x80 (0x87 not authorized by the broker's ACL, ...) moves
  that batch's records to the outbox quarantine with the reason, and stores a
  ``sync_quarantined`` alert: the queue is never blocked and the batch never retried in a
  loop (docs/reference/reliability.md §7 row 18). Only 0x97 "quota exceeded" is temporary,
  retried with backoff. The ingest's per-record conflicts are quarantined the same way.
* paho (docs/reference/reliability.md §3.2): MQTT 5, QoS 1, no topic aliases, bounded
  in-flight and queued messages (paho's default queue is unlimited). Its session is in
  memory only and its mids restart per connection, so mids only match PUBACKs within one
  connection. A **fresh client per connection** with clean start: paho never replays an old
  connection's messages behind our back, the uplink decides what is resent. Reconnects use
  :class:`gateway.core.backoff.Backoff` (capped, full jitter), not paho's: a broker back from an
  outage is noticed within ``[sync.mqtt] reconnect_max_s``, not after the minutes an
  uncapped exponential backoff grows to.
* Andon and alerts: :mod:`sync.mqtt_feeds` (docs/reference/reliability.md §7 row 19).
* Status: a retained last will ``offline`` on :func:`sync.protocol.status_topic` is set
  before connecting, a retained ``online`` is published after every connect, and a retained
  ``offline`` before a clean stop (a normal DISCONNECT suppresses the will).
* Signed acks (issue 18): :mod:`sync.mqtt_ack_check`. Either way an ack counts only for a
  batch in flight, and only for that batch's records.
* Session takeover (a DISCONNECT with reason code 0x8E): :mod:`sync.mqtt_takeover`.
* A hung broker (TCP open, nothing back: docs/reference/reliability.md §7 row 2) is noticed
  within one keep-alive: paho pings only after a whole keep-alive of silence and then waits
  another one. So after half a keep-alive without any packet from the broker the uplink
  sends a probe without side effects (UNSUBSCRIBE of a filter it never subscribed, answered
  by an UNSUBACK), and after a whole keep-alive of silence it reconnects. The keep-alive
  must therefore exceed the time one PUBACK can take on the slowest link.

Threads: ``connect()`` (blocking TCP connect + CONNECT) runs in a worker thread via
:func:`asyncio.to_thread`; then ``loop_start()`` gives the socket to paho's network thread.
Every paho callback only copies its arguments into a frozen event (:mod:`sync.mqtt_events`)
and hands it to the event loop (:mod:`sync.mqtt_client`), tagged with the connection's
generation so a late callback of an old client is ignored; all state lives in the event
loop's thread, and :meth:`MqttUplink._handle` dispatches the events with ``match``. A
PUBACK is handled after ``publish()`` has returned its mid, because its callback runs on
the event loop after the code that called ``publish()`` (paho issues #482/#361).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Sequence

from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from gateway.core.backoff import Backoff
from gateway.core.errors import StoreFullError, SyncError
from gateway.core.link import LinkState
from gateway.store import Store
from sync.alert_feed import AlertFeed
from sync.andon import AndonPublisher
from sync.mqtt_ack_check import AckCheck
from sync.mqtt_client import (
    OFFLINE,
    ClientSettings,
    Connection,
    connect_properties,
    new_client,
    offline_sent,
    poster,
)
from sync.mqtt_events import (
    ConnAck,
    Disconnect,
    Message,
    MqttEvent,
    PubAck,
    SubAck,
    UnsubAck,
    Wake,
)
from sync.mqtt_feeds import FeedPublisher
from sync.mqtt_stats import UplinkStats
from sync.mqtt_takeover import TakeoverWatch
from sync.mqtt_window import BatchWindow, WindowSettings
from sync.outbox import Outbox
from sync.paho_loop import stop_network_loop
from sync.protocol import (
    SESSION_TAKEN_OVER,
    ack_topic,
    status_topic,
)

log = logging.getLogger(__name__)

ONLINE = b"online"

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 2.0
"""The reconnect backoff's cap by default: a site broker back from an outage is noticed
within this (a refused connection attempt costs one packet), and the andon state is
republished on that connection's CONNACK."""


class UplinkRefused(SyncError, ConnectionError):
    """The broker refused the connection or the ack subscription."""


class _Disconnected(ConnectionError):
    """The connection was lost."""


class MqttUplink:
    """Publishes the outbox to the warehouse over MQTT and deletes what it acknowledges.

    Run :meth:`run` as a task; :meth:`stop` ends it after publishing ``offline``.
    """

    kind = "mqtt"
    """The transport (:class:`sync.uplink.Uplink`)."""

    def __init__(
        self,
        store: Store,
        *,
        host: str,
        port: int,
        site: str,
        gateway: str,
        outbox: Outbox | None = None,
        andon: AndonPublisher | None = None,
        alerts: AlertFeed | None = None,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        keepalive_s: int = 15,
        connect_timeout_s: float = 5.0,
        max_records: int = 2000,
        max_bytes: int = 1024 * 1024,
        window: int = 8,
        alert_slots: int = 1,
        ack_timeout_s: float = 10.0,
        ack_timeout_max_s: float = 120.0,
        poll_interval_s: float = 0.5,
        backoff: Backoff | None = None,
        stable_after_s: float = 10.0,
        max_inflight: int | None = None,
        max_queued: int = 100,
        ack_key: bytes | None = None,
    ) -> None:
        # paho's in-flight limit must leave room for the whole window, the alert slots, the
        # alert feed's publishes and the andon/status messages; by default it is sized so.
        if max_inflight is None:
            max_inflight = max(20, window + alert_slots + 8)
        if window < 1 or alert_slots < 0 or window + alert_slots + 4 > max_inflight:
            raise ValueError("need 1 <= window and window + alert_slots + 4 <= max_inflight")
        self.store = store
        self.outbox = outbox or Outbox(store, gateway=gateway, site=site)
        self.andon = andon
        self.alerts = alerts
        self.host = host
        self.port = port
        self.site = site
        self.gateway = gateway
        self.client_id = client_id or f"lineside-{gateway}"
        self.tls_context = tls_context
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.window = window
        self.alert_slots = alert_slots
        self.poll_interval_s = poll_interval_s
        self.backoff = backoff or Backoff(initial=RECONNECT_MIN_S, maximum=RECONNECT_MAX_S)
        self.stable_after_s = stable_after_s
        self.ack_key = ack_key
        """HMAC-SHA256 key of the ingest's ack signatures; None: acks are not authenticated."""
        self.state = LinkState.DISABLED
        self.stats = UplinkStats()
        self.status_topic = status_topic(site, gateway)
        self.ack_topic = ack_topic(site, gateway)
        self.probe_topic = f"{self.ack_topic}/probe"
        """Never subscribed: unsubscribing from it is a round trip without side effects."""
        self.client_settings = ClientSettings(
            client_id=self.client_id,
            status_topic=self.status_topic,
            max_inflight=max_inflight,
            max_queued=max_queued,
            connect_timeout_s=connect_timeout_s,
            username=username,
            password=password,
            tls_context=tls_context,
        )
        self.batches = BatchWindow(
            self.outbox,
            self.stats,
            WindowSettings(
                site=site,
                gateway=gateway,
                size=window,
                alert_slots=alert_slots,
                max_records=max_records,
                max_bytes=max_bytes,
                ack_timeout_s=ack_timeout_s,
                ack_timeout_max_s=ack_timeout_max_s,
                poll_interval_s=poll_interval_s,
            ),
        )
        self.ack_observers: list[Callable[[float], None]] = self.batches.ack_observers
        """Called with the seconds from a batch's first publish to the warehouse's ack."""
        self._feeds = FeedPublisher(self.stats, andon, alerts)
        self._ack_check = AckCheck(ack_key, self.stats, self.ack_topic, gateway)
        self._takeover = TakeoverWatch(
            store,
            self.stats,
            client_id=self.client_id,
            broker=f"{host}:{port}",
            stable_after_s=stable_after_s,
        )
        self._events: asyncio.Queue[MqttEvent] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Connection | None = None
        self._generation = 0
        self._stopping = False

    # ---------------------------------------------------------------- life cycle

    @property
    def in_flight(self) -> int:
        """Batches published and not acknowledged yet."""
        return len(self.batches)

    async def run(self) -> None:
        """Connect, publish and reconnect with backoff until :meth:`stop`."""
        self._loop = asyncio.get_running_loop()
        if self.andon is not None:
            self.andon.on_change = self._wake
        self.store.commit_observers.append(self._on_commit)
        if self.ack_key is None:
            log.warning(
                "uplink: acks are not authenticated (no [sync.mqtt] ack_key): anyone the broker "
                "lets publish on %s can acknowledge batches in flight",
                self.ack_topic,
            )
        try:
            while not self._stopping:
                started = time.monotonic()
                await self._one_connection()
                if self._stop_requested():  # (a method: mypy narrows the attribute)
                    break
                self.state = LinkState.DOWN
                if time.monotonic() - started >= self.stable_after_s:
                    self.backoff.reset()
                delay = self.backoff.next_delay()
                log.info("uplink reconnecting in %.2f s", delay)
                await self._pause(delay)
        finally:
            self.state = LinkState.DISABLED
            if self.andon is not None:
                self.andon.on_change = None
            self.store.commit_observers.remove(self._on_commit)

    async def _one_connection(self) -> None:
        """Connect and serve until the connection ends; an error only ends this one."""
        self.state = LinkState.CONNECTING
        try:
            await self._connect()
            await self._serve()
        except asyncio.CancelledError:
            # Cancelled is a stop, too: say "offline" rather than leave "online".
            self._stopping = True
            raise
        except (OSError, TimeoutError, UplinkRefused, StoreFullError) as exc:
            # _Disconnected is a ConnectionError, so an OSError, too. A full store
            # cannot delete what the warehouse acknowledged: back off and resend later
            # (the warehouse dedupes) rather than crash the gateway into a restart loop.
            if not self._stopping:
                self.stats.last_error = str(exc) or type(exc).__name__
                log.warning("uplink %s:%d: %s", self.host, self.port, exc)
        finally:
            await self._close(graceful=self._stopping)

    async def stop(self) -> None:
        """End :meth:`run`: publish ``offline``, disconnect. The outbox keeps what is unacked."""
        self._stopping = True
        self._wake()

    def _stop_requested(self) -> bool:
        return self._stopping

    def _wake(self) -> None:
        self._events.put_nowait(Wake())

    def _on_commit(self, tables: frozenset[str]) -> None:
        # Alerts are published once committed, never before: wake up for new ones now.
        if self.alerts is not None and "alerts" in tables:
            self.alerts.wake()
            self._wake()

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or until :meth:`stop`."""
        deadline = time.monotonic() + delay
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._events.get()

    # ---------------------------------------------------------------- connection

    async def _connect(self) -> None:
        self._generation += 1
        self.stats.connect_attempts += 1
        post = poster(self._loop, self._events)
        client = new_client(self.client_settings, post, self._generation)
        conn = Connection(self._generation, client, time.monotonic())
        conn.last_heard = conn.started
        self._conn = conn
        if self.alerts is not None:
            # A fresh session: what was in flight may be lost, so start after the cursor.
            self.alerts.rewind()
        log.info("uplink connecting to %s:%d as %s", self.host, self.port, self.client_id)
        await asyncio.to_thread(
            client.connect,
            self.host,
            self.port,
            self.keepalive_s,
            clean_start=True,
            properties=connect_properties(),
        )
        client.loop_start()

    async def _close(self, *, graceful: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        client = conn.client
        if graceful and conn.ready:
            info = client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(1.0):
                    await offline_sent(self._events, conn.generation, info.mid)
        with contextlib.suppress(OSError, ValueError):
            client.disconnect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.to_thread(stop_network_loop, client)
        if conn.ready:
            self.stats.disconnects += 1
        if self.alerts is not None:
            await self.alerts.save(force=True)

    # ---------------------------------------------------------------- the session

    async def _serve(self) -> None:
        """Handle one connection until it drops or :meth:`stop` is called."""
        conn = self._conn
        assert conn is not None
        while not self._stopping:
            now = time.monotonic()
            if not conn.ready and now - conn.started > self.connect_timeout_s + 1:
                raise TimeoutError("no CONNACK/SUBACK from the broker in time")
            if conn.connected:
                self._feeds.andon_changes(conn)
                await self._feeds.alerts_after_cursor(conn)
            if conn.ready:
                self._takeover.check_stable(conn.ready_at, now)
                self._check_alive(conn, now)
                if self.batches.resend_due(conn, now) and self.state is LinkState.UP:
                    # Connected all along, yet the ingest has not answered: say so.
                    self.state = LinkState.DEGRADED
                await self.batches.fill(conn)
            timeout = self._next_wakeup(conn) - time.monotonic()
            try:
                async with asyncio.timeout(max(timeout, 0.001)):
                    event = await self._events.get()
            except TimeoutError:
                continue
            await self._handle(conn, event)
            while not self._events.empty():
                await self._handle(conn, self._events.get_nowait())

    def _next_wakeup(self, conn: Connection) -> float:
        now = time.monotonic()
        if not conn.ready:
            return now + 0.1
        candidates = [now + self.poll_interval_s, *self.batches.deadlines()]
        candidates.append(conn.last_heard + self.keepalive_s / (1 if conn.probing else 2))
        if self._takeover.raised:
            candidates.append(conn.ready_at + self.stable_after_s)
        if self.alerts is not None:
            candidates.append(self.alerts.next_wakeup())
        return max(min(candidates), now)

    async def _handle(self, conn: Connection, event: MqttEvent) -> None:
        current = event.generation == conn.generation
        if current and not isinstance(event, Disconnect | Wake):
            conn.last_heard = time.monotonic()
            conn.probing = False
        match event:
            case Message(topic=topic, payload=payload, signature=signature):
                # An ack is valid whichever connection brought it.
                if topic == self.ack_topic:
                    await self._on_ack(payload, signature)
            case _ if not current:
                return  # a late callback of an old client
            case ConnAck(rc=rc, session_present=session_present, max_packet=max_packet):
                await self._on_connack(conn, rc, session_present, max_packet)
            case SubAck(mid=mid, codes=codes):
                self._on_suback(conn, mid, codes)
            case PubAck(mid=mid, rc=rc):
                await self._on_puback(conn, mid, rc)
            case Disconnect(rc=rc) if rc.value == SESSION_TAKEN_OVER:
                raise _Disconnected(self._takeover.taken_over())
            case Disconnect(rc=rc):
                raise _Disconnected(f"connection lost ({rc})")
            case UnsubAck() | Wake():
                pass  # heard from the broker (above), or only woken up

    async def _on_connack(
        self, conn: Connection, rc: ReasonCode, session_present: bool, max_packet: int | None
    ) -> None:
        if rc.is_failure:
            raise UplinkRefused(f"broker refused the connection: {rc} ({rc.value:#04x})")
        log.debug("uplink CONNACK, session present %s", session_present)
        # A publish above the broker's limit ends the connection (MQTT 5 §3.1.2.11.4, §3.2.2.3.6):
        # batches are cut to fit before anything is sent on this one.
        self.batches.limit_packet(max_packet)
        conn.connected = True
        self._feeds.andon_on_connect(conn)
        result, mid = conn.client.subscribe(self.ack_topic, qos=1)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise _Disconnected(f"subscribe failed: {result}")
        conn.subscribe_mid = mid

    def _on_suback(self, conn: Connection, mid: int, codes: Sequence[ReasonCode]) -> None:
        if mid != conn.subscribe_mid:
            return
        if not codes or any(code.is_failure for code in codes):
            raise UplinkRefused(f"broker refused the ack subscription: {list(codes)}")
        conn.ready = True
        conn.ready_at = time.monotonic()
        self.state = LinkState.UP
        self.stats.connects += 1
        self._feeds.publish(conn, self.status_topic, ONLINE, retain=True)
        # Whatever was in flight may have died with the last connection: publish it again.
        self.batches.rearm(time.monotonic())
        log.info("uplink up: %s:%d, %d batches to resend", self.host, self.port, len(self.batches))

    def _check_alive(self, conn: Connection, now: float) -> None:
        """Probe after half a keep-alive of silence; give up after a whole one."""
        silent = now - conn.last_heard
        if silent >= self.keepalive_s:
            self.stats.hung_broker += 1
            raise _Disconnected(
                f"no packet from the broker for {silent:.1f} s (keep-alive {self.keepalive_s} s)"
            )
        if silent >= self.keepalive_s / 2 and not conn.probing:
            conn.probing = True
            self.stats.liveness_probes += 1
            conn.client.unsubscribe(self.probe_topic)

    # ---------------------------------------------------------------- publishing

    async def _on_puback(self, conn: Connection, mid: int, rc: ReasonCode) -> None:
        if self._feeds.alert_puback(conn, mid, rc):
            return
        await self.batches.on_puback(conn, mid, rc)

    async def _on_ack(self, payload: bytes, signature: str | None = None) -> None:
        ack = self._ack_check.read(payload, signature)
        if ack is None:
            return
        if not await self.batches.settle(ack):
            # Not a batch in flight: a late ack of a batch already settled or sent before a
            # restart (its records are still in the outbox and will be sent and acked
            # again), or a forgery. Either way it deletes nothing and quarantines nothing.
            self.stats.bad_acks += 1
            log.warning(
                "uplink: ignoring an ack for batch %s, which is not in flight",
                ack.batch_id[:64],
            )
            return
        if self.state is LinkState.DEGRADED:
            self.state = LinkState.UP


__all__ = ["MqttUplink", "UplinkRefused", "UplinkStats"]
