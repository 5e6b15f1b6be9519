"""The paho side of the MQTT uplink: a fresh client per connection and the bridge that turns
its callbacks into :mod:`sync.mqtt_events` on the event loop.

paho (docs/reference/reliability.md §3.2): CallbackAPIVersion.VERSION2, MQTT 5, QoS 1,
``reconnect_on_failure=False`` (the uplink reconnects with its own capped backoff), a
retained last will ``offline``. Callbacks run on paho's network thread: they copy their
arguments into a frozen event and hand it over with ``loop.call_soon_threadsafe``, touching
nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sync.mqtt_events import (
    ConnAck,
    Disconnect,
    Message,
    MqttEvent,
    PubAck,
    SubAck,
    UnsubAck,
)
from sync.paho_poll import install as watch_any_descriptor
from sync.paho_tls import closing_on_failed_handshake
from sync.protocol import ACK_SIGNATURE_PROPERTY, MAX_ACK_BYTES

OFFLINE = b"offline"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How every client of one uplink is set up."""

    client_id: str
    status_topic: str
    """The retained last will ``offline`` goes here."""
    max_inflight: int
    max_queued: int
    connect_timeout_s: float
    username: str | None = None
    password: str | None = None
    tls_context: ssl.SSLContext | None = None


@dataclass(slots=True)
class Connection:
    """One connection's state; a new one (and a new client) per connect."""

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


def new_client(
    settings: ClientSettings, post: Callable[[MqttEvent], None], generation: int
) -> mqtt.Client:
    """A paho client whose callbacks post :mod:`sync.mqtt_events` tagged ``generation``."""
    watch_any_descriptor()  # paho's select() cannot watch descriptors above 1023
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        reconnect_on_failure=False,
    )
    client.max_inflight_messages_set(settings.max_inflight)
    client.max_queued_messages_set(settings.max_queued)
    client.connect_timeout = settings.connect_timeout_s
    client.will_set(settings.status_topic, OFFLINE, qos=1, retain=True)
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls_context is not None:
        # A refused handshake closes its socket at once (sync/paho_tls.py).
        client.tls_set_context(closing_on_failed_handshake(settings.tls_context))

    def on_connect(
        _c: mqtt.Client, _u: object, flags: Any, rc: ReasonCode, props: Properties | None
    ) -> None:
        max_packet = getattr(props, "MaximumPacketSize", None) if props is not None else None
        post(
            ConnAck(
                generation,
                rc,
                bool(flags.session_present),
                max_packet if isinstance(max_packet, int) and max_packet > 0 else None,
            )
        )

    def on_subscribe(
        _c: mqtt.Client, _u: object, mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        post(SubAck(generation, mid, tuple(codes)))

    def on_publish(_c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: Properties) -> None:
        post(PubAck(generation, mid, rc))

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        post(Message(generation, message.topic, bytes(message.payload), _signature(message)))

    def on_unsubscribe(
        _c: mqtt.Client, _u: object, mid: int, _codes: Any, _p: Properties | None
    ) -> None:
        post(UnsubAck(generation, mid))

    def on_disconnect(
        _c: mqtt.Client, _u: object, _f: Any, rc: ReasonCode, _p: Properties | None
    ) -> None:
        post(Disconnect(generation, rc))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message
    client.on_unsubscribe = on_unsubscribe
    client.on_disconnect = on_disconnect
    client.on_socket_open = _set_nodelay
    return client


def poster(
    loop: asyncio.AbstractEventLoop | None, events: asyncio.Queue[MqttEvent]
) -> Callable[[MqttEvent], None]:
    """What paho's callbacks call: hand the event to the loop, or drop it if it is closed."""

    def post(event: MqttEvent) -> None:
        # Runs on paho's network thread: hand over to the event loop, touch nothing else.
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            loop.call_soon_threadsafe(events.put_nowait, event)

    return post


async def offline_sent(events: asyncio.Queue[MqttEvent], generation: int, mid: int) -> None:
    """Wait for the PUBACK of message ``mid`` (the last ``offline``) or the connection's end."""
    while True:
        match await events.get():
            case Disconnect(generation=g) if g == generation:
                return
            case PubAck(generation=g, mid=acked) if g == generation and acked == mid:
                return
            case _:
                continue


def connect_properties() -> Properties:
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


__all__ = [
    "OFFLINE",
    "ClientSettings",
    "Connection",
    "connect_properties",
    "new_client",
    "offline_sent",
    "poster",
]
