"""Store-and-forward to the warehouse over MQTT 5 (paho-mqtt 2.x), plus the andon feed.

Delivery rule
-------------
A record leaves the outbox only when the warehouse's **ack** (on
:func:`sync.protocol.ack_topic`) lists it as committed. A PUBACK only means "the broker has
it in RAM" (docs/reference/reliability.md §0.1, §3.1) and changes nothing in SQLite. Until the ack
comes, the batch stays in a small in-memory *window* and is published again, as the same bytes
with the same ``batch_id``, after ``ack_timeout_s`` (doubling per attempt, capped) and after
every reconnect; the warehouse dedupes on ``(gateway, seq)``. The window is the only
in-memory state: the backlog lives in SQLite, and after a restart everything unacked is
read from the outbox again.

* Priority: batches are taken alerts → compliance → telemetry, and ``alert_slots`` window
  slots are reserved for alerts, so a new alert is not starved by a backlog replay
  (docs/reference/reliability.md §7 rows 19, 22).
* Refusals: a PUBACK reason code ≥ 0x80 (0x87 not authorized by the broker's ACL, ...) moves
  that batch's records to the outbox quarantine with the reason, and stores a
  ``sync_quarantined`` alert: the queue is never blocked and the batch never retried in a
  loop (§7 row 18). Only 0x97 "quota exceeded" is temporary, retried with backoff. The
  ingest's per-record conflicts are quarantined the same way.
* paho (docs/reference/reliability.md §3.2): CallbackAPIVersion.VERSION2, MQTT 5, QoS 1, no topic
  aliases, ``max_inflight_messages`` 20, ``max_queued_messages`` 100 (paho's default is unlimited).
  Its session is in memory only and its mids restart per connection, so mids are only used
  to match PUBACKs within one connection. A **fresh client per connection** with clean start:
  paho never replays an old connection's messages behind our back, the uplink decides what
  is resent. Reconnects use :class:`gateway.backoff.Backoff` (capped, full jitter), not
  paho's (``reconnect_on_failure=False``).
* Andon and alerts (docs/reference/reliability.md §7 row 19): the retained andon state of every
  line is published again as soon as the broker's CONNACK arrives, before anything else; a
  broker back from an outage is noticed within the reconnect backoff's cap
  (``[sync.mqtt] reconnect_max_s``, a few seconds), not after the minutes an uncapped
  exponential backoff grows to. Alert transitions come from the store through
  :class:`sync.alert_feed.AlertFeed`: a small window of QoS 1 publishes after a publish cursor
  that moves only on PUBACK and is kept in the store, resumed after it on every connection
  (at least once, in ``seq`` order). paho is handed at most the feed's window of them, so
  a burst cannot overflow its queue; a publish it refuses anyway stays in the store.
* Status: a retained last will ``offline`` on :func:`sync.protocol.status_topic` is set
  before connecting, a retained ``online`` is published after every connect, and a retained
  ``offline`` before a clean stop (a normal DISCONNECT suppresses the will).
* Signed acks (issue 18): with an ``ack_key`` (``[sync.mqtt] ack_key``) an ack is honoured
  only when its HMAC-SHA256 signature (MQTT 5 user property, :func:`sync.protocol.verify_ack`)
  verifies with that key; an unsigned or badly signed ack is counted
  (``unauthenticated_acks``), logged at most once a minute, and ignored. Without a key acks
  are not authenticated (logged once at start): only the broker's ACL keeps others from
  publishing on the ack topic. Either way an ack counts only for a batch in flight, and only
  for that batch's records.
* Session takeover: a DISCONNECT with reason code 0x8E means another client connected with
  this gateway's client id. It is logged by name, the link state's last error says so, and a
  MAJOR ``sync_session_taken_over`` alert is stored; it is cleared once a connection has
  lasted ``stable_after_s`` again.
* TCP_NODELAY is set on the socket in ``on_socket_open``: batches and acks are small
  request/response messages that Nagle's algorithm would delay.
* A hung broker (TCP open, nothing back: docs/reference/reliability.md §7 row 2) is noticed within
  one keep-alive: paho pings only after a whole keep-alive of silence and then waits another one
  (about 2 × keep-alive). So after half a keep-alive without any packet from the broker the
  uplink sends a probe that has no side effect (UNSUBSCRIBE of a filter it never subscribed,
  answered by an UNSUBACK), and after a whole keep-alive of silence it drops the connection
  and reconnects. The keep-alive must therefore exceed the time one PUBACK can take on the
  slowest link.

Threads: paho's threaded interface. ``connect()`` (blocking TCP connect + CONNECT) runs in a
worker thread via :func:`asyncio.to_thread`; then ``loop_start()`` gives the socket to paho's
network thread. Every paho callback only copies its arguments and hands them to the event
loop with ``loop.call_soon_threadsafe`` (tagged with the connection's generation, so a late
callback of an old client is ignored); all state lives in the event loop's thread. A PUBACK
is handled after ``publish()`` has returned its mid, because its callback runs on the event
loop after the code that called ``publish()`` (paho issues #482/#361).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from adapters.base import LinkState
from gateway.backoff import Backoff
from gateway.errors import StoreError, StoreFullError
from gateway.records import AlertRecord, Severity
from gateway.store import Store
from sync.alert_feed import QUOTA_EXCEEDED, AlertFeed
from sync.andon import AndonMessage, AndonPublisher
from sync.outbox import Outbox, batch_seqs, only_quarantine_alerts, quarantine_with_alert
from sync.paho_codes import describe_rc, seq_text
from sync.paho_loop import stop_network_loop
from sync.protocol import (
    ACK_SIGNATURE_PROPERTY,
    MAX_ACK_BYTES,
    SESSION_TAKEN_OVER,
    Batch,
    ProtocolError,
    ack_topic,
    data_topic,
    decode_ack,
    encode_batch,
    status_topic,
    verify_ack,
)

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"

TAKEOVER_RULE = "sync_session_taken_over"
UNAUTHENTICATED_LOG_EVERY_S = 60.0
"""Unsigned or badly signed acks are logged at most this often (each is counted)."""

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 2.0
"""The reconnect backoff's cap by default: a site broker back from an outage is noticed
within this (a refused connection attempt costs one packet), and the andon state is
republished on that connection's CONNACK."""


class UplinkRefused(ConnectionError):
    """The broker refused the connection or the ack subscription."""


class _Disconnected(ConnectionError):
    """The connection was lost."""


@dataclass
class UplinkStats:
    """Counters for metrics and the TUI."""

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


@dataclass(slots=True)
class _InFlight:
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

    @property
    def seqs(self) -> tuple[int, ...]:
        return batch_seqs(self.batch)


@dataclass(slots=True)
class _Event:
    generation: int
    kind: str
    args: tuple[Any, ...] = ()


@dataclass(slots=True)
class _Connection:
    generation: int
    client: mqtt.Client
    started: float
    ready_at: float = 0.0
    """Monotonic time the connection became ready (0: not yet)."""
    connected: bool = False
    """The broker's CONNACK accepted the connection: andon and alerts may go out."""
    ready: bool = False
    """The ack subscription is in place too: batches may go out."""
    subscribe_mid: int | None = None
    sent: dict[int, str | None] = field(default_factory=dict)
    """mid → batch_id of a batch, or ``None`` for other messages (status, andon)."""
    other_topics: dict[int, str] = field(default_factory=dict)
    """mid → topic of the other messages, to name one the broker refuses."""
    alerts: dict[int, tuple[int, int]] = field(default_factory=dict)
    """mid → (feed epoch, seq) of an alert transition."""
    last_heard: float = 0.0
    """Monotonic time of the last packet from the broker on this connection."""
    probing: bool = False
    """A liveness probe is out and nothing was heard since."""


class MqttUplink:
    """Publishes the outbox to the warehouse over MQTT and deletes what it acknowledges.

    Run :meth:`run` as a task; :meth:`stop` ends it after publishing ``offline``.
    """

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
        max_records: int = 500,
        max_bytes: int = 256 * 1024,
        window: int = 4,
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
        self.username = username
        self.password = password
        self.tls_context = tls_context
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.window = window
        self.alert_slots = alert_slots
        self.ack_timeout_s = ack_timeout_s
        self.ack_timeout_max_s = ack_timeout_max_s
        self.poll_interval_s = poll_interval_s
        self.backoff = backoff or Backoff(initial=RECONNECT_MIN_S, maximum=RECONNECT_MAX_S)
        self.stable_after_s = stable_after_s
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.ack_key = ack_key
        """HMAC-SHA256 key of the ingest's ack signatures; None: acks are not authenticated."""
        self.state = LinkState.DISABLED
        self.stats = UplinkStats()
        self.ack_observers: list[Callable[[float], None]] = []
        """Called with the seconds from a batch's first publish to the warehouse's ack."""
        self.status_topic = status_topic(site, gateway)
        self.ack_topic = ack_topic(site, gateway)
        self.probe_topic = f"{self.ack_topic}/probe"
        """Never subscribed: unsubscribing from it is a round trip without side effects."""
        self._window: dict[str, _InFlight] = {}
        self._in_flight: set[int] = set()
        self._events: asyncio.Queue[_Event] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: _Connection | None = None
        self._generation = 0
        self._stopping = False
        self._next_poll = 0.0
        self._andon_resync = False
        self._unauthenticated_logged = 0
        """``unauthenticated_acks`` when one was last logged."""
        self._unauthenticated_log_at = float("-inf")
        self._taken_over = False
        """A ``sync_session_taken_over`` alert is raised and not cleared yet."""

    # ---------------------------------------------------------------- life cycle

    @property
    def in_flight(self) -> int:
        """Batches published and not acknowledged yet."""
        return len(self._window)

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
                self.state = LinkState.CONNECTING
                started = time.monotonic()
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

    async def stop(self) -> None:
        """End :meth:`run`: publish ``offline``, disconnect. The outbox keeps what is unacked."""
        self._stopping = True
        self._wake()

    def _stop_requested(self) -> bool:
        return self._stopping

    def _wake(self) -> None:
        self._events.put_nowait(_Event(-1, "wake"))

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

    def _new_client(self, generation: int) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(self.max_queued)
        client.connect_timeout = self.connect_timeout_s
        client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls_context is not None:
            client.tls_set_context(self.tls_context)
        post = self._poster(generation)

        def on_connect(
            _c: mqtt.Client, _u: object, flags: Any, rc: ReasonCode, _p: Properties | None
        ) -> None:
            post("connect", rc, bool(flags.session_present))

        def on_subscribe(
            _c: mqtt.Client, _u: object, mid: int, codes: list[ReasonCode], _p: Properties | None
        ) -> None:
            post("subscribe", mid, list(codes))

        def on_publish(
            _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: Properties
        ) -> None:
            post("publish", mid, rc)

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            post("message", message.topic, bytes(message.payload), _signature(message))

        def on_unsubscribe(
            _c: mqtt.Client, _u: object, mid: int, _codes: Any, _p: Properties | None
        ) -> None:
            post("unsubscribe", mid)

        def on_disconnect(
            _c: mqtt.Client, _u: object, _f: Any, rc: ReasonCode, _p: Properties | None
        ) -> None:
            post("disconnect", rc)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_publish = on_publish
        client.on_message = on_message
        client.on_unsubscribe = on_unsubscribe
        client.on_disconnect = on_disconnect
        client.on_socket_open = _set_nodelay
        return client

    def _poster(self, generation: int) -> Callable[..., None]:
        loop = self._loop
        events = self._events

        def post(kind: str, *args: Any) -> None:
            # Runs on paho's network thread: hand over to the event loop, touch nothing else.
            if loop is None:
                return
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(events.put_nowait, _Event(generation, kind, args))

        return post

    async def _connect(self) -> None:
        self._generation += 1
        self.stats.connect_attempts += 1
        client = self._new_client(self._generation)
        conn = _Connection(self._generation, client, time.monotonic())
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
            properties=_connect_properties(),
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
                    while True:
                        event = await self._events.get()
                        if event.generation == conn.generation and (
                            event.kind == "disconnect"
                            or (event.kind == "publish" and event.args[0] == info.mid)
                        ):
                            break
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
                self._publish_andon(conn)
                await self._publish_alerts(conn)
            if conn.ready:
                self._check_stable(conn, now)
                self._check_alive(conn, now)
                self._resend_due(conn, now)
                await self._fill_window(conn)
            timeout = self._next_wakeup(conn) - time.monotonic()
            try:
                async with asyncio.timeout(max(timeout, 0.001)):
                    event = await self._events.get()
            except TimeoutError:
                continue
            await self._handle(conn, event)
            while not self._events.empty():
                await self._handle(conn, self._events.get_nowait())

    def _next_wakeup(self, conn: _Connection) -> float:
        now = time.monotonic()
        if not conn.ready:
            return now + 0.1
        candidates = [now + self.poll_interval_s, self._next_poll]
        candidates.append(conn.last_heard + self.keepalive_s / (1 if conn.probing else 2))
        candidates.extend(entry.deadline for entry in self._window.values())
        if self._taken_over:
            candidates.append(conn.ready_at + self.stable_after_s)
        if self.alerts is not None:
            candidates.append(self.alerts.next_wakeup())
        return max(min(candidates), now)

    async def _handle(self, conn: _Connection, event: _Event) -> None:
        if event.generation == conn.generation and event.kind != "disconnect":
            conn.last_heard = time.monotonic()
            conn.probing = False
        if event.kind == "message":
            # An ack is valid whichever connection brought it.
            topic, payload, signature = event.args
            if topic == self.ack_topic:
                await self._on_ack(payload, signature)
            return
        if event.kind == "wake" or event.generation != conn.generation:
            return
        if event.kind == "connect":
            rc, session_present = event.args
            await self._on_connack(conn, rc, session_present)
        elif event.kind == "subscribe":
            mid, codes = event.args
            self._on_suback(conn, mid, codes)
        elif event.kind == "publish":
            mid, rc = event.args
            await self._on_puback(conn, mid, rc)
        elif event.kind == "disconnect":
            (rc,) = event.args
            if rc.value == SESSION_TAKEN_OVER:
                raise _Disconnected(self._on_taken_over())
            raise _Disconnected(f"connection lost ({rc})")

    async def _on_connack(self, conn: _Connection, rc: ReasonCode, session_present: bool) -> None:
        if rc.is_failure:
            raise UplinkRefused(f"broker refused the connection: {rc} ({rc.value:#04x})")
        log.debug("uplink CONNACK, session present %s", session_present)
        conn.connected = True
        if self.andon is not None:
            # First thing on a new connection: a board must not show a stale state for
            # longer than the reconnect takes (issue 17).
            self._publish_andon_messages(conn, self.andon.retained_messages(everything=True))
        result, mid = conn.client.subscribe(self.ack_topic, qos=1)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise _Disconnected(f"subscribe failed: {result}")
        conn.subscribe_mid = mid

    def _on_suback(self, conn: _Connection, mid: int, codes: Sequence[ReasonCode]) -> None:
        if mid != conn.subscribe_mid:
            return
        if not codes or any(code.is_failure for code in codes):
            raise UplinkRefused(f"broker refused the ack subscription: {codes}")
        conn.ready = True
        conn.ready_at = time.monotonic()
        self.state = LinkState.UP
        self.stats.connects += 1
        self._publish_other(conn, self.status_topic, ONLINE, retain=True)
        # Whatever was in flight may have died with the last connection: publish it again.
        now = time.monotonic()
        for entry in self._window.values():
            entry.deadline = now
        self._next_poll = now
        log.info("uplink up: %s:%d, %d batches to resend", self.host, self.port, len(self._window))

    def _on_taken_over(self) -> str:
        """Another client connected with our client id: say so by name, raise the alert."""
        self.stats.sessions_taken_over += 1
        message = (
            f"session taken over by another client with our client id ({self.client_id}) "
            f"on {self.host}:{self.port}"
        )
        log.error("uplink: %s", message)
        self._takeover_alert("updated" if self._taken_over else "raised", message)
        self._taken_over = True
        return message

    def _check_stable(self, conn: _Connection, now: float) -> None:
        """Clear the takeover alert once a connection has lasted again."""
        if self._taken_over and now - conn.ready_at >= self.stable_after_s:
            self._taken_over = False
            log.info("uplink: the connection as %s has lasted again", self.client_id)
            self._takeover_alert("cleared", f"the connection as {self.client_id} has lasted again")

    def _takeover_alert(self, state: str, message: str) -> None:
        record = AlertRecord(
            ts_us=self.store.clock.wall_us(),
            alert_id=f"sync.mqtt.session_taken_over.{self.client_id}",
            rule=TAKEOVER_RULE,
            subject=self.client_id,
            severity=Severity.MAJOR,
            state=state,
            message=message,
            detail={"client_id": self.client_id, "broker": f"{self.host}:{self.port}"},
        )
        try:
            self.store.submit(record)
        except StoreError as exc:
            log.error("uplink: cannot store the session takeover alert: %s", exc)

    def _check_alive(self, conn: _Connection, now: float) -> None:
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

    def _publish_other(
        self,
        conn: _Connection,
        topic: str,
        payload: bytes,
        *,
        retain: bool,
    ) -> bool:
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

    def _publish_andon(self, conn: _Connection) -> None:
        if self.andon is None:
            return
        if self._andon_resync or self.andon.pending():
            everything, self._andon_resync = self._andon_resync, False
            self._publish_andon_messages(conn, self.andon.retained_messages(everything=everything))

    def _publish_andon_messages(self, conn: _Connection, messages: list[AndonMessage]) -> None:
        for message in messages:
            if self._publish_other(conn, message.topic, message.payload, retain=message.retain):
                self.stats.andon_published += 1
            else:
                self._andon_resync = True

    async def _publish_alerts(self, conn: _Connection) -> None:
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

    async def _fill_window(self, conn: _Connection) -> None:
        if time.monotonic() < self._next_poll:
            return
        while conn.ready and len(self._window) < self.window + self.alert_slots:
            # Past the normal window, only alerts may use the reserved slots.
            urgent_only = len(self._window) >= self.window
            batch = await self.outbox.next_batch(
                self.max_records,
                self.max_bytes,
                exclude=self._in_flight,
                max_priority=0 if urgent_only else None,
            )
            if batch is None:
                self._next_poll = time.monotonic() + self.poll_interval_s
                return
            try:
                payload = encode_batch(batch)
            except ValueError as exc:  # the outbox checks this; defence in depth
                await self._refuse(batch, f"not encodable: {exc}")
                continue
            entry = _InFlight(batch, payload, data_topic(self.site, self.gateway, batch.stream))
            self._window[batch.batch_id] = entry
            self._in_flight.update(entry.seqs)
            self._send(conn, entry)

    def _send(self, conn: _Connection, entry: _InFlight) -> None:
        now = time.monotonic()
        entry.attempts += 1
        entry.generation = conn.generation
        if entry.attempts == 1:
            entry.first_sent = now
        timeout = min(self.ack_timeout_s * 2 ** min(entry.attempts - 1, 16), self.ack_timeout_max_s)
        entry.deadline = now + timeout
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
            entry.deadline = now + min(self.ack_timeout_s, 1.0)
        if entry.attempts == 1:
            self.stats.batches_sent += 1
        else:
            self.stats.batches_resent += 1

    def _resend_due(self, conn: _Connection, now: float) -> None:
        for entry in list(self._window.values()):
            if entry.deadline <= now:
                if entry.generation == conn.generation and self.state is LinkState.UP:
                    # Connected all along, yet the ingest has not answered: say so.
                    self.state = LinkState.DEGRADED
                log.info(
                    "uplink: no ack for %s after %d attempts, publishing again",
                    entry.batch.batch_id,
                    entry.attempts,
                )
                self._send(conn, entry)

    # ---------------------------------------------------------------- answers

    async def _on_puback(self, conn: _Connection, mid: int, rc: ReasonCode) -> None:
        alert = conn.alerts.pop(mid, None)
        if alert is not None and self.alerts is not None:
            epoch, seq = alert
            if rc.is_failure:
                self.stats.puback_failures += 1
                self.alerts.refused(seq, epoch, rc.value, str(rc))
            else:
                self.stats.alerts_published += 1
                self.alerts.confirmed(seq, epoch)
            return
        if mid not in conn.sent:
            return
        batch_id = conn.sent.pop(mid)
        topic = conn.other_topics.pop(mid, None)
        if not rc.is_failure:
            if batch_id is not None:
                self.stats.batches_pubacked += 1
            return  # the broker has it; only the ingest's ack deletes anything
        self.stats.puback_failures += 1
        entry = self._window.get(batch_id) if batch_id is not None else None
        if entry is None:
            what = f"batch {batch_id}" if batch_id is not None else f"the message to {topic}"
            log.error("uplink: broker refused %s (PUBACK %s)", what, rc)
            return
        if rc.value == QUOTA_EXCEEDED:
            delay = min(self.ack_timeout_s * 2 ** min(entry.attempts, 16), self.ack_timeout_max_s)
            entry.deadline = time.monotonic() + delay
            log.warning("uplink: broker quota exceeded for %s, retry in %.1f s", batch_id, delay)
            return
        await self._refuse(entry.batch, f"PUBACK {rc.value:#04x} {rc} on {entry.topic}")

    def _authentic(self, payload: bytes, signature: str | None) -> bool:
        """Whether the ack may be read at all: signed with our key, or no key configured."""
        if self.ack_key is None:
            return True
        if verify_ack(payload, signature, self.ack_key):
            return True
        self.stats.bad_acks += 1
        self.stats.unauthenticated_acks += 1
        now = time.monotonic()
        if now - self._unauthenticated_log_at >= UNAUTHENTICATED_LOG_EVERY_S:
            since = self.stats.unauthenticated_acks - self._unauthenticated_logged
            self._unauthenticated_log_at = now
            self._unauthenticated_logged = self.stats.unauthenticated_acks
            log.warning(
                "uplink: ignoring %s ack on %s (%d refused since the last report, %d in all)",
                "an unsigned" if signature is None else "a badly signed",
                self.ack_topic,
                since,
                self.stats.unauthenticated_acks,
            )
        return False

    async def _on_ack(self, payload: bytes, signature: str | None = None) -> None:
        if not self._authentic(payload, signature):
            return
        try:
            ack = decode_ack(payload)
        except ProtocolError as exc:
            self.stats.bad_acks += 1
            log.warning("uplink: ignoring a malformed ack: %s", exc)
            return
        if ack.gateway != self.gateway:
            self.stats.bad_acks += 1
            return
        entry = self._window.pop(ack.batch_id, None)
        if entry is None:
            # Not a batch in flight: a late ack of a batch already settled or sent before a
            # restart (its records are still in the outbox and will be sent and acked
            # again), or a forgery. Either way it deletes nothing and quarantines nothing.
            self.stats.bad_acks += 1
            log.warning(
                "uplink: ignoring an ack for batch %s, which is not in flight",
                ack.batch_id[:64],
            )
            return
        # Only what this batch carried: an ack never deletes records it did not cover.
        mine = set(entry.seqs)
        committed = [seq for seq in ack.committed if seq in mine]
        conflicts = [(seq, reason) for seq, reason in ack.conflicts if seq in mine]
        self._in_flight.difference_update(mine)
        self._next_poll = 0.0
        latency = time.monotonic() - entry.first_sent
        for observe in self.ack_observers:
            observe(latency)
        deleted = await self.outbox.acknowledge(committed)
        self.stats.records_acked += deleted
        by_reason: dict[str, list[int]] = {}
        for seq, reason in conflicts:
            by_reason.setdefault(reason, []).append(seq)
        for reason, seqs in by_reason.items():
            await self._quarantine(ack.batch_id, entry.batch.stream, seqs, f"ingest: {reason}")
        if self.state is LinkState.DEGRADED:
            self.state = LinkState.UP

    async def _refuse(self, batch: Batch, reason: str) -> None:
        seqs = batch_seqs(batch)
        self._window.pop(batch.batch_id, None)
        self._in_flight.difference_update(seqs)
        self._next_poll = 0.0
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


# ---------------------------------------------------------------- connection limits


def _connect_properties() -> Properties:
    """CONNECT properties: the largest packet this gateway accepts (MQTT 5 Maximum Packet
    Size). It only receives acks, so the broker drops anything larger for it instead of
    sending it; :func:`sync.protocol.decode_ack` refuses a larger ack unread as well."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.MaximumPacketSize = MAX_ACK_BYTES + 1024  # the ack plus its topic and header
    return props


def _signature(message: mqtt.MQTTMessage) -> str | None:
    """The ack signature user property of a message, if it has exactly one."""
    properties = getattr(message, "properties", None)
    pairs = getattr(properties, "UserProperty", None) or []
    found = [value for name, value in pairs if name == ACK_SIGNATURE_PROPERTY]
    return found[0] if len(found) == 1 and isinstance(found[0], str) else None


def _set_nodelay(_client: mqtt.Client, _userdata: object, sock: Any) -> None:
    """Small request/response messages: don't let Nagle hold them back."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
