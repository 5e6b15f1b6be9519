"""Oversized messages are refused before they are parsed, without memory blow-up (issue 18).

Before: the ingest copied and parsed whatever the broker delivered (49 → 246 MB on 8 × 50 MB
messages), nothing announced a Maximum Packet Size, and the gateway parsed any ack.

Now the ingest and the gateway announce an MQTT 5 Maximum Packet Size on CONNECT (so the
broker drops larger messages for them, even a broker with no limit of its own), the shipped
broker config has ``max_packet_size`` (a larger PUBLISH disconnects its sender), the ingest
refuses a payload above its limit unread, ``decode_ack``/``decode_batch`` refuse an oversized
payload before parsing, and the HTTP ingest answers 401 before reading any body and 413 as
soon as a body passes its limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from sync.broker_auth import shipped_setting
from sync.ingest import IngestService, IngestSettings
from sync.ingest.auth import hash_token, write_tokens
from sync.ingest.mqtt_consumer import MqttConsumer
from sync.ingest.warehouse import SqliteWarehouse
from sync.protocol import (
    MAX_ACK_BYTES,
    MAX_MESSAGE_BYTES,
    ProtocolError,
    ack_topic,
    data_topic,
    decode_ack,
    decode_batch,
    encode_batch,
)
from tests.security.conftest import SITE, VICTIM, Client, Ingest, outbox_empty
from tests.security.test_forged_records import forged_packs, victim_syncs
from tests.support.gateway_tokens import token_for
from tests.support.mosquitto import Mosquitto
from tests.support.paths import REPO, repo_pythonpath
from tests.support.ports import free_port
from tests.support.sync_harness import check_conservation
from tests.support.uplink_harness import commit, pack, running_store, running_uplink
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

MB = 1024 * 1024
FLOOD = 8
"""Messages (and requests) of :data:`FLOOD_MB` each, as in the review."""
FLOOD_MB = 20
GROWTH_LIMIT_MB = 40
"""How much the ingest's peak memory may grow over the whole flood (one copy of one
message would already be half of it; the review saw about 200 MB)."""


def peak_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


class IngestProcess:
    """``lineside ingest`` as its own process (so its memory can be measured alone)."""

    def __init__(self, broker: Mosquitto, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.warehouse = folder / "warehouse.db"
        self.log = folder / "ingest.log"
        tokens = folder / "gateway-tokens"
        write_tokens(tokens, {VICTIM: hash_token(token_for(VICTIM))})
        self.http_port = free_port()
        command = [
            sys.executable,
            "-m",
            "gateway.cli",
            "ingest",
            "--mqtt-port",
            str(broker.port),
            "--client-id",
            "ingest-under-flood",
            "--http-port",
            str(self.http_port),
            "--gateway-tokens",
            str(tokens),
            "--sqlite",
            str(self.warehouse),
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=REPO,
                env={"PYTHONPATH": repo_pythonpath(), "PATH": "/usr/bin:/bin"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the ingest exited:\n{self.output()}")
        return "ingest HTTP on" in self.output() and "connected to MQTT" in self.output()

    def stored(self) -> int:
        if not self.warehouse.exists():
            return 0
        with contextlib.closing(sqlite3.connect(self.warehouse, timeout=5)) as db:
            try:
                return int(db.execute("SELECT count(*) FROM records").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def ingest_process(broker: Mosquitto, tmp_path: Path) -> Iterator[IngestProcess]:
    """On the suite's open broker: anonymous clients and no packet size limit of its own."""
    process = IngestProcess(broker, tmp_path / "ingest")
    try:
        yield process
    finally:
        process.close()


async def _body(total: int, chunk: int = MB) -> AsyncIterator[bytes]:
    block = b"\x00" * chunk
    sent = 0
    while sent < total:
        yield block[: min(chunk, total - sent)]
        sent += chunk


async def _post(http: httpx.AsyncClient, url: str, size: int, *, token: bool, length: bool) -> int:
    headers = {"content-encoding": "deflate", "idempotency-key": f"{VICTIM}:packs:1-1:1"}
    if token:
        headers["authorization"] = f"Bearer {token_for(VICTIM)}"
    if length:
        headers["content-length"] = str(size)
    try:
        answer = await http.post(url, content=_body(size), headers=headers)
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        return 0  # the server closed the connection before taking the body: refused, too
    return answer.status_code


async def test_oversized_messages_are_refused_without_memory_blow_up(
    broker: Mosquitto, ingest_process: IngestProcess, tmp_path: Path
) -> None:
    await wait_for(ingest_process.ready, 30, "the ingest connected and listening")
    flooder = Client(broker, client_id="flooder")  # the open broker: no login needed
    try:
        assert flooder.connect() == 0
        # One valid batch first: the ingest is up and working, and warmed.
        good = encode_batch(forged_packs([1]))
        assert flooder.publish(data_topic(SITE, VICTIM, "packs"), good) == 0
        await wait_for(lambda: ingest_process.stored() == 1, 15, "the first batch")
        before = peak_mb(ingest_process.proc.pid)

        # MQTT: 8 messages of 20 MiB, each a valid-looking start of a batch.
        flood = zlib.compress(b"{" + b" " * (FLOOD_MB * MB), 0)
        assert len(flood) > MAX_MESSAGE_BYTES
        for _ in range(FLOOD):
            assert flooder.publish(data_topic(SITE, VICTIM, "packs"), flood) == 0
        # The broker delivers in order: once the next small batch is stored, it has handled
        # (that is, not delivered) every large one.
        after = encode_batch(forged_packs([2]))
        assert flooder.publish(data_topic(SITE, VICTIM, "packs"), after) == 0
        await wait_for(lambda: ingest_process.stored() == 2, 30, "the batch after the flood")
    finally:
        flooder.close()

    # HTTP: announced and unannounced sizes, with and without a token.
    url = f"http://127.0.0.1:{ingest_process.http_port}/v1/ingest"
    size = FLOOD_MB * MB
    async with httpx.AsyncClient(timeout=30) as http:
        statuses = [
            await _post(http, url, size, token=token, length=length)
            for token, length in ((False, True), (False, False), (True, True), (True, False))
            for _ in range(FLOOD // 4)
        ]
    assert set(statuses) <= {401, 413, 0}, statuses
    assert statuses[: FLOOD // 4 * 2].count(401) >= 1, "unauthenticated: 401 before any body"
    assert statuses[FLOOD // 4 * 2 :].count(413) >= 1, "authenticated: 413 at the limit"

    growth = peak_mb(ingest_process.proc.pid) - before
    assert growth < GROWTH_LIMIT_MB, f"the ingest's peak memory grew by {growth:.0f} MiB"
    assert ingest_process.stored() == 2, "nothing but the two valid batches"
    log = ingest_process.output()
    assert "refused POST /v1/ingest" in log
    assert "401 unauthorized" in log
    assert "413 too_large" in log


async def test_the_shipped_broker_disconnects_the_sender_of_an_oversized_message(
    tmp_path: Path, shipped_broker: Mosquitto, ingest: Ingest, clients: list[Client]
) -> None:
    assert shipped_setting("max_packet_size") == str(MAX_MESSAGE_BYTES)
    sender = Client(shipped_broker, VICTIM, client_id="big-sender")
    clients.append(sender)
    assert sender.connect() == 0
    info = sender.client.publish(data_topic(SITE, VICTIM, "packs"), b"\x00" * (5 * MB), qos=1)
    # paho writes what the socket takes at once from inside publish(): the broker reads the
    # packet's length, hangs up, and on a loaded machine that can happen before publish()
    # returns (MQTT_ERR_NO_CONN). Either way the broker is what refused it, as its log says.
    assert info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)
    await wait_for(
        lambda: "disconnected due to oversize packet" in shipped_broker.log_tail(200),
        10,
        "the broker hanging up on the oversized packet",
    )
    if info.rc == mqtt.MQTT_ERR_SUCCESS:
        # Else publish() itself already found the connection gone. Otherwise paho notices the
        # hang-up at its next read, or at the latest at the keepalive (10 s) x 1.5.
        await wait_for(
            lambda: not sender.client.is_connected() or bool(sender.disconnects),
            20,
            "the sender disconnected",
        )
    consumer = ingest.service.consumer
    assert consumer is not None
    assert consumer.stats.received == 0
    await victim_syncs(tmp_path, shipped_broker, ingest)


async def test_an_oversized_ack_never_reaches_the_gateway(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """On a broker with no limit of its own, the gateway's Maximum Packet Size keeps a huge
    "ack" away from it; the real acks still come and every record lands once."""
    warehouse = tmp_path / "warehouse.db"
    service = IngestService(
        IngestSettings(
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            http_enabled=False,
            sqlite_path=warehouse,
            reconnect_initial_s=0.05,
            reconnect_max_s=0.3,
        )
    )
    task = asyncio.create_task(service.run())
    flooder = Client(broker, client_id="ack-flooder")
    try:
        assert service.consumer is not None
        consumer = service.consumer
        await wait_for(consumer.subscribed.is_set, 15)
        assert flooder.connect() == 0
        async with (
            running_store(tmp_path / "victim") as store,
            running_uplink(store, broker, site=SITE, gateway=VICTIM) as uplink,
        ):
            await wait_for(lambda: uplink.state.value == "up", 10)
            for _ in range(3):
                flooder.publish(ack_topic(SITE, VICTIM), b"[" * (5 * MB))
            await commit(store, [pack(i) for i in range(30)])
            await wait_for(lambda: outbox_empty(store), 20)
            assert uplink.stats.bad_acks == 0, "the huge acks were never delivered"
        check_conservation(tmp_path / "victim" / "lineside.db", VICTIM, warehouse)
    finally:
        flooder.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_ingest_refuses_a_payload_above_its_limit_unread(tmp_path: Path) -> None:
    """Defence in depth, for a broker that ignored the Maximum Packet Size: not copied, not
    parsed, counted and logged."""
    warehouse = SqliteWarehouse(tmp_path / "w.db")
    await warehouse.open()
    try:
        consumer = MqttConsumer(IngestSettings(max_message_bytes=4096), warehouse)
        consumer._loop = asyncio.get_running_loop()
        message = mqtt.MQTTMessage(mid=0, topic=data_topic(SITE, VICTIM, "packs").encode())
        message.payload = b"x" * 10_000
        consumer._on_message(consumer._client, None, message)
        item = await asyncio.wait_for(consumer._queue.get(), 5)
        assert item.payload == b""
        assert item.size == 10_000
        await consumer._handle(item)
        assert consumer.stats.dropped_too_large == 1
        assert await warehouse.record_hashes(VICTIM) == {}
    finally:
        await warehouse.close()


def test_decoders_refuse_oversized_payloads_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="larger than"):
        decode_ack(b" " * (MAX_ACK_BYTES + 1))
    with pytest.raises(ProtocolError, match="larger than"):
        decode_batch(b"\x00" * (MAX_MESSAGE_BYTES + 1))
    bomb = zlib.compress(b" " * (64 * MB), 9)  # small on the wire, 64 MiB inflated
    with pytest.raises(ProtocolError, match="larger than"):
        decode_batch(bomb)
