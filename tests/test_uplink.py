"""Store-and-forward over MQTT against a real mosquitto (tests/mosquitto.py) and a fake ingest.

The fake ingest is the seam we own: a real paho subscriber on the data topics that decodes
batches with sync.protocol, "commits" them (remembers every seq, counts duplicates) and
publishes acks. Conservation: every committed seq reaches it, and the outbox empties only
through its acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.backoff import Backoff
from gateway.clock import ManualClock, SystemClock
from gateway.config import StoreSection
from gateway.records import (
    AlertRecord,
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    Severity,
    TemperatureReading,
)
from gateway.store import Store
from sync.andon import AndonPublisher, andon_payload
from sync.mqtt_uplink import MqttUplink
from sync.outbox import Outbox, batch_seqs
from sync.protocol import (
    DATA_SUBSCRIPTION,
    Ack,
    ack_topic,
    alerts_topic,
    andon_topic,
    decode_batch,
    encode_ack,
    status_topic,
)
from tests.conftest import REPO, wait_for, wait_for_sync
from tests.mosquitto import Mosquitto

SITE = "hull"
GW = "hull-gw1"


# ---------------------------------------------------------------- helpers


def pack(i: int) -> PackEvent:
    return PackEvent(ts_us=1_000 + i, line="L1", device="cw1", net_g=240.0 + i / 10, pack_counter=i)


def telemetry(i: int) -> DeviceEvent:
    return DeviceEvent(ts_us=1_000 + i, device="cw1", kind="heartbeat", detail={"n": i})


def alert(name: str) -> AlertRecord:
    return AlertRecord(
        ts_us=5,
        alert_id=name,
        rule="temperature_high",
        subject="P1",
        severity=Severity.CRITICAL,
        state="raised",
        message="probe P1 above 5 °C",
        line="L1",
    )


def mixed(n: int) -> list[Record]:
    records: list[Record] = []
    for i in range(n):
        records.append(pack(i))
        if i % 4 == 0:
            records.append(
                TemperatureReading(ts_us=i, line="L1", device="p", probe="P1", celsius=2.5)
            )
        if i % 10 == 0:
            records.append(telemetry(i))
        if i % 50 == 0:
            records.append(alert(f"a{i}"))
            records.append(LabelScan(ts_us=i, line="L1", device="s", raw=b"]C1\x1d01" + bytes([i])))
    return records


async def commit(store: Store, records: Iterable[Record]) -> list[int]:
    """Store records in group commits; their sequence numbers once committed."""
    return list(await asyncio.gather(*(store.submit(r) for r in records)))


@contextlib.asynccontextmanager
async def running_store(path: Path, clock: Any = None) -> AsyncIterator[Store]:
    config = StoreSection(path=path / "lineside.db", commit_interval_ms=20)
    async with Store(config, clock or SystemClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        try:
            yield store
        finally:
            await store.stop_committer()
            await committer


@contextlib.asynccontextmanager
async def running_uplink(
    store: Store, broker: Mosquitto, **options: Any
) -> AsyncIterator[MqttUplink]:
    settings: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "site": SITE,
        "gateway": GW,
        "keepalive_s": 5,
        "connect_timeout_s": 2.0,
        "max_records": 50,
        "ack_timeout_s": 1.0,
        "ack_timeout_max_s": 2.0,
        "poll_interval_s": 0.05,
        "backoff": Backoff(initial=0.05, maximum=0.3),
        "stable_after_s": 1.0,
    }
    settings.update(options)
    uplink = MqttUplink(store, **settings)
    task = asyncio.create_task(uplink.run())
    try:
        yield uplink
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)


def _client(name: str) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5
    )


class FakeIngest:
    """The warehouse: commits every batch it receives (dedupe by seq) and acks it."""

    def __init__(
        self, broker: Mosquitto, *, conflicts: dict[int, str] | None = None, ack_delay_s: float = 0
    ) -> None:
        self.broker = broker
        self.conflicts = conflicts or {}
        self.ack_delay_s = ack_delay_s
        self.counts: Counter[int] = Counter()
        self.data: dict[int, dict[str, Any]] = {}
        self.batches: list[tuple[str, list[int]]] = []
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = _client("fake-ingest")
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(DATA_SUBSCRIPTION, qos=1)

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        batch = decode_batch(bytes(message.payload))
        seqs = [seq for seq, _ in batch.records]
        with self._lock:
            self.batches.append((batch.stream, seqs))
            for seq, data in batch.records:
                self.counts[seq] += 1
                if seq not in self.conflicts:
                    self.data.setdefault(seq, {"stream": batch.stream, **data})
        if self.ack_delay_s:
            threading.Event().wait(self.ack_delay_s)  # a slow warehouse
        ack = Ack(
            gateway=batch.gateway,
            batch_id=batch.batch_id,
            committed=tuple(s for s in seqs if s not in self.conflicts),
            conflicts=tuple((s, self.conflicts[s]) for s in seqs if s in self.conflicts),
        )
        client.publish(ack_topic(batch.site, batch.gateway), encode_ack(ack), qos=1)

    def start(self) -> FakeIngest:
        self.subscribed.clear()
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=5)
        self.client.loop_start()
        wait_for_sync(self.subscribed.is_set, 5)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def received(self) -> set[int]:
        with self._lock:
            return set(self.data)

    @property
    def duplicates(self) -> int:
        with self._lock:
            return sum(n - 1 for n in self.counts.values())


class Watcher:
    """A board or dashboard: subscribes to topics and keeps what it got, retained flag too."""

    def __init__(self, broker: Mosquitto, *topics: str) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.client = _client(f"watcher-{id(self)}")
        self.topics = topics
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.messages.append(m)
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        for topic in self.topics:
            client.subscribe(topic, qos=1)

    def last(self, topic: str) -> bytes | None:
        found = [bytes(m.payload) for m in self.messages if m.topic == topic]
        return found[-1] if found else None

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------- pure parts, no broker


async def test_outbox_batches_by_priority_then_seq_and_acks_delete(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_store(tmp_path, clock) as store:
        tele = await commit(store, [telemetry(i) for i in range(5)])
        packs = await commit(store, [pack(i) for i in range(30)])
        (scan,) = await commit(store, [LabelScan(ts_us=1, line="L1", device="s", raw=b"\x1d\xff")])
        (urgent,) = await commit(store, [alert("late")])
        outbox = Outbox(store, gateway=GW, site=SITE)
        clock.advance(90)
        assert await outbox.depth() == 37
        assert await outbox.oldest_age_s() == pytest.approx(90)

        first = await outbox.next_batch(100, 100_000)
        assert first is not None
        assert (first.stream, batch_seqs(first)) == ("alerts", (urgent,))
        assert first.records[0][1]["alert_id"] == "late"
        # Packs before the label scan (seq order in one stream); byte cut keeps >= 1 record.
        second = await outbox.next_batch(10, 100_000, exclude=batch_seqs(first))
        assert second is not None
        assert batch_seqs(second) == tuple(packs[:10])
        assert set(second.records[0][1]) >= {"net_g", "pack_counter", "nominal_g"}
        tiny = await outbox.next_batch(10, 1, exclude=[*batch_seqs(first), *batch_seqs(second)])
        assert tiny is not None
        assert batch_seqs(tiny) == (packs[10],)
        rest = await outbox.next_batch(100, 100_000, exclude=[*batch_seqs(first), *packs, *tele])
        assert rest is not None
        assert rest.stream == "label_scans"
        assert rest.records[0][1]["raw"] == "1dff"  # BLOB as hex
        # Alerts only, for the reserved slot: nothing else qualifies.
        only_alerts = await outbox.next_batch(10, 100_000, exclude=(urgent,), max_priority=0)
        assert only_alerts is None

        assert await outbox.acknowledge([urgent, urgent, 999_999_999]) == 1
        assert await outbox.quarantine(tele[:2], "PUBACK 0x87") == 2
        assert await outbox.quarantined() == [
            (tele[0], "device_events", "PUBACK 0x87"),
            (tele[1], "device_events", "PUBACK 0x87"),
        ]
        assert await outbox.depth_by_priority() == {1: 31, 2: 3}
        assert await outbox.acknowledge([*packs, scan, *tele]) == 34
        assert await outbox.next_batch(10, 1000) is None
        assert await outbox.oldest_age_s() == 0.0


def test_andon_state_is_latest_wins_and_stale_alerts_expire() -> None:
    clock = ManualClock()
    andon = AndonPublisher(SITE, clock=clock, alert_expiry_s=3600)
    assert andon.update("L1", "red", [{"alert_id": "t1", "severity": "critical"}])
    assert not andon.update("L1", "red", [{"alert_id": "t1", "severity": "critical"}])
    assert andon.update("L1", "green")
    (message,) = andon.retained_messages(everything=False)
    assert message.retain
    assert message.topic == andon_topic(SITE, "L1")
    assert json.loads(message.payload)["state"] == "green"
    assert andon.retained_messages(everything=False) == []
    assert len(andon.retained_messages(everything=True)) == 1  # re-published on reconnect

    andon.alert("L1", {"alert_id": "old", "state": "raised"})
    clock.advance(3000)
    andon.alert("L1", {"alert_id": "new", "state": "raised"})
    clock.advance(700)
    (fresh,) = andon.alert_messages()
    assert json.loads(fresh.payload)["alert_id"] == "new"
    assert fresh.expiry_s == 2900  # counted from the transition, not from the publish
    assert andon.stats.alerts_expired == 1
    assert json.loads(andon_payload("L1", "amber", [], 7)) == {
        "v": 1,
        "line": "L1",
        "state": "amber",
        "alerts": [],
        "updated_us": 7,
    }


# ---------------------------------------------------------------- over a real broker


async def test_committed_records_reach_the_ingest_and_the_outbox_empties(
    tmp_path: Path, broker: Mosquitto
) -> None:
    ingest = FakeIngest(broker).start()
    try:
        async with running_store(tmp_path) as store:
            seqs = await commit(store, mixed(200))
            async with running_uplink(store, broker) as uplink:
                await wait_for(lambda: set(seqs) <= ingest.received, 15)
                await wait_for(lambda: uplink.in_flight == 0)
                assert await uplink.outbox.depth() == 0
                conn = uplink._conn
                assert conn is not None
                sock = conn.client.socket()
                assert isinstance(sock, socket.socket)
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert uplink.stats.records_acked == len(seqs)
            assert ingest.batches[0][0] == "alerts"  # priority: alerts leave first
            scans = [d for d in ingest.data.values() if d["stream"] == "label_scans"]
            assert scans[0]["raw"] == b"]C1\x1d01\x00".hex()
            print(f"{len(seqs)} records, {ingest.duplicates} duplicates on the wire")
    finally:
        ingest.stop()


async def test_broker_down_then_back_loses_nothing(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    broker.start()
    ingest = FakeIngest(broker).start()
    try:
        async with running_store(tmp_path) as store, running_uplink(store, broker) as uplink:
            before = await commit(store, mixed(50))
            await wait_for(lambda: set(before) <= ingest.received)
            await wait_for(lambda: uplink.in_flight == 0)
            broker.stop()
            await wait_for(lambda: uplink.state.value == "down")
            during = await commit(store, mixed(100))  # committed while the broker is away
            attempts = uplink.stats.connect_attempts
            await wait_for(lambda: uplink.stats.connect_attempts >= attempts + 3)  # refused
            assert await uplink.outbox.depth() == len(during)
            broker.start()
            await wait_for(lambda: set(before + during) <= ingest.received, 15)
            await wait_for(lambda: uplink.in_flight == 0)
            assert await uplink.outbox.depth() == 0
            assert uplink.stats.connects >= 2
    finally:
        ingest.stop()
        broker.kill()


async def test_broker_restart_without_persistence_republishes_from_sqlite(
    tmp_path: Path, broker: Mosquitto
) -> None:
    async with running_store(tmp_path) as store, running_uplink(store, broker) as uplink:
        seqs = await commit(store, mixed(100))
        # No ingest yet: the broker PUBACKs every batch, and drops it (nobody subscribed).
        await wait_for(lambda: uplink.stats.batches_pubacked >= 3)
        assert await uplink.outbox.depth() == len(seqs)  # a PUBACK deletes nothing
        broker.kill()  # crash, persistence off: whatever it held is gone
        broker.start()
        ingest = FakeIngest(broker).start()
        try:
            await wait_for(lambda: set(seqs) <= ingest.received, 15)
            await wait_for(lambda: uplink.in_flight == 0)
            assert await uplink.outbox.depth() == 0
        finally:
            ingest.stop()


async def test_late_subscriber_sees_retained_andon_and_online(
    tmp_path: Path, broker: Mosquitto
) -> None:
    andon = AndonPublisher(SITE)
    status = status_topic(SITE, GW)
    board = andon_topic(SITE, "L1")
    live = Watcher(broker, alerts_topic(SITE, "L1"))
    try:
        async with (
            running_store(tmp_path) as store,
            running_uplink(store, broker, andon=andon) as uplink,
        ):
            await wait_for(lambda: uplink.state.value == "up")
            andon.update("L1", "red", [{"alert_id": "t1", "severity": "critical"}])
            andon.alert("L1", {"alert_id": "t1", "state": "raised"})
            await wait_for(lambda: live.last(alerts_topic(SITE, "L1")) is not None)
            expiry = live.messages[-1].properties.MessageExpiryInterval  # type: ignore[union-attr]
            assert 3500 < expiry <= 3600

            late = Watcher(broker, board, status)
            await wait_for(lambda: late.last(board) is not None and late.last(status) == b"online")
            assert json.loads(late.last(board) or b"")["state"] == "red"
            assert all(m.retain for m in late.messages)
            late.stop()

            # The broker restarts empty (persistence off): the red must not be lost...
            await restart_and_expect(broker, uplink, board, status, "red")
            # ...and a red cleared during an outage must not stay red.
            broker.kill()
            await wait_for(lambda: uplink.state.value == "down")
            andon.update("L1", "green")
            await restart_and_expect(broker, uplink, board, status, "green")
        # A clean stop says so.
        after = Watcher(broker, status)
        await wait_for(lambda: after.last(status) == b"offline")
        after.stop()
    finally:
        live.stop()


async def restart_and_expect(
    broker: Mosquitto, uplink: MqttUplink, board: str, status: str, state: str
) -> None:
    broker.kill()
    await wait_for(lambda: uplink.state.value == "down")
    broker.start()
    await wait_for(lambda: uplink.state.value == "up")
    watcher = Watcher(broker, board, status)
    try:
        await wait_for(lambda: watcher.last(board) is not None)
        await wait_for(lambda: watcher.last(status) == b"online")
        assert json.loads(watcher.last(board) or b"")["state"] == state
    finally:
        watcher.stop()


CHILD = """
import asyncio, sys
from pathlib import Path
from gateway.clock import SystemClock
from gateway.config import StoreSection
from gateway.store import Store
from sync.mqtt_uplink import MqttUplink

async def main() -> None:
    config = StoreSection(path=Path(sys.argv[2]), commit_interval_ms=20)
    async with Store(config, SystemClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        uplink = MqttUplink(store, host="127.0.0.1", port=int(sys.argv[1]), site=sys.argv[3],
                            gateway=sys.argv[4], keepalive_s=5)
        await uplink.run()

asyncio.run(main())
"""


async def test_killed_gateway_shows_offline_through_the_last_will(
    tmp_path: Path, broker: Mosquitto
) -> None:
    status = status_topic(SITE, GW)
    watcher = Watcher(broker, status)
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", CHILD, str(broker.port), str(tmp_path / "child.db"), SITE, GW),
        cwd=REPO,
    )
    try:
        await wait_for(lambda: watcher.last(status) == b"online", 15)
        child.kill()  # no DISCONNECT: the broker publishes the will
        await asyncio.wait_for(child.wait(), 5)
        await wait_for(lambda: watcher.last(status) == b"offline", 5)
        late = Watcher(broker, status)
        await wait_for(lambda: late.last(status) == b"offline")  # retained
        late.stop()
    finally:
        if child.returncode is None:
            child.kill()
            await asyncio.wait_for(child.wait(), 5)
        watcher.stop()


async def test_new_alert_overtakes_a_telemetry_backlog(tmp_path: Path, broker: Mosquitto) -> None:
    ingest = FakeIngest(broker, ack_delay_s=0.02).start()
    try:
        async with running_store(tmp_path) as store:
            backlog = await commit(store, [telemetry(i) for i in range(3000)])
            async with running_uplink(store, broker) as uplink:
                await wait_for(lambda: len(ingest.batches) >= 2)
                (urgent,) = await commit(store, [alert("fresh")])
                queued_at = len(ingest.batches)
                await wait_for(lambda: urgent in ingest.received)
                position = next(i for i, (_, seqs) in enumerate(ingest.batches) if urgent in seqs)
                telemetry_before = sum(len(s) for _, s in ingest.batches[:position])
                assert telemetry_before < len(backlog)  # the backlog was not drained first
                assert position <= queued_at + uplink.window + uplink.alert_slots
                await wait_for(lambda: set(backlog) <= ingest.received, 15)
                await wait_for(lambda: uplink.in_flight == 0)
                assert await uplink.outbox.depth() == 0
    finally:
        ingest.stop()


async def test_acl_refusal_and_ingest_conflicts_are_quarantined_not_retried(
    tmp_path: Path,
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\ntopic deny lineside/v1/+/gateways/+/data/label_scans\n")
    broker = Mosquitto(tmp_path / "broker", extra_config=f"acl_file {acl}")
    broker.start()
    try:
        async with running_store(tmp_path) as store:
            packs = await commit(store, [pack(i) for i in range(10)])
            scans = await commit(
                store, [LabelScan(ts_us=i, line="L1", device="s", raw=b"x") for i in range(3)]
            )
            ingest = FakeIngest(broker, conflicts={packs[3]: "same sequence, different payload"})
            ingest.start()
            try:
                async with running_uplink(store, broker) as uplink:
                    outbox = uplink.outbox
                    await wait_for(lambda: uplink.stats.records_quarantined == 4)
                    # The uplink's own alert about it reaches the warehouse.
                    await wait_for(
                        lambda: any(
                            d.get("rule") == "sync_quarantined" for d in ingest.data.values()
                        )
                    )
                    await wait_for(lambda: uplink.in_flight == 0)
                    assert await outbox.depth() == 0
                    await asyncio.sleep(0.3)
                    assert uplink.stats.puback_failures == 1  # refused once, never retried
                    quarantined = {seq: reason for seq, _, reason in await outbox.quarantined()}
                    assert set(quarantined) == {*scans, packs[3]}
                    assert "0x87" in quarantined[scans[0]]
                    assert "different payload" in quarantined[packs[3]]
                    assert set(packs) - {packs[3]} <= ingest.received
                    assert not set(scans) & set(ingest.counts)
            finally:
                ingest.stop()
    finally:
        broker.kill()
