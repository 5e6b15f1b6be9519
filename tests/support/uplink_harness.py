"""A store and an MQTT uplink against a real broker, with a scriptable ingest."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.config import StoreSection
from gateway.core.backoff import Backoff
from gateway.core.clock import SystemClock
from gateway.core.records import (
    AlertRecord,
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    Severity,
    TemperatureReading,
)
from gateway.store import Store
from sync.mqtt_uplink import MqttUplink
from sync.protocol import (
    DATA_SUBSCRIPTION,
    Ack,
    ack_topic,
    decode_batch,
    encode_ack,
)
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for_sync

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


def transition(i: int, ts_us: int, *, line: str | None = "L1") -> AlertRecord:
    """The ``i``-th transition of a run of them: raised, cleared, raised, ..."""
    return AlertRecord(
        ts_us=ts_us,
        alert_id=f"haccp_upper.P{i // 2}",
        rule="haccp_upper",
        subject=f"P{i // 2}",
        severity=Severity.CRITICAL,
        state="raised" if i % 2 == 0 else "cleared",
        message=f"transition {i}",
        line=line,
        detail={"i": i},
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
