"""Several ingest instances behind one MQTT shared subscription, against a real mosquitto.

What is proven: with ``share_group`` each instance subscribes to
``$share/<group>/lineside/v1/+/gateways/+/data/+``; the broker hands each batch to one of
them, with its original topic (so the topic check and the ack's topic still work); every
batch is committed once and acknowledged. Under the shipped broker config
(``use_username_as_clientid``, the shipped ACL) two ingest logins may both share the
subscription, and a gateway's login may not. A batch committed by an instance that died
before its PUBACK, resent by its gateway and taken by another instance, is a duplicate:
stored once, acknowledged again by the other instance. One instance commits several batches
at once: a later batch may commit (and be acknowledged to its gateway) first, and the
PUBACKs still go out in the order the PUBLISHes arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sync.ingest import IngestService, IngestSettings
from sync.ingest.mqtt_consumer import topic_ids
from sync.ingest.warehouse import SqliteWarehouse, Warehouse, payload_sha256
from sync.protocol import (
    Ack,
    Batch,
    ack_topic,
    data_topic,
    decode_ack,
    encode_batch,
    shared_subscription,
)
from tests.integration.test_ingest import pack
from tests.support.cli_runs import lineside_async
from tests.support.gateway_tokens import tokens
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.waiting import wait_for

SITE = "hull"
GATEWAYS = ("hull-gw1", "hull-gw2", "hull-gw3")
GROUP = "fleet"
INGEST_USERS = {"lineside-ingest-1": "pw-ingest-1", "lineside-ingest-2": "pw-ingest-2"}


def batch(gateway: str, first: int, n: int = 3) -> Batch:
    return Batch(gateway, SITE, "packs", tuple((s, pack(s)) for s in range(first, first + n)))


class Gateways:
    """The gateways' side of the wire: publishes batches, collects every gateway's acks."""

    def __init__(self, broker: Mosquitto, *, username: str | None = None) -> None:
        self.acks: list[Ack] = []
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=username or f"test-gateways-{secrets.token_hex(3)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, f"pw-{username}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.username = username
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        gateway = self.username or "+"
        client.subscribe(ack_topic(SITE, gateway), qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.acks.append(decode_ack(bytes(message.payload)))

    def publish(self, sent: Batch) -> None:
        topic = data_topic(sent.site, sent.gateway, sent.stream)
        info = self.client.publish(topic, encode_batch(sent), qos=1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS

    def acked(self, batch_id: str) -> list[Ack]:
        with self._lock:
            return [ack for ack in self.acks if ack.batch_id == batch_id]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def open_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", persistence=True) as broker:
        yield broker


@pytest.fixture
async def gateways(open_broker: Mosquitto) -> AsyncIterator[Gateways]:
    """The gateways' client, subscribed to every gateway's acks."""
    client = Gateways(open_broker)
    try:
        await wait_for(client.subscribed.is_set, 10, "the gateways subscribed")
        yield client
    finally:
        client.close()


@pytest.fixture
async def warehouse(tmp_path: Path) -> AsyncIterator[SqliteWarehouse]:
    """One warehouse every instance writes to (the database is shared in production too)."""
    opened = SqliteWarehouse(tmp_path / "warehouse.db")
    await opened.open()
    yield opened
    await opened.close()


def settings(broker: Mosquitto, client_id: str, **overrides: Any) -> IngestSettings:
    return IngestSettings(
        **{
            "mqtt_host": broker.host,
            "mqtt_port": broker.port,
            "client_id": client_id,
            "share_group": GROUP,
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.3,
            "http_enabled": False,
            **overrides,
        }
    )


@contextlib.asynccontextmanager
async def running(
    warehouse: Warehouse, *all_settings: IngestSettings
) -> AsyncIterator[list[IngestService]]:
    """Ingest instances on one warehouse, each subscribed; cancelled on the way out."""
    services = [IngestService(s, warehouse=warehouse) for s in all_settings]
    tasks = [
        asyncio.create_task(service.run(), name=f"ingest-{service.settings.client_id}")
        for service in services
    ]
    try:
        for service, task in zip(services, tasks, strict=True):
            await wait_for(_up(service, task), 15, f"{service.settings.client_id} subscribed")
            if task.done():
                task.result()
        yield services
    finally:
        for task in tasks:
            await stop(task)


def _up(service: IngestService, task: asyncio.Task[None]) -> Callable[[], bool]:
    consumer = service.consumer
    assert consumer is not None
    return lambda: task.done() or consumer.subscribed.is_set()


async def healthz(service: IngestService) -> dict[str, Any]:
    """The instance's ``GET /v1/healthz`` answer."""
    base = f"http://127.0.0.1:{service.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        answer = await http.get("/v1/healthz")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_the_shared_filter_is_the_data_subscription_under_share() -> None:
    assert shared_subscription("fleet") == "$share/fleet/lineside/v1/+/gateways/+/data/+"
    for bad in ("", "a/b", "a+", "#", "x" * 65, "é"):
        with pytest.raises(ValueError, match="share group"):
            shared_subscription(bad)
        with pytest.raises(ValueError, match="share_group"):
            IngestSettings(share_group=bad)


async def test_two_instances_share_the_batches_each_committed_once(
    open_broker: Mosquitto, warehouse: SqliteWarehouse, gateways: Gateways
) -> None:
    with_http = {"http_enabled": True, "http_port": 0, "gateway_tokens": tokens(*GATEWAYS)}
    async with running(
        warehouse,
        settings(open_broker, "lineside-ingest-a", **with_http),
        settings(open_broker, "lineside-ingest-b", **with_http),
    ) as services:
        sent = [batch(gw, 1 + 10 * i) for i in range(6) for gw in GATEWAYS]
        for b in sent:
            gateways.publish(b)
        await wait_for(lambda: len(gateways.acks) >= len(sent), 20, "every batch acked")
        stats = [s.consumer.stats for s in services if s.consumer is not None]
        health = [await healthz(s) for s in services]

    # Each instance says who it is and how many batches it took.
    consumers = [h["consumer"] for h in health]
    assert [c["client_id"] for c in consumers] == ["lineside-ingest-a", "lineside-ingest-b"]
    assert all(c["share_group"] == GROUP and c["connected"] is True for c in consumers)
    assert [c["received"] for c in consumers] == [st.received for st in stats]
    assert sum(c["committed"] for c in consumers) == len(sent)
    assert all(h["mqtt"] == "connected" and h["status"] == "ok" for h in health)

    # Each batch went to one instance only, which took its (original) topic apart.
    assert sum(st.received for st in stats) == len(sent)
    assert all(st.received > 0 for st in stats), [st.received for st in stats]
    assert sum(st.committed for st in stats) == len(sent)
    assert sum(st.dropped_topic for st in stats) == 0
    assert sorted(a.batch_id for a in gateways.acks) == sorted(b.batch_id for b in sent)
    for b in sent:
        [ack] = gateways.acked(b.batch_id)
        assert ack == Ack(b.gateway, b.batch_id, tuple(s for s, _ in b.records), ())
    for gw in GATEWAYS:
        mine = [b for b in sent if b.gateway == gw]
        expected = {seq: payload_sha256(data) for b in mine for seq, data in b.records}
        assert await warehouse.record_hashes(gw) == expected
    assert warehouse.stats.duplicates == 0


def test_topic_ids_of_a_delivered_shared_message_name_the_gateway() -> None:
    # The broker delivers the publisher's topic, never the $share filter.
    assert topic_ids(data_topic(SITE, "hull-gw1", "packs")) == (SITE, "hull-gw1", "packs")
    assert topic_ids(shared_subscription(GROUP)) is None


class Wrapping:
    """A warehouse around a real one (its ``commit_batch`` changed by a subclass)."""

    def __init__(self, inner: Warehouse) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.stats = inner.stats

    async def ping(self) -> None:
        await self.inner.ping()


class CommitsThenHangs(Wrapping):
    """Commits the batch, then never returns: the instance dies before its PUBACK."""

    def __init__(self, inner: Warehouse) -> None:
        super().__init__(inner)
        self.committed = asyncio.Event()

    async def commit_batch(self, sent: Batch, *, idempotency_key: str | None = None) -> Ack:
        await self.inner.commit_batch(sent, idempotency_key=idempotency_key)
        self.committed.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_batch_resent_after_an_instance_died_is_a_duplicate_at_the_other(
    open_broker: Mosquitto, warehouse: SqliteWarehouse, gateways: Gateways
) -> None:
    dying = CommitsThenHangs(warehouse)
    async with running(
        dying,  # type: ignore[arg-type]
        settings(open_broker, "lineside-ingest-a"),
    ) as [first]:
        sent = batch("hull-gw2", 100)
        gateways.publish(sent)
        await asyncio.wait_for(dying.committed.wait(), 15)
    # Committed, never acknowledged: the gateway resends after its ack timeout. The
    # broker may queue a resend in the dead instance's session (it round-robins over
    # the group's sessions, connected or not): the gateway resends until acked.
    assert gateways.acked(sent.batch_id) == []
    async with running(warehouse, settings(open_broker, "lineside-ingest-b")) as [second]:
        assert second.consumer is not None

        async def acked_or_resent() -> bool:
            if gateways.acked(sent.batch_id):
                return True
            gateways.publish(sent)  # as the gateway does after each ack timeout
            return False

        await wait_for(
            acked_or_resent, 20, "the resent batch acked by the other instance", interval=0.5
        )
        assert second.consumer.stats.committed >= 1
    assert first.consumer is not None
    assert first.consumer.stats.committed == 0
    [ack, *_] = gateways.acked(sent.batch_id)
    assert ack == Ack("hull-gw2", sent.batch_id, (100, 101, 102), ())
    assert await warehouse.record_hashes("hull-gw2") == {
        seq: payload_sha256(data) for seq, data in sent.records
    }
    assert warehouse.stats.inserted == 3
    assert warehouse.stats.duplicates >= 3


async def test_the_shipped_acl_lets_ingest_logins_share_and_no_gateway(
    tmp_path: Path, warehouse: SqliteWarehouse
) -> None:
    users = {**INGEST_USERS, "hull-gw1": "pw-hull-gw1", "hull-gw2": "pw-hull-gw2"}
    with Mosquitto(tmp_path / "shipped", users=users) as broker:
        # Another gateway's login trying to read every batch through a shared filter.
        snoop_got: list[str] = []
        snoop = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="hull-gw2", protocol=MQTTProtocolVersion.MQTTv5
        )
        snoop.username_pw_set("hull-gw2", "pw-hull-gw2")
        snoop.on_message = lambda c, u, m: snoop_got.append(m.topic)
        snoop_subscribed = threading.Event()
        granted: list[int] = []

        def on_subscribe(c: Any, u: Any, mid: int, codes: list[Any], p: Any) -> None:
            granted.extend(code.value for code in codes)
            snoop_subscribed.set()

        snoop.on_subscribe = on_subscribe
        props = Properties(PacketTypes.CONNECT)
        snoop.connect(broker.host, broker.port, keepalive=10, properties=props)
        snoop.loop_start()
        snoop.subscribe(f"$share/snoop/{data_topic('+', '+', '+')}", qos=1)
        gateway = Gateways(broker, username="hull-gw1")
        try:
            await wait_for(snoop_subscribed.is_set, 10, "the gateway login's subscription answered")
            await wait_for(gateway.subscribed.is_set, 10, "the gateway subscribed to its acks")
            instances = [
                settings(broker, name, username=name, password=password)
                for name, password in INGEST_USERS.items()
            ]
            async with running(warehouse, *instances) as services:
                sent = [batch("hull-gw1", 1 + 10 * i) for i in range(6)]
                for b in sent:
                    gateway.publish(b)
                await wait_for(lambda: len(gateway.acks) >= len(sent), 20, "every batch acked")
                received = [s.consumer.stats.received for s in services if s.consumer]
        finally:
            gateway.close()
            snoop.disconnect()
            snoop.loop_stop()
    assert sum(received) == len(sent)
    assert all(n > 0 for n in received), received
    assert sorted(a.batch_id for a in gateway.acks) == sorted(b.batch_id for b in sent)
    # The ACL refuses a gateway's login the other gateways' batches, shared or not.
    assert snoop_got == [], snoop_got


class FirstWaitsForSecond(Wrapping):
    """Two commits at once: the first batch's commit waits until the second one's is done."""

    def __init__(self, inner: Warehouse) -> None:
        super().__init__(inner)
        self.workers = 2
        self.order: list[str] = []
        self._second_done = asyncio.Event()
        self._calls = 0

    async def commit_batch(self, sent: Batch, *, idempotency_key: str | None = None) -> Ack:
        self._calls += 1
        first = self._calls == 1
        if first:
            await self._second_done.wait()
        ack = await self.inner.commit_batch(sent, idempotency_key=idempotency_key)
        self.order.append(sent.batch_id)
        if not first:
            self._second_done.set()
        return ack


async def test_batches_commit_concurrently_and_pubacks_keep_arrival_order(
    open_broker: Mosquitto, warehouse: SqliteWarehouse, gateways: Gateways
) -> None:
    held = FirstWaitsForSecond(warehouse)
    async with running(
        held,  # type: ignore[arg-type]
        settings(open_broker, "lineside-ingest-a", share_group=None),
    ) as [service]:
        consumer = service.consumer
        assert consumer is not None
        assert consumer.workers == 2
        pubacks: list[int] = []
        received: list[int] = []
        client_ack = consumer._client.ack
        on_message = consumer._client.on_message

        def spy_ack(mid: int, qos: int) -> MQTTErrorCode:
            pubacks.append(mid)
            return client_ack(mid, qos)

        def spy_message(client: mqtt.Client, userdata: Any, message: Any) -> None:
            received.append(message.mid)
            assert on_message is not None
            on_message(client, userdata, message)

        consumer._client.ack = spy_ack  # type: ignore[method-assign]
        consumer._client.on_message = spy_message
        first, second = batch("hull-gw1", 1), batch("hull-gw1", 4)
        gateways.publish(first)
        gateways.publish(second)
        await wait_for(lambda: len(pubacks) >= 2, 15, "both messages PUBACKed")
        # The acks travel to the gateways' client on their own: wait for both to arrive.
        await wait_for(lambda: len(gateways.acks) >= 2, 15, "both batches acked")
    # The second batch committed (and was acked to its gateway) first; the PUBACKs still
    # went out in the order the PUBLISHes came in.
    assert held.order == [second.batch_id, first.batch_id]
    assert [a.batch_id for a in gateways.acks] == [second.batch_id, first.batch_id]
    assert pubacks == received
    assert sorted(await warehouse.record_hashes("hull-gw1")) == [1, 2, 3, 4, 5, 6]


async def test_an_instance_that_ended_its_session_takes_no_more_share(
    open_broker: Mosquitto, warehouse: SqliteWarehouse, gateways: Gateways
) -> None:
    gone = settings(open_broker, "lineside-ingest-gone")
    async with running(warehouse, gone):
        pass  # subscribed once, then stopped: its persistent session stays at the broker
    async with running(warehouse, settings(open_broker, "lineside-ingest-stays")) as [stays]:
        # While its session lives, the broker keeps queuing a share for the stopped instance.
        before = [batch("hull-gw1", 1 + 10 * i) for i in range(10)]
        for b in before:
            gateways.publish(b)
        # The instance leaves for good, as an operator removes it.
        ended = await lineside_async(
            "ingest",
            "--end-session",
            "--client-id",
            gone.client_id,
            "--mqtt-port",
            str(open_broker.port),
            "--no-http",
        )
        assert ended.returncode == 0, ended.stderr
        assert f"ended the broker session of {gone.client_id}" in ended.stdout
        after = [batch("hull-gw2", 1 + 10 * i) for i in range(10)]
        for b in after:
            gateways.publish(b)
        await wait_for(
            lambda: all(gateways.acked(b.batch_id) for b in after), 20, "the later batches acked"
        )
        consumer = stays.consumer
        assert consumer is not None
        committed = consumer.stats.committed

    # Every later batch went to the instance that stays; of the earlier ones, the share queued
    # for the stopped instance went with its session (its gateway resends them in production).
    acked_before = [b for b in before if gateways.acked(b.batch_id)]
    assert 0 < len(acked_before) < len(before)
    assert committed == len(acked_before) + len(after)


async def test_end_session_says_why_it_failed() -> None:
    ended = await lineside_async(
        "ingest", "--end-session", "--mqtt-port", str(free_port()), "--no-http"
    )
    assert ended.returncode == 1
    assert "lineside ingest --end-session: broker 127.0.0.1:" in ended.stderr
    assert "unreachable" in ended.stderr
