"""What paho's network thread hands to the MQTT uplink: one frozen event per callback.

Every paho callback only copies its arguments into one of these and posts it to the event
loop (:func:`sync.mqtt_client.new_client`); the uplink dispatches on the type with
``match``. ``generation`` is the connection the event belongs to, so a late callback of an
old client is told apart from the current one's.
"""

from __future__ import annotations

from dataclasses import dataclass

from paho.mqtt.reasoncodes import ReasonCode


@dataclass(frozen=True, slots=True)
class ConnAck:
    """``on_connect``: the broker's CONNACK."""

    generation: int
    rc: ReasonCode
    session_present: bool
    max_packet: int | None = None
    """The broker's Maximum Packet Size (MQTT 5 CONNACK property), if it announced one."""


@dataclass(frozen=True, slots=True)
class SubAck:
    """``on_subscribe``: the broker's SUBACK."""

    generation: int
    mid: int
    codes: tuple[ReasonCode, ...]


@dataclass(frozen=True, slots=True)
class PubAck:
    """``on_publish``: the broker's PUBACK (it has the message; nothing is deleted for it)."""

    generation: int
    mid: int
    rc: ReasonCode


@dataclass(frozen=True, slots=True)
class Message:
    """``on_message``: a message on a subscribed topic (an ack)."""

    generation: int
    topic: str
    payload: bytes
    signature: str | None
    """The ack signature user property, if the message has exactly one."""


@dataclass(frozen=True, slots=True)
class UnsubAck:
    """``on_unsubscribe``: the answer to a liveness probe."""

    generation: int
    mid: int


@dataclass(frozen=True, slots=True)
class Disconnect:
    """``on_disconnect``: the connection is gone."""

    generation: int
    rc: ReasonCode


@dataclass(frozen=True, slots=True)
class Wake:
    """Not from paho: something to publish (an andon change, a new alert) or a stop."""

    generation: int = -1


MqttEvent = ConnAck | SubAck | PubAck | Message | UnsubAck | Disconnect | Wake
"""Everything the uplink's event queue carries."""


__all__ = [
    "ConnAck",
    "Disconnect",
    "Message",
    "MqttEvent",
    "PubAck",
    "SubAck",
    "UnsubAck",
    "Wake",
]
