"""paho's callbacks become one frozen event each (sync/mqtt_client.py, sync/mqtt_events.py)."""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from sync.mqtt_client import ClientSettings, new_client
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
from sync.protocol import ACK_SIGNATURE_PROPERTY

SETTINGS = ClientSettings(
    client_id="lineside-gw-test",
    status_topic="lineside/site/gw-test/status",
    max_inflight=20,
    max_queued=100,
    connect_timeout_s=5.0,
)


def _callbacks(events: list[MqttEvent], generation: int) -> Any:
    # The callbacks as paho's network thread calls them (paho types them loosely).
    return new_client(SETTINGS, events.append, generation)


def test_each_callback_posts_its_own_event_tagged_with_the_generation() -> None:
    events: list[MqttEvent] = []
    client = _callbacks(events, 7)
    ok = ReasonCode(PacketTypes.CONNACK, identifier=0)
    granted = ReasonCode(PacketTypes.SUBACK, identifier=1)
    refused = ReasonCode(PacketTypes.PUBACK, identifier=0x87)
    gone = ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E)
    client.on_connect(client, None, types.SimpleNamespace(session_present=False), ok, None)
    client.on_subscribe(client, None, 3, [granted], None)
    client.on_publish(client, None, 4, refused, None)
    client.on_unsubscribe(client, None, 5, [], None)
    client.on_disconnect(client, None, None, gone, None)
    assert events == [
        ConnAck(7, ok, session_present=False),
        SubAck(7, 3, (granted,)),
        PubAck(7, 4, refused),
        UnsubAck(7, 5),
        Disconnect(7, gone),
    ]


def test_a_message_carries_its_topic_payload_and_single_signature() -> None:
    events: list[MqttEvent] = []
    client = _callbacks(events, 2)
    topic = "lineside/site/gw-test/ack"
    for signatures in (["abc"], ["a", "b"], []):
        client.on_message(
            client,
            None,
            types.SimpleNamespace(
                topic=topic,
                payload=bytearray(b"{}"),
                properties=types.SimpleNamespace(
                    UserProperty=[(ACK_SIGNATURE_PROPERTY, sig) for sig in signatures]
                ),
            ),
        )
    assert events == [
        Message(2, topic, b"{}", "abc"),
        Message(2, topic, b"{}", None),  # two signatures: ambiguous, none
        Message(2, topic, b"{}", None),
    ]
    assert all(type(event.payload) is bytes for event in events if isinstance(event, Message))


@pytest.mark.parametrize("event", [Wake(), UnsubAck(1, 2), Message(1, "t", b"", None)])
def test_events_are_frozen(event: MqttEvent) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.generation = 5  # type: ignore[misc]
