"""A site under attack, with real peers: the shipped broker configuration (mosquitto on a free
loopback port), the central ingest with its own broker login and gateway tokens, a SQLite
warehouse, and real gateways (a store and its uplink).

Identities: ``hull-gw1`` is the victim, ``hull-gw2`` a gateway of the same site turned
attacker (it has a real login and a real token, for itself); ``lineside-ingest`` and
``andon-board`` are the shipped ACL's service logins. An anonymous client has no login.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.store import Store
from sync.broker_auth import ANDON_BOARD_USER, INGEST_USER
from sync.ingest import IngestService, IngestSettings
from sync.mqtt_uplink import MqttUplink
from tests.support.gateway_tokens import tokens
from tests.support.mosquitto import Mosquitto
from tests.support.uplink_harness import running_uplink
from tests.support.waiting import wait_for, wait_for_sync

SITE = "hull"
VICTIM = "hull-gw1"
ATTACKER = "hull-gw2"
PASSWORDS = {
    VICTIM: "victim-password-1",
    ATTACKER: "attacker-password-2",
    INGEST_USER: "ingest-password-3",
    ANDON_BOARD_USER: "board-password-4",
}
NOT_AUTHORISED = 0x87
"""MQTT 5 reason code: the broker's answer to a login or publish its ACL refuses."""


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """mosquitto with the shipped config and ACL; debug logging so refusals show in its log."""
    with Mosquitto(
        tmp_path / "broker", users=PASSWORDS, persistence=True, extra_config="log_type debug"
    ) as broker:
        yield broker


@dataclass
class Ingest:
    service: IngestService
    warehouse: Path

    def records(self) -> list[tuple[str, int, str]]:
        """(gateway, seq, payload) of every stored record."""
        with contextlib.closing(sqlite3.connect(self.warehouse)) as db:
            rows = db.execute("SELECT gateway, seq, payload FROM records ORDER BY gateway, seq")
            return [(str(g), int(s), str(p)) for g, s, p in rows]

    def conflicts(self) -> int:
        with contextlib.closing(sqlite3.connect(self.warehouse)) as db:
            return int(db.execute("SELECT count(*) FROM conflicts").fetchone()[0])


@pytest.fixture
async def ingest(shipped_broker: Mosquitto, tmp_path: Path) -> AsyncIterator[Ingest]:
    """The central ingest on the shipped broker (its own login) and HTTP (gateway tokens)."""
    warehouse = tmp_path / "warehouse.db"
    service = IngestService(
        IngestSettings(
            mqtt_host=shipped_broker.host,
            mqtt_port=shipped_broker.port,
            username=INGEST_USER,
            password=PASSWORDS[INGEST_USER],
            reconnect_initial_s=0.05,
            reconnect_max_s=0.3,
            http_port=0,
            gateway_tokens=tokens(VICTIM, ATTACKER),
            sqlite_path=warehouse,
        )
    )
    task = asyncio.create_task(service.run())
    consumer = service.consumer
    assert consumer is not None
    await wait_for(lambda: task.done() or consumer.subscribed.is_set(), 15, "ingest subscribed")
    if task.done():
        task.result()
    try:
        yield Ingest(service, warehouse)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def gateway_uplink(
    store: Store,
    broker: Mosquitto,
    *,
    gateway: str = VICTIM,
    login: str | None = None,
    **options: Any,
) -> AsyncIterator[MqttUplink]:
    """A real gateway's MQTT uplink, logged in as ``login`` (its own id unless a test makes a
    gateway pose as another)."""
    user = login or gateway
    async with running_uplink(
        store,
        broker,
        site=SITE,
        gateway=gateway,
        username=user,
        password=PASSWORDS[user],
        **options,
    ) as uplink:
        yield uplink


@dataclass
class Client:
    """A raw MQTT 5 client (an attacker's tool, or a board): what the broker answered."""

    broker: Mosquitto
    username: str | None = None
    client_id: str = "raw-client"
    connack: int | None = None
    pubacks: dict[int, int] = field(default_factory=dict)
    subacks: list[list[int]] = field(default_factory=list)
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    disconnects: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        if self.username is not None:
            self.client.username_pw_set(self.username, PASSWORDS[self.username])
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connack = rc.value

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        with self._lock:
            self.pubacks[mid] = rc.value

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        self.subacks.append([code.value for code in codes])

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.disconnects.append(rc.value)

    def connect(self) -> int:
        """Connect; the CONNACK reason code (0: accepted)."""
        self.client.connect(self.broker.host, self.broker.port, keepalive=10)
        self.client.loop_start()
        wait_for_sync(lambda: self.connack is not None, 5, "CONNACK")
        assert self.connack is not None
        return self.connack

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Publish at QoS 1; the PUBACK's reason code (0x87: refused by the ACL)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        wait_for_sync(lambda: info.mid in self.pubacks, 5, f"PUBACK for {topic}")
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> None:
        count = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        wait_for_sync(lambda: len(self.subacks) > count, 5, f"SUBACK for {topic}")

    def topics(self) -> set[str]:
        with self._lock:
            return {topic for topic, _, _ in self.messages}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(shipped_broker: Mosquitto) -> Iterator[list[Client]]:
    """Raw clients made by a test (``clients.append(...)``), closed at its end."""
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


async def quarantined(store: Store) -> list[tuple[int, str]]:
    """(seq, reason) of every record in the gateway's outbox quarantine."""
    tables = await store.fetchall(
        "SELECT count(*) FROM sqlite_master WHERE name = 'outbox_quarantine'"
    )
    if not tables[0][0]:
        return []
    rows = await store.fetchall("SELECT seq, reason FROM outbox_quarantine ORDER BY seq")
    return [(int(seq), str(reason)) for seq, reason in rows]


async def alerts(store: Store, rule: str) -> list[str]:
    """The states of the gateway's alerts of ``rule`` (raised, cleared, ...), in order."""
    rows = await store.fetchall("SELECT state FROM alerts WHERE rule = ? ORDER BY seq", (rule,))
    return [str(state) for (state,) in rows]


async def has_alert(store: Store, rule: str) -> bool:
    """Whether the gateway stored an alert of ``rule``."""
    return bool(await alerts(store, rule))


async def outbox_empty(store: Store) -> bool:
    rows = await store.fetchall("SELECT count(*) FROM outbox")
    return int(rows[0][0]) == 0
