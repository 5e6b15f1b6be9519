"""Consumes gateway batches from MQTT, commits them to the warehouse, then publishes the acks.

MQTT 5, QoS 1, a persistent session: a stable client id (``lineside-ingest-<host>`` unless
configured; see :func:`sync.ingest.settings.default_client_id`), ``clean_start=False`` and a
``SessionExpiryInterval`` of at least an hour (docs/reference/reliability.md §3.1: with expiry 0 the
session ends at disconnect whatever clean_start says), so while the ingest is down or restarting the
broker keeps queuing for it.

**When the broker gets its PUBACK.** paho acknowledges a QoS 1 message when ``on_message``
returns, which would be before the warehouse has it. The client is created with
``manual_ack=True`` instead, and a message is PUBACKed only

* after its batch's transaction has COMMITTED and the batch's :class:`~sync.protocol.Ack`
  has been handed to paho for publishing, or
* once it is known to be undeliverable (not a batch, topic and body disagree, or the
  warehouse refuses it permanently): it is logged, counted and acknowledged, so a poison
  message does not come back on every reconnect (the gateway, which got no ack, resends it
  after its own timeout; a fixed gateway's resend then goes through).

**Who sent it.** Over MQTT the ingest cannot see the publisher's identity, so the broker's ACL
decides who may publish where (``config/mosquitto/acl``: a gateway's user name is its id and it
may write only ``lineside/v1/+/gateways/<its id>/data/#``). The ingest then refuses a batch
whose gateway, site or stream differ from its topic, so the topic's gateway — the one the ACL
authenticated — is the batch's; the ack goes to that gateway's ack topic only. A message above
``max_message_bytes`` (also announced to the broker as the CONNECT's Maximum Packet Size, so
a broker that honours MQTT 5 never delivers it) is refused before it is copied or parsed, and
records are checked against their stream's schema by the warehouse.

**Signed acks.** With ``ack_keys`` (``lineside ingest --ack-keys FILE``) every ack to a
gateway that has a key carries an HMAC-SHA256 signature in an MQTT 5 user property
(:func:`sync.protocol.sign_ack`): a gateway with that key honours nothing else, so even a
broker without the shipped ACL cannot be used to forge acks. A gateway without a key in the
file gets unsigned acks (logged once per gateway).

**Session takeover.** A DISCONNECT with reason code 0x8E "Session taken over" means another
client connected with the ingest's client id. Reconnecting would take the session back, and
the other one would do the same: two instances stealing one session forever. So the consumer
logs an error naming the client id, does not reconnect, and :meth:`MqttConsumer.run` raises
:class:`IngestSessionTakenOver` (``lineside ingest`` exits 3, which its systemd unit does not
restart: docs/operations.md). A restarted instance taking over its own dead session is normal:
the new connection is the one that stays, the old holder is the one told.

**Shared subscriptions.** With ``share_group`` the consumer subscribes to
``$share/<group>/lineside/v1/+/gateways/+/data/+`` (:func:`sync.protocol.shared_subscription`),
and the broker hands each batch to one instance of the group. A delivered message keeps its
original topic, so :func:`topic_ids` and the topic check below are unchanged. Any instance
may acknowledge any gateway's batch (the ack keys file is the same on every instance); a
batch redelivered to another instance after a crash lands there as a duplicate.

So a crash, kill or cancellation anywhere before the commit leaves the message unacknowledged
in the broker's session, and the broker redelivers it (DUP) when the ingest reconnects. A crash
after the commit but before the PUBACK also redelivers it; the warehouse then finds every
record already stored with the same hash and acknowledges the batch again: duplicates on the
wire, exactly one row per ``(gateway, seq)``.

**Concurrency.** Up to ``workers`` batches (the warehouse's: ``--db-pool-size`` with
PostgreSQL, 1 with SQLite) are committed at once by as many worker tasks, taking messages
in arrival order. Each batch's ack is published as soon as its batch committed; its PUBACK
waits in :class:`~sync.ingest.puback_order.ArrivalOrder` until every message that arrived
before it is done, so PUBACKs go out in the order the PUBLISHes came in (MQTT 5 §4.6).
Two batches of one gateway may commit concurrently: ``(gateway, seq)`` is their identity
and the warehouse's current state is newest-seq-wins (:mod:`sync.ingest.warehouse_postgres`).
``receive_maximum`` bounds how many the broker has in flight to the ingest, which bounds the
queue and the held PUBACKs here. A PUBACK is only sent on the connection that delivered the
message (paho's packet ids restart per connection, #634): after a reconnect the broker
resends the unacknowledged ones anyway.

Threads: paho's network thread (``loop_start``) only copies messages onto the asyncio loop
(``call_soon_threadsafe``); decoding, the warehouse commit (itself on the warehouse's own
threads), ack publishing and PUBACKs run in the worker tasks. Reconnects use
:class:`gateway.core.backoff.Backoff` (capped exponential, full jitter), fed to paho's reconnect
loop before each wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.core.backoff import Backoff
from gateway.core.errors import SyncError
from sync.ingest.puback_order import ArrivalOrder
from sync.ingest.session_end import apply_credentials
from sync.ingest.settings import IngestSettings
from sync.ingest.warehouse import (
    Warehouse,
    WarehouseError,
    WarehouseUnavailable,
    decode_message,
)
from sync.paho_loop import stop_network_loop
from sync.paho_poll import install as watch_any_descriptor
from sync.protocol import (
    ACK_SIGNATURE_PROPERTY,
    DATA_SUBSCRIPTION,
    PREFIX,
    SESSION_TAKEN_OVER,
    Ack,
    Batch,
    ProtocolError,
    ack_topic,
    encode_ack,
    shared_subscription,
    sign_ack,
)

logger = logging.getLogger(__name__)


class IngestSessionTakenOver(SyncError):
    """Another client connected to the broker with this ingest's client id (DISCONNECT
    0x8E): the consumer stops instead of taking the session back."""


@dataclass(slots=True)
class ConsumerStats:
    """Counters since start."""

    received: int = 0
    redelivered: int = 0
    """Messages the broker marked DUP (a resend of one not acknowledged in time)."""
    committed: int = 0
    """Batches committed and acknowledged."""
    dropped_protocol: int = 0
    """Not a valid batch (ProtocolError): logged, PUBACKed, no ack."""
    dropped_topic: int = 0
    """The batch's gateway, site or stream differs from its topic (spoofing or a bug)."""
    dropped_too_large: int = 0
    """Payloads above ``max_message_bytes``: refused unread."""
    failed: int = 0
    """The warehouse refused the batch permanently (not a transient failure)."""
    dropped_overflow: int = 0
    """Messages dropped because the queue was full (QoS 0 floods only)."""
    commit_retries: int = 0
    acks_published: int = 0
    connects: int = 0
    sessions_lost: int = 0
    """Connections on which the broker had no session for us although we had one."""
    acks_signed: int = 0
    acks_unsigned: int = 0
    """Acks published without a signature (no ack key for their gateway)."""
    sessions_taken_over: int = 0
    """Disconnects because another client connected with our client id (0x8E)."""


@dataclass(frozen=True, slots=True)
class _Inbound:
    arrival: int
    """Its place in the order messages came in (:class:`ArrivalOrder`)."""
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    dup: bool
    size: int = 0
    """The payload's size as received (the payload itself is dropped when too large)."""


def topic_ids(topic: str) -> tuple[str, str, str] | None:
    """``(site, gateway, stream)`` of a data topic, or None for any other topic."""
    parts = topic.split("/")
    prefix = PREFIX.split("/")
    if (
        len(parts) != len(prefix) + 5
        or parts[: len(prefix)] != prefix
        or parts[len(prefix) + 1] != "gateways"
        or parts[len(prefix) + 3] != "data"
    ):
        return None
    n = len(prefix)
    return parts[n], parts[n + 2], parts[n + 4]


class MqttConsumer:
    """The MQTT side of the ingest. :meth:`run` until cancelled."""

    def __init__(self, settings: IngestSettings, warehouse: Warehouse) -> None:
        self.settings = settings
        self.warehouse = warehouse
        self.stats = ConsumerStats()
        self.subscribed = asyncio.Event()
        """Set while connected and subscribed to the data topics."""
        # QoS 1 in flight is bounded by receive_maximum; the margin is for QoS 0 messages.
        self._queue: asyncio.Queue[_Inbound] = asyncio.Queue(settings.receive_maximum + 1000)
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self._connected = False
        self._backoff = Backoff(
            initial=settings.reconnect_initial_s, maximum=settings.reconnect_max_s
        )
        self._unsigned_warned: set[str] = set()
        self.subscription = (
            DATA_SUBSCRIPTION
            if settings.share_group is None
            else shared_subscription(settings.share_group)
        )
        """The topic filter the consumer subscribes to (shared with its group, if any)."""
        self._taken_over: asyncio.Event | None = None
        self._order: ArrivalOrder[_Inbound] = ArrivalOrder()
        self._handled: set[int] = set()
        """Arrivals whose handling finished (committed and acked, or dropped): PUBACKable."""
        # Fakes in tests may lack ``workers``: they commit one batch at a time.
        warehouse_workers = getattr(warehouse, "workers", 1)
        self.workers = max(1, min(settings.db_pool_size, warehouse_workers))
        """Batches committed at once."""
        self._client = self._make_client()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the current connection."""
        return self._connected

    def status(self) -> dict[str, object]:
        """Who this consumer is and its counters since start (the ingest's health answer)."""
        st = self.stats
        return {
            "client_id": self.settings.client_id,
            "share_group": self.settings.share_group,
            "subscription": self.subscription,
            "connected": self._connected,
            "workers": self.workers,
            "received": st.received,
            "committed": st.committed,
            "redelivered": st.redelivered,
            "dropped": st.dropped_protocol + st.dropped_topic + st.dropped_too_large,
            "failed": st.failed,
            "commit_retries": st.commit_retries,
            "held_pubacks": self._order.waiting,
            "connects": st.connects,
            "sessions_taken_over": st.sessions_taken_over,
        }

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        watch_any_descriptor()  # paho's select() cannot watch descriptors above 1023
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        apply_credentials(client, s)
        # Acks waiting for a connection are bounded; the gateway resends what got no ack.
        client.max_queued_messages_set(1000)
        self._set_reconnect_delay(client, s.reconnect_initial_s)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    @staticmethod
    def _set_reconnect_delay(client: mqtt.Client, delay: float) -> None:
        # min == max: paho waits exactly this long before its next attempt. paho annotates
        # int but computes with floats; sub-second delays matter for the first retries.
        client.reconnect_delay_set(cast(int, delay), cast(int, delay))

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = self.settings.receive_maximum
        # MQTT 5 §3.1.2.11.4: the broker must not send us a larger packet (it drops it).
        props.MaximumPacketSize = self.settings.max_message_bytes
        return props

    # -- paho's network thread -------------------------------------------------------

    def _to_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # RuntimeError: the loop closed meanwhile (we are shutting down).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.error("MQTT broker refused the ingest: %s", reason_code)
            return
        if not flags.session_present and self.stats.connects > 0:
            self.stats.sessions_lost += 1
            logger.warning(
                "the broker had no session for %s: batches queued for the ingest while it "
                "was away are gone from the broker (gateways resend what got no ack)",
                self.settings.client_id,
            )
        self.stats.connects += 1
        self._generation += 1
        self._connected = True
        self._backoff.reset()
        logger.info(
            "connected to MQTT %s:%d (session present: %s)",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            flags.session_present,
        )
        # Also on a resumed session: harmless, and repairs a session the broker lost.
        client.subscribe(self.subscription, qos=1)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            logger.error("subscription to %s refused: %s", self.subscription, reason_codes)
            return
        if any(code.value == 0 for code in reason_codes):
            logger.warning("the broker granted only QoS 0 for %s", self.subscription)
        self._to_loop(self.subscribed.set)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected = False
        self._to_loop(self.subscribed.clear)
        if self._stopping:
            logger.info("disconnected from MQTT (the session stays at the broker)")
            return
        if reason_code.value == SESSION_TAKEN_OVER:
            # Not reconnecting: taking the session back would make the other instance do
            # the same, forever. disconnect() ends paho's reconnect loop.
            self._stopping = True
            self.stats.sessions_taken_over += 1
            client.disconnect()
            logger.error(
                "session taken over: another ingest connected with the same client id (%s); "
                "give each instance its own --client-id. This ingest stops.",
                self.settings.client_id,
            )
            if self._taken_over is not None:
                self._to_loop(self._taken_over.set)
            return
        delay = self._backoff.next_delay()
        self._set_reconnect_delay(client, delay)
        logger.warning("MQTT connection lost (%s); reconnecting in %.2f s", reason_code, delay)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        delay = self._backoff.next_delay()
        self._set_reconnect_delay(client, delay)
        logger.warning(
            "cannot reach MQTT %s:%d; retrying in %.2f s",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            delay,
        )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = ""
        size = len(message.payload)
        # Too large: not copied, only counted and acknowledged (see _handle).
        payload = b"" if size > self.settings.max_message_bytes else bytes(message.payload)
        item = _Inbound(
            -1, self._generation, message.mid, message.qos, topic, payload, message.dup, size
        )
        self._to_loop(self._enqueue, item)

    # -- the asyncio side --------------------------------------------------------------

    def _enqueue(self, item: _Inbound) -> None:
        if self._queue.full():
            # Only QoS 0 floods can get here. A QoS 1 message left without PUBACK would come
            # back after the next reconnect; a QoS 0 one is gone (its sender accepted that).
            self.stats.dropped_overflow += 1
            logger.warning("ingest queue full: dropped a message on %r", item.topic)
            return
        # Numbered here, on the loop, in the order paho received them.
        self._queue.put_nowait(dataclasses.replace(item, arrival=self._order.arrived()))

    async def run(self) -> None:
        """Connect, consume and commit until cancelled; then disconnect (session kept)."""
        self._loop = asyncio.get_running_loop()
        s = self.settings
        self._client.connect_async(
            s.mqtt_host,
            s.mqtt_port,
            keepalive=s.keepalive_s,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self._taken_over = asyncio.Event()
        self._client.loop_start()
        try:
            async with asyncio.TaskGroup() as group:
                for n in range(self.workers):
                    group.create_task(self._consume(), name=f"ingest-mqtt-worker-{n}")
                await self._taken_over.wait()
                raise IngestSessionTakenOver(
                    f"another ingest connected with the same client id "
                    f"({self.settings.client_id}); give each instance its own --client-id"
                )
        except ExceptionGroup as failures:
            if len(failures.exceptions) == 1:
                raise failures.exceptions[0] from None
            raise
        finally:
            self._connected = False
            self.subscribed.clear()
            # Unacknowledged messages stay in the broker's session for the next start.
            await asyncio.to_thread(self._stop_client)

    async def _consume(self) -> None:
        """One worker: takes the oldest message waiting, commits it, publishes its ack."""
        while True:
            item = await self._queue.get()
            try:
                await self._handle(item)
            finally:
                # Also on cancellation: the messages after it are not held back for nothing
                # (a message released without its commit gets no PUBACK: see _puback).
                for ready in self._order.done(item.arrival, item):
                    self._puback(ready)

    def _stop_client(self) -> None:
        self._stopping = True
        self._client.disconnect()
        stop_network_loop(self._client)

    async def _handle(self, item: _Inbound) -> None:
        self.stats.received += 1
        if item.dup:
            self.stats.redelivered += 1
        batch = self._decode(item)
        if batch is not None:
            ack = await self._commit(batch)
            if ack is not None:
                self._publish_ack(item.topic, batch, ack)
        self._handled.add(item.arrival)

    def _decode(self, item: _Inbound) -> Batch | None:
        if item.size > self.settings.max_message_bytes:
            self.stats.dropped_too_large += 1
            logger.warning(
                "dropped a message of %d bytes on %r: above the %d-byte limit",
                item.size,
                item.topic,
                self.settings.max_message_bytes,
            )
            return None
        try:
            batch = decode_message(item.payload)
        except ProtocolError as exc:
            self.stats.dropped_protocol += 1
            logger.warning("dropped a message on %r: %s", item.topic, exc)
            return None
        if topic_ids(item.topic) != (batch.site, batch.gateway, batch.stream):
            self.stats.dropped_topic += 1
            logger.warning(
                "dropped batch %s: its gateway/site/stream do not match topic %r",
                batch.batch_id,
                item.topic,
            )
            return None
        return batch

    async def _commit(self, batch: Batch) -> Ack | None:
        """Commit, retrying transient failures until it works (or we are cancelled)."""
        backoff = Backoff(initial=0.2, maximum=self.settings.reconnect_max_s)
        while True:
            try:
                return await self.warehouse.commit_batch(batch)
            except ProtocolError as exc:
                self.stats.dropped_protocol += 1
                logger.warning("dropped batch %s: %s", batch.batch_id, exc)
                return None
            except WarehouseUnavailable as exc:
                self.stats.commit_retries += 1
                delay = backoff.next_delay()
                logger.warning(
                    "warehouse unavailable (%s); batch %s retried in %.1f s",
                    exc,
                    batch.batch_id,
                    delay,
                )
                await asyncio.sleep(delay)
            except WarehouseError as exc:
                self.stats.failed += 1
                logger.error("warehouse refused batch %s: %s", batch.batch_id, exc)
                return None

    def _publish_ack(self, topic: str, batch: Batch, ack: Ack) -> None:
        self.stats.committed += 1
        ids = topic_ids(topic)
        if ids is None or ids != (batch.site, batch.gateway, batch.stream):  # _decode checked
            raise AssertionError(f"ack for a batch not of its topic {topic!r}")
        # The topic's gateway is the one the broker's ACL let publish there: its ack only.
        site, gateway, _ = ids
        payload = encode_ack(ack)
        properties = self._ack_properties(gateway, payload)
        info = self._client.publish(ack_topic(site, gateway), payload, qos=1, properties=properties)
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # NO_CONN: paho keeps QoS 1 messages and sends them after the reconnect.
            self.stats.acks_published += 1
        else:
            logger.warning("ack for %s not queued: %s", batch.batch_id, mqtt.error_string(info.rc))

    def _ack_properties(self, gateway: str, payload: bytes) -> Properties | None:
        """The ack's signature as a user property, when the gateway has an ack key."""
        keys = self.settings.ack_keys
        key = keys.key(gateway) if keys is not None else None
        if key is None:
            self.stats.acks_unsigned += 1
            if keys is not None and gateway not in self._unsigned_warned:
                self._unsigned_warned.add(gateway)
                logger.warning("no ack key for gateway %s: its acks go out unsigned", gateway)
            return None
        self.stats.acks_signed += 1
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = (ACK_SIGNATURE_PROPERTY, sign_ack(payload, key))
        return props

    def _puback(self, item: _Inbound) -> None:
        if item.arrival not in self._handled:
            return  # its worker was cancelled: the broker redelivers it
        self._handled.discard(item.arrival)
        if item.qos == 0:
            return
        if item.generation != self._generation:
            # Delivered on an earlier connection: the broker resends it, and we ack that.
            return
        self._client.ack(item.mid, item.qos)
