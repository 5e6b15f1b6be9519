"""The central ingest against a real mosquitto (tests/mosquitto.py) and a real PostgreSQL.

PostgreSQL (127.0.0.1:5432, superuser ``postgres``, trust auth) gets a fresh database for
this module, dropped afterwards; there is no skip: a missing PostgreSQL fails the suite. The
core tests run against both warehouses (PostgreSQL and the embedded SQLite).

What is proven (docs/reference/reliability.md §7 rows 3, 4, 16): a batch is committed exactly once
and acked on the ack topic; a redelivered or resent batch is acked again and stored once (duplicates
counted); the same sequence with a different payload is flagged and not acked as committed;
HTTP ingest is idempotent under its Idempotency-Key; an ingest cancelled between receiving
and committing leaves the message to the broker's persistent session, which redelivers it
(also across a broker restart) and the record lands exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import sqlite3
import threading
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg import sql

from sync.ingest import IngestService, IngestSettings, run_ingest
from sync.ingest.migrations.typed_ddl import TABLES
from sync.ingest.mqtt_consumer import topic_ids
from sync.ingest.warehouse import (
    REASON_DIFFERENT_PAYLOAD,
    REASON_DIFFERENT_STREAM,
    PostgresWarehouse,
    SqliteWarehouse,
    Warehouse,
    WarehouseStats,
    WarehouseUnavailable,
    payload_sha256,
)
from sync.protocol import (
    Ack,
    Batch,
    ProtocolError,
    ack_topic,
    data_topic,
    decode_ack,
    encode_ack,
    encode_batch,
)
from tests.support.gateway_tokens import bearer, tokens
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

PG_HOST, PG_PORT = "127.0.0.1", 5432
GW, SITE = "hull-gw1", "hull"
TS0 = 1_750_000_000_000_000  # 2025-06-15T15:06:40Z, µs
HOUR = 3_600_000_000


def pack(
    seq: int, *, net_g: float = 251.5, run: str = "R1001", ts_us: int | None = None
) -> dict[str, Any]:
    """A ``packs`` record as the gateway's outbox sends it (edge columns, BLOBs as hex)."""
    return {
        "ts_us": TS0 + seq * 1000 if ts_us is None else ts_us,
        "line": "L1",
        "device": "cw1",
        "run_number": run,
        "pack_counter": seq,
        "net_g": net_g,
        "gross_g": net_g + 12.0,
        "tare_g": 12.0,
        "accepted": 1,
        "label_seq": None,
        "flags": 0,
        "nominal_g": 250.0,
    }


def make_batch(seqs: list[int], *, stream: str = "packs", **fields: Any) -> Batch:
    return Batch(GW, SITE, stream, tuple((seq, pack(seq, **fields)) for seq in seqs))


# --------------------------------------------------------------------------------------
# Fixtures: PostgreSQL database, warehouses, broker, a gateway's MQTT client, the ingest


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A fresh database for this module (no skip: PostgreSQL must be there)."""
    name = f"lineside_ingest_{secrets.token_hex(4)}"
    admin = psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    )
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


async def _open_warehouse(kind: str, pg_dsn: str, tmp_path: Path) -> Warehouse:
    if kind == "postgres":
        warehouse: Warehouse = PostgresWarehouse(pg_dsn)
        await warehouse.open()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"TRUNCATE records, conflicts, {', '.join(t.name for t in TABLES)}")
        return warehouse
    warehouse = SqliteWarehouse(tmp_path / "warehouse" / "ingest.db")
    await warehouse.open()
    return warehouse


@pytest.fixture(params=["postgres", "sqlite"])
async def warehouse(
    request: pytest.FixtureRequest, pg_dsn: str, tmp_path: Path
) -> AsyncIterator[Warehouse]:
    """Each warehouse implementation, empty."""
    opened = await _open_warehouse(request.param, pg_dsn, tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_warehouse(tmp_path: Path) -> AsyncIterator[Warehouse]:
    """The embedded warehouse only, for tests about the transport rather than the database."""
    opened = SqliteWarehouse(tmp_path / "warehouse" / "ingest.db")
    await opened.open()
    yield opened
    await opened.close()


def rows(warehouse: Warehouse, query: str, *params: object) -> list[tuple[Any, ...]]:
    """A raw query on either warehouse (``%s`` placeholders)."""
    if isinstance(warehouse, PostgresWarehouse):
        with psycopg.connect(warehouse._conninfo, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()
    assert isinstance(warehouse, SqliteWarehouse)
    with contextlib.closing(sqlite3.connect(warehouse.path)) as db:
        return db.execute(query.replace("%s", "?"), params).fetchall()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real broker on an ephemeral loopback port, with persistence (restartable)."""
    with Mosquitto(tmp_path / "mosquitto", persistence=True) as broker:
        yield broker


class GatewayClient:
    """The gateway's side of the wire: publishes batches, collects acks (persistent session)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.acks: list[Ack] = []
        self.subscriptions = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-gateway-{secrets.token_hex(3)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async(
            broker.host, broker.port, keepalive=10, clean_start=False, properties=props
        )
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(ack_topic(SITE, GW), qos=1)

    def _on_subscribe(self, *_: Any) -> None:
        with self._lock:
            self.subscriptions += 1

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.acks.append(decode_ack(bytes(message.payload)))

    def publish(self, batch: Batch, payload: bytes | None = None, topic: str | None = None) -> None:
        topic = topic or data_topic(batch.site, batch.gateway, batch.stream)
        info = self.client.publish(
            topic, encode_batch(batch) if payload is None else payload, qos=1
        )
        assert info.rc == mqtt.MQTT_ERR_SUCCESS

    async def wait_acks(self, n: int) -> list[Ack]:
        await wait_for(lambda: len(self.acks) >= n)
        return list(self.acks)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
async def gateway(mosquitto: Mosquitto) -> AsyncIterator[GatewayClient]:
    """A connected gateway client, subscribed to its ack topic."""
    client = GatewayClient(mosquitto)
    await wait_for(lambda: client.subscriptions >= 1)
    yield client
    client.close()


Start = Callable[..., Awaitable[tuple[IngestService, "asyncio.Task[None]"]]]


@pytest.fixture
async def start_ingest(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Start]:
    """Start an ingest service on a warehouse; returns it and its task (cancelled at the end)."""
    tasks: list[asyncio.Task[None]] = []

    async def start(warehouse: Any, **overrides: Any) -> tuple[IngestService, asyncio.Task[None]]:
        settings = IngestSettings(
            **{
                "mqtt_host": mosquitto.host,
                "mqtt_port": mosquitto.port,
                "client_id": "lineside-ingest-test",
                "reconnect_initial_s": 0.05,
                "reconnect_max_s": 0.3,
                "http_port": 0,
                "sqlite_path": tmp_path / "unused.db",
                "gateway_tokens": tokens(GW),
                **overrides,
            }
        )
        service = IngestService(settings, warehouse=warehouse)
        task = asyncio.create_task(service.run())
        tasks.append(task)
        consumer = service.consumer

        def up() -> bool:
            subscribed = consumer is None or consumer.subscribed.is_set()
            return task.done() or (service.ready.is_set() and subscribed)

        await wait_for(up)
        if task.done():
            task.result()
        return service, task

    yield start
    for task in tasks:
        await stop(task)


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel a running ingest and wait until it has shut down."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# --------------------------------------------------------------------------------------
# MQTT: exactly once, acked after commit


async def test_a_published_batch_is_committed_once_and_acked(
    warehouse: Warehouse, start_ingest: Start, gateway: GatewayClient
) -> None:
    service, task = await start_ingest(warehouse)
    batch = make_batch([1, 2, 3])
    gateway.publish(batch)
    [ack] = await gateway.wait_acks(1)

    assert ack == Ack(GW, batch.batch_id, (1, 2, 3), ())
    assert await warehouse.record_hashes(GW) == {seq: payload_sha256(d) for seq, d in batch.records}
    assert (warehouse.stats.inserted, warehouse.stats.duplicates) == (3, 0)
    # The typed view mirrors the edge columns.
    assert rows(
        warehouse, "SELECT seq, run_number, line, net_g, accepted FROM packs ORDER BY seq"
    ) == [
        (1, "R1001", "L1", 251.5, 1),
        (2, "R1001", "L1", 251.5, 1),
        (3, "R1001", "L1", 251.5, 1),
    ]

    # The message was PUBACKed after the commit: a restarted ingest gets only new messages
    # (a redelivery would arrive before the next batch: the broker keeps order).
    await stop(task)
    service, _ = await start_ingest(warehouse)
    gateway.publish(make_batch([4]))
    await gateway.wait_acks(2)
    assert service.consumer is not None
    assert service.consumer.stats.received == 1
    assert service.consumer.stats.redelivered == 0


async def test_the_same_batch_twice_is_stored_once_and_acked_twice(
    warehouse: Warehouse, start_ingest: Start, gateway: GatewayClient
) -> None:
    service, _ = await start_ingest(warehouse)
    batch = make_batch([10, 11, 12])
    gateway.publish(batch)
    gateway.publish(batch)
    acks = await gateway.wait_acks(2)

    assert acks == [Ack(GW, batch.batch_id, (10, 11, 12), ())] * 2
    assert sorted(await warehouse.record_hashes(GW)) == [10, 11, 12]
    assert rows(warehouse, "SELECT count(*) FROM records WHERE gateway = %s", GW) == [(3,)]
    assert (warehouse.stats.inserted, warehouse.stats.duplicates) == (3, 3)
    assert service.consumer is not None
    assert service.consumer.stats.committed == 2


async def test_same_sequence_different_payload_is_flagged_not_acked(
    warehouse: Warehouse, start_ingest: Start, gateway: GatewayClient
) -> None:
    await start_ingest(warehouse)
    first = make_batch([1, 2, 3])
    gateway.publish(first)
    await gateway.wait_acks(1)

    # The gateway reused seq 3 for another pack (the id-reuse bug §0.2 warns about).
    reused = Batch(GW, SITE, "packs", ((3, pack(3, net_g=999.0)), (4, pack(4))))
    gateway.publish(reused)
    gateway.publish(reused)
    acks = await gateway.wait_acks(3)

    expected = Ack(GW, reused.batch_id, (4,), ((3, REASON_DIFFERENT_PAYLOAD),))
    assert acks[1:] == [expected, expected]
    stored = await warehouse.record_hashes(GW)
    assert stored[3] == payload_sha256(pack(3))  # the first payload stays
    [conflict] = await warehouse.conflicts(GW)
    assert (conflict.seq, conflict.reason, conflict.occurrences) == (3, REASON_DIFFERENT_PAYLOAD, 2)
    assert conflict.existing_sha256 == payload_sha256(pack(3))
    assert conflict.payload_sha256 == payload_sha256(pack(3, net_g=999.0))
    assert warehouse.stats.conflicts == 2


@pytest.mark.parametrize("broker_restart", [False, True], ids=["ingest-restart", "broker-restart"])
async def test_ingest_killed_before_commit_gets_the_batch_again(
    warehouse: Warehouse,
    start_ingest: Start,
    gateway: GatewayClient,
    mosquitto: Mosquitto,
    broker_restart: bool,
) -> None:
    stalling = StallingWarehouse()
    _, task = await start_ingest(stalling)
    batch = make_batch([7, 8, 9])
    gateway.publish(batch)
    await wait_for(stalling.received.is_set)

    await stop(task)  # received, not committed, not PUBACKed
    assert await warehouse.record_hashes(GW) == {}
    assert gateway.acks == []
    if broker_restart:
        mosquitto.restart()  # persistence on: the session and its in-flight message survive

    service, _ = await start_ingest(warehouse)
    [ack] = await gateway.wait_acks(1)
    assert ack == Ack(GW, batch.batch_id, (7, 8, 9), ())
    assert sorted(await warehouse.record_hashes(GW)) == [7, 8, 9]
    assert (warehouse.stats.inserted, warehouse.stats.duplicates) == (3, 0)
    assert service.consumer is not None
    assert service.consumer.stats.redelivered == 1


class StallingWarehouse:
    """Receives a batch and never commits it (the ingest dies with it in hand)."""

    kind = "stalling"

    def __init__(self) -> None:
        self.received = asyncio.Event()
        self.stats = WarehouseStats()

    async def commit_batch(self, batch: Batch, *, idempotency_key: str | None = None) -> Ack:
        self.received.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def ping(self) -> None:
        return None


class FlakyWarehouse:
    """Fails ``failures`` commits with a transient error, then delegates."""

    kind = "flaky"

    def __init__(self, inner: Warehouse, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0
        self.stats = inner.stats

    async def commit_batch(self, batch: Batch, *, idempotency_key: str | None = None) -> Ack:
        self.calls += 1
        if self.calls <= self.failures:
            raise WarehouseUnavailable("database restarting")
        return await self.inner.commit_batch(batch, idempotency_key=idempotency_key)

    async def ping(self) -> None:
        if self.calls < self.failures:
            raise WarehouseUnavailable("database restarting")


async def test_transient_warehouse_failures_are_retried_then_acked(
    sqlite_warehouse: Warehouse, start_ingest: Start, gateway: GatewayClient
) -> None:
    flaky = FlakyWarehouse(sqlite_warehouse, failures=2)
    service, _ = await start_ingest(flaky)
    batch = make_batch([1, 2])
    gateway.publish(batch)
    [ack] = await gateway.wait_acks(1)
    assert ack.committed == (1, 2)
    assert service.consumer is not None
    assert service.consumer.stats.commit_retries == 2


async def test_garbage_is_dropped_counted_and_not_redelivered(
    sqlite_warehouse: Warehouse, start_ingest: Start, gateway: GatewayClient
) -> None:
    service, task = await start_ingest(sqlite_warehouse)
    good = make_batch([1])
    topic = data_topic(SITE, GW, "packs")
    gateway.publish(good, payload=b"not a batch")
    gateway.publish(good, payload=zlib.compress(b"[" * 200_000))  # json: RecursionError
    # json: a plain ValueError (an integer past Python's 4,300 digits), once the consumer's end
    huge = b'{"v":1,"records":[{"seq":' + b"7" * 5000 + b',"data":{}}]}'
    gateway.publish(good, payload=zlib.compress(huge))
    gateway.publish(Batch("other-gw", SITE, "packs", good.records), topic=topic)  # spoofed
    gateway.publish(good)
    [ack] = await gateway.wait_acks(1)
    assert ack.committed == (1,)
    assert service.consumer is not None
    stats = service.consumer.stats
    assert (stats.received, stats.dropped_protocol, stats.dropped_topic) == (5, 3, 1)
    assert await sqlite_warehouse.record_hashes("other-gw") == {}

    # Dropped messages were PUBACKed too: a restart does not bring them back.
    await stop(task)
    service, _ = await start_ingest(sqlite_warehouse)
    gateway.publish(make_batch([2]))
    await gateway.wait_acks(2)
    assert service.consumer is not None
    assert service.consumer.stats.received == 1


async def test_consumer_reconnects_and_resubscribes_after_a_broker_crash(
    sqlite_warehouse: Warehouse, start_ingest: Start, gateway: GatewayClient, mosquitto: Mosquitto
) -> None:
    service, _ = await start_ingest(sqlite_warehouse)
    consumer = service.consumer
    assert consumer is not None
    mosquitto.kill()  # never saved: the restarted broker has no session for anyone
    await wait_for(lambda: not consumer.subscribed.is_set())
    mosquitto.start()
    await wait_for(lambda: consumer.subscribed.is_set() and gateway.subscriptions >= 2)
    assert consumer.stats.connects == 2
    assert consumer.stats.sessions_lost == 1

    gateway.publish(make_batch([5]))
    [ack] = await gateway.wait_acks(1)
    assert ack.committed == (5,)


# --------------------------------------------------------------------------------------
# HTTP


async def test_http_ingest_is_idempotent_and_refuses_bad_requests(
    warehouse: Warehouse, start_ingest: Start
) -> None:
    service, _ = await start_ingest(warehouse, http_max_body=64 * 1024)
    batch = make_batch([21, 22, 23])
    body = encode_batch(batch)
    headers = {"Content-Encoding": "deflate", "Idempotency-Key": batch.batch_id, **bearer(GW)}
    base = f"http://127.0.0.1:{service.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        health = await http.get("/v1/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"

        first = await http.post("/v1/ingest", content=body, headers=headers)
        assert first.status_code == 200
        assert decode_ack(first.content) == Ack(GW, batch.batch_id, (21, 22, 23), ())
        # The commit happened before the answer.
        assert sorted(await warehouse.record_hashes(GW)) == [21, 22, 23]

        replay = await http.post("/v1/ingest", content=body, headers=headers)
        assert replay.status_code == 200
        assert replay.content == first.content
        assert (warehouse.stats.inserted, warehouse.stats.duplicates) == (3, 3)

        # A quoted structured-field key is the same key.
        quoted = {**headers, "Idempotency-Key": f'"{batch.batch_id}"'}
        assert (await http.post("/v1/ingest", content=body, headers=quoted)).status_code == 200

        malformed = await http.post("/v1/ingest", content=b"\x78\x9cgarbage", headers=headers)
        assert malformed.status_code == 400
        assert "compressed JSON" in malformed.json()["reason"]

        wrong_key = {**headers, "Idempotency-Key": "hull-gw1:packs:1-1:1"}
        response = await http.post("/v1/ingest", content=body, headers=wrong_key)
        assert response.status_code == 400
        assert "Idempotency-Key" in response.json()["reason"]

        no_key = {"Content-Encoding": "deflate", **bearer(GW)}
        assert (await http.post("/v1/ingest", content=body, headers=no_key)).status_code == 400
        plain = {"Idempotency-Key": batch.batch_id, **bearer(GW)}
        assert (await http.post("/v1/ingest", content=body, headers=plain)).status_code == 415

        too_big = await http.post("/v1/ingest", content=b"x" * (65 * 1024), headers=headers)
        assert too_big.status_code == 413

        get = await http.get("/v1/ingest")
        assert get.status_code == 405
        assert get.headers["allow"] == "POST"
        assert (await http.get("/v1/nothing")).status_code == 404

    assert sorted(await warehouse.record_hashes(GW)) == [21, 22, 23]


async def test_http_answers_503_while_the_warehouse_is_down(
    sqlite_warehouse: Warehouse, start_ingest: Start
) -> None:
    flaky = FlakyWarehouse(sqlite_warehouse, failures=1)
    service, _ = await start_ingest(flaky, mqtt_enabled=False)
    batch = make_batch([1])
    headers = {"Content-Encoding": "deflate", "Idempotency-Key": batch.batch_id, **bearer(GW)}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}") as http:
        assert (await http.get("/v1/healthz")).status_code == 503
        down = await http.post("/v1/ingest", content=encode_batch(batch), headers=headers)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        up = await http.post("/v1/ingest", content=encode_batch(batch), headers=headers)
        assert up.status_code == 200
        assert decode_ack(up.content).committed == (1,)


# --------------------------------------------------------------------------------------
# The warehouse itself


async def test_warehouse_refuses_what_it_cannot_store_and_commits_the_rest(
    warehouse: Warehouse,
) -> None:
    bad = Batch(
        GW,
        SITE,
        "packs",
        (
            (1, pack(1)),
            (1, pack(1)),  # repeated within the batch: one row, a duplicate
            (2, {**pack(2), "net_g": math.nan}),
            (3, {**pack(3), "device": "cw\x001"}),
            (2**63, pack(4)),
            (5, {**pack(5), "line": "℮ 250 g at −18 °C"}),
        ),
    )
    ack = await warehouse.commit_batch(bad)
    assert ack.committed == (1, 5)
    assert [seq for seq, _ in ack.conflicts] == [2, 3, 2**63]
    assert all(reason.startswith("invalid record") for _, reason in ack.conflicts)
    assert (warehouse.stats.inserted, warehouse.stats.duplicates, warehouse.stats.invalid) == (
        2,
        1,
        3,
    )
    assert [c.seq for c in await warehouse.conflicts(GW)] == [2, 3]

    # Non-ASCII text hashes the same after storage (JSONB and TEXT alike): a resend is a dup.
    again = await warehouse.commit_batch(Batch(GW, SITE, "packs", ((5, bad.records[5][1]),)))
    assert again.committed == (5,)
    assert rows(warehouse, "SELECT line FROM packs WHERE seq = 5") == [("℮ 250 g at −18 °C",)]

    probe = {"ts_us": TS0, "line": "L1", "device": "tt1", "probe": "P1", "celsius": 3.5}
    moved = await warehouse.commit_batch(Batch(GW, SITE, "temperatures", ((1, probe),)))
    assert moved == Ack(GW, moved.batch_id, (), ((1, REASON_DIFFERENT_STREAM),))

    with pytest.raises(ProtocolError):
        await warehouse.commit_batch(Batch("gw/../x", SITE, "packs", ((9, pack(9)),)))


async def test_a_sequence_twice_in_a_batch_stores_its_first_record_and_refuses_the_other(
    warehouse: Warehouse,
) -> None:
    await warehouse.commit_batch(make_batch([1, 5]))
    batch = Batch(
        GW,
        SITE,
        "packs",
        (
            (1, pack(1)),  # stored before: a duplicate
            (2, pack(2, net_g=260.0)),
            (2, pack(2, net_g=999.0)),  # the same sequence again, another record
            (3, pack(3)),
            (3, pack(3)),  # the same record again
            (4, pack(4)),
            (5, pack(5, net_g=300.0)),  # stored before as another record
        ),
    )
    ack = await warehouse.commit_batch(batch)
    assert ack.committed == (1, 3, 4)
    assert ack.conflicts == ((2, REASON_DIFFERENT_PAYLOAD), (5, REASON_DIFFERENT_PAYLOAD))
    # The first occurrence is the one stored, with its fact; the other is the conflict.
    assert rows(warehouse, "SELECT net_g FROM packs WHERE seq IN (2, 5) ORDER BY seq") == [
        (260.0,),
        (251.5,),
    ]
    stored = dict(rows(warehouse, "SELECT seq, payload_sha256 FROM records WHERE seq IN (2, 5)"))
    conflicts = await warehouse.conflicts(GW)
    assert [(c.seq, c.existing_sha256) for c in conflicts] == [(2, stored[2]), (5, stored[5])]
    assert all(c.payload_sha256 != c.existing_sha256 for c in conflicts)
    assert (warehouse.stats.inserted, warehouse.stats.duplicates) == (5, 2)


async def test_counts_reconcile_per_stream_run_and_hour(warehouse: Warehouse) -> None:
    await warehouse.commit_batch(make_batch([1, 2], run="R1", ts_us=TS0))
    await warehouse.commit_batch(make_batch([3], run="R1", ts_us=TS0 + HOUR))
    await warehouse.commit_batch(make_batch([4, 5, 6], run="R2", ts_us=TS0 + HOUR))
    await warehouse.commit_batch(
        Batch(GW, SITE, "device_events", ((7, {"ts_us": TS0, "device": "cw1", "kind": "up"}),))
    )
    await warehouse.commit_batch(Batch("other-gw", SITE, "packs", ((1, pack(1)),)))

    hour0 = datetime.fromtimestamp(TS0 // HOUR * 3600, UTC)
    hour1 = datetime.fromtimestamp((TS0 + HOUR) // HOUR * 3600, UTC)
    counts = [
        (c.stream, c.run_number, c.hour, c.records, c.first_seq, c.last_seq)
        for c in await warehouse.counts(GW)
    ]
    assert counts == [
        ("device_events", None, hour0, 1, 7, 7),
        ("packs", "R1", hour0, 2, 1, 2),
        ("packs", "R1", hour1, 1, 3, 3),
        ("packs", "R2", hour1, 3, 4, 6),
    ]


async def test_postgres_connection_loss_is_transient_and_reconnects(
    pg_dsn: str, tmp_path: Path
) -> None:
    warehouse = await _open_warehouse("postgres", pg_dsn, tmp_path)
    kill_ingest = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'lineside-ingest' AND datname = current_database()"
    )
    try:
        await warehouse.commit_batch(make_batch([1]))
        # Connections killed while idle in the pool are checked and replaced before use.
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(kill_ingest)
        assert (await warehouse.commit_batch(make_batch([2]))).committed == (2,)

        # Killed in the middle of a transaction (held up by a lock here): transient.
        with psycopg.connect(pg_dsn) as admin:
            admin.execute("LOCK TABLE records IN EXCLUSIVE MODE")
            commit = asyncio.create_task(warehouse.commit_batch(make_batch([3])))
            with psycopg.connect(pg_dsn, autocommit=True) as watcher:

                def waiting() -> bool:
                    return watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND application_name = 'lineside-ingest'"
                        " AND datname = current_database()"
                    ).fetchone() == (1,)

                await wait_for(waiting, 10, "the commit waiting for the lock")
                watcher.execute(kill_ingest)
            with pytest.raises(WarehouseUnavailable):  # the consumer retries these
                await commit
        assert (await warehouse.commit_batch(make_batch([3]))).committed == (3,)
        assert sorted(await warehouse.record_hashes(GW)) == [1, 2, 3]
    finally:
        await warehouse.close()


def test_topics_name_site_gateway_and_stream() -> None:
    assert topic_ids(data_topic(SITE, GW, "packs")) == (SITE, GW, "packs")
    assert topic_ids(ack_topic(SITE, GW)) is None
    assert topic_ids("lineside/v1/hull/gateways/gw/data/packs/extra") is None


def test_settings_refuse_a_session_that_ends_at_disconnect() -> None:
    with pytest.raises(ValueError, match="3600"):
        IngestSettings(session_expiry_s=0)
    assert "secret" not in repr(
        IngestSettings(password="secret", postgres_dsn="postgresql://secret")
    )


async def test_run_ingest_serves_until_cancelled(
    mosquitto: Mosquitto, tmp_path: Path, gateway: GatewayClient
) -> None:
    settings = IngestSettings(
        mqtt_host=mosquitto.host,
        mqtt_port=mosquitto.port,
        http_port=0,
        reconnect_initial_s=0.05,
        sqlite_path=tmp_path / "ingest.db",
    )
    task = asyncio.create_task(run_ingest(settings))
    batch = make_batch([1])

    # The ingest has no session yet: publish until it is subscribed and acks.
    async def acked() -> bool:
        if not gateway.acks:
            gateway.publish(batch)
            await asyncio.sleep(0.1)
        return bool(gateway.acks)

    await wait_for(acked)
    await stop(task)
    assert gateway.acks[0] == Ack(GW, batch.batch_id, (1,), ())
    with contextlib.closing(sqlite3.connect(tmp_path / "ingest.db")) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone() == (1,)
    assert encode_ack(gateway.acks[0])
