"""The bare libraries doing the same job as the gateway, without the gateway.

``python -m bench.bare KIND ...`` measures one thing and prints one JSON line:

* ``asyncua``: a client receiving the same subscription the gateway's OPC UA adapter makes
  (same items, publishing and sampling intervals, queue sizes, asyncua's async-iterator
  consumer), counting data-change notifications and nothing else.
* ``modbus``: pymodbus clients reading the same input registers on the same poll grid as the
  gateway's devices, decoding each register as an int16 and scaling it (no store).
* ``sqlite``: sqlite3 ``executemany`` of the same rows into the same tables the store writes
  (the record and its outbox row), WAL, ``synchronous=FULL``, the same rows per transaction.
* ``paho``: paho-mqtt publishing one record per message at QoS 1 until every PUBACK is in.
* ``relay``: the shortest path from a pack to an andon board with the same libraries: an
  asyncua client subscribed to the checkweigher's pack counter (same publishing interval)
  that publishes each new counter to MQTT at once (QoS 1, retained), in the shape the
  andon watcher reads. It runs until stdin closes (a :class:`bench.common.JsonPeer`).
* ``probe-relay``: the bare pipeline beside the end-to-end row: an asyncua client
  subscribed to the probes (same items, interval and queue size as the gateway) that
  publishes every change at once as one QoS 1 MQTT message holding one record; nothing is
  validated, joined, stored or acknowledged end to end.
* ``imports``: a fresh interpreter importing the libraries the gateway imports at start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

GATEWAY_LIBRARIES = (
    "asyncua",
    "pymodbus.client",
    "paho.mqtt.client",
    "aiosqlite",
    "pydantic",
    "httpx",
)
"""What a gateway process imports at start-up that is not its own code."""


def _result(**figures: object) -> None:
    sys.stdout.write(json.dumps(figures) + "\n")
    sys.stdout.flush()


async def _asyncua(args: argparse.Namespace) -> None:
    from asyncua import ua  # noqa: PLC0415
    from asyncua.client.client import Client  # noqa: PLC0415
    from asyncua.common.subscription import DataChangeEvent, OverflowPolicy  # noqa: PLC0415
    from asyncua.ua.attribute_ids import AttributeIds  # noqa: PLC0415

    client = Client(args.endpoint, timeout=5)
    await client.connect()
    try:
        ns = await client.get_namespace_index(args.namespace)
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = float(args.publishing_ms)
        params.RequestedMaxKeepAliveCount = 100
        params.RequestedLifetimeCount = 300
        params.MaxNotificationsPerPublish = 0
        params.PublishingEnabled = True
        params.Priority = 0
        subscription = await client.create_subscription(
            params, None, queue_maxsize=10_000, overflow=OverflowPolicy.DISCONNECT
        )
        requests = []
        for index in range(args.nodes):
            read = ua.ReadValueId()
            read.NodeId = ua.NodeId.from_string(f"ns={ns};s=P{index}.Temperature")
            read.AttributeId = AttributeIds.Value
            parameters = ua.MonitoringParameters()
            parameters.ClientHandle = index + 1
            parameters.SamplingInterval = float(args.sampling_ms)
            parameters.QueueSize = args.queue_size
            parameters.DiscardOldest = True
            request = ua.MonitoredItemCreateRequest()
            request.ItemToMonitor = read
            request.MonitoringMode = ua.MonitoringMode.Reporting
            request.RequestedParameters = parameters
            requests.append(request)
        await subscription.create_monitored_items(requests)
        counted = 0
        loop = asyncio.get_running_loop()
        window: dict[str, float] = {}
        start_at = loop.time() + args.warmup
        end_at = start_at + args.seconds

        async def consume() -> None:
            nonlocal counted
            async for event in subscription:
                if isinstance(event, DataChangeEvent):
                    counted += 1

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(max(start_at - loop.time(), 0))
        window["count0"], window["cpu0"], window["t0"] = counted, time.process_time(), loop.time()
        await asyncio.sleep(max(end_at - loop.time(), 0))
        window["count1"], window["cpu1"], window["t1"] = counted, time.process_time(), loop.time()
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    finally:
        await client.disconnect()
    notifications = window["count1"] - window["count0"]
    seconds = window["t1"] - window["t0"]
    _result(
        notifications=int(notifications),
        seconds=seconds,
        per_s=notifications / seconds,
        cpu_us=(window["cpu1"] - window["cpu0"]) * 1e6 / max(notifications, 1),
        cpu_pct=(window["cpu1"] - window["cpu0"]) * 100 / seconds,
    )


async def _modbus(args: argparse.Namespace) -> None:
    from pymodbus.client import AsyncModbusTcpClient  # noqa: PLC0415

    clients = [
        AsyncModbusTcpClient(args.host, port=args.port, timeout=3, retries=0, reconnect_delay=0)
        for _ in range(args.devices)
    ]
    for client in clients:
        await client.connect()
    loop = asyncio.get_running_loop()
    tags = 0
    interval = args.interval_ms / 1000
    # A flag, not cancel(): pymodbus waits with wait_for, which on Python 3.11 can swallow a
    # cancellation (cpython gh-86296).
    stopping = False

    async def poll(client: AsyncModbusTcpClient) -> None:
        nonlocal tags
        due = loop.time()
        while not stopping:
            reply = await client.read_input_registers(0, count=args.count, device_id=1)
            # The same decoding the adapter does for an int16 tag scaled by 0.1.
            values = [(w - 0x10000 if w & 0x8000 else w) * 0.1 for w in reply.registers]
            tags += len(values)
            due += interval
            now = loop.time()
            if due <= now:
                due += (int((now - due) / interval) + 1) * interval
            await asyncio.sleep(due - now)

    tasks = [asyncio.create_task(poll(client)) for client in clients]
    await asyncio.sleep(args.warmup)
    tags0, cpu0, t0 = tags, time.process_time(), loop.time()
    await asyncio.sleep(args.seconds)
    tags1, cpu1, t1 = tags, time.process_time(), loop.time()
    stopping = True
    await asyncio.gather(*tasks)
    for client in clients:
        client.close()
    done = tags1 - tags0
    _result(
        tags=done,
        seconds=t1 - t0,
        per_s=done / (t1 - t0),
        cpu_us=(cpu1 - cpu0) * 1e6 / max(done, 1),
        cpu_pct=(cpu1 - cpu0) * 100 / (t1 - t0),
    )


async def _store_schema(path: Path) -> None:
    from gateway.store.database import open_database  # noqa: PLC0415

    async def nothing_more(_db: object) -> None:
        return None

    db = await open_database(path, nothing_more)
    await db.close()


def _sqlite(args: argparse.Namespace) -> None:
    from gateway.core.records import TemperatureReading  # noqa: PLC0415
    from gateway.store.schema import RECORD_TABLES  # noqa: PLC0415

    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-sqlite-"))
    spec = RECORD_TABLES[TemperatureReading]
    records = [
        TemperatureReading(
            ts_us=1_700_000_000_000_000 + i,
            line="L1",
            device="probes",
            probe=f"P{i % 100}",
            celsius=2.0 + i % 30 / 10,
        )
        for i in range(args.rows)
    ]
    rows = [(i + 1, *spec.row(r)) for i, r in enumerate(records)]
    outbox = [(i + 1, spec.table, int(spec.priority), 1) for i in range(args.rows)]
    figures: dict[str, Any] = {}
    for name, with_outbox in (("with_outbox", True), ("table_only", False)):
        path = folder / f"bare-{name}.db"
        # The store's own tables, as the gateway opens them (its migrations, then its CHECK
        # rewrite: gateway/store/check_rewrite.py); the inserts below are plain sqlite3.
        asyncio.run(_store_schema(path))
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        started = time.perf_counter()
        cpu = time.process_time()
        for first in range(0, args.rows, args.batch):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(spec.insert_sql, rows[first : first + args.batch])
            if with_outbox:
                db.executemany(
                    "INSERT INTO outbox (seq, stream, priority, enqueued_us) VALUES (?, ?, ?, ?)",
                    outbox[first : first + args.batch],
                )
            db.execute("COMMIT")
        seconds = time.perf_counter() - started
        figures[name] = {
            "rows": args.rows,
            "seconds": seconds,
            "per_s": args.rows / seconds,
            "cpu_us": (time.process_time() - cpu) * 1e6 / args.rows,
        }
        db.close()
    _result(**figures)


def _paho(args: argparse.Namespace) -> None:
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion  # noqa: PLC0415

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    done = threading.Event()
    acked = 0
    # Packet ids are 16 bits: keep fewer than 65,535 messages unacknowledged.
    outstanding = threading.BoundedSemaphore(10_000)

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        outstanding.release()
        if acked >= args.messages:
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    # One record per message, shaped like a stored temperature reading.
    record = {
        "seq": 0,
        "data": {
            "ts_us": 1_700_000_000_000_000,
            "line": "L1",
            "device": "probes",
            "probe": "P1",
            "location": "",
            "run_number": "R1",
            "celsius": 3.4,
            "flags": 0,
        },
    }
    started = time.perf_counter()
    cpu = time.process_time()
    for seq in range(1, args.messages + 1):
        record["seq"] = seq
        outstanding.acquire()
        info = client.publish(
            "lineside/v1/bench/gateways/bare/data/temperatures", json.dumps(record), qos=1
        )
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish refused: {info.rc}")
    if not done.wait(120):
        raise RuntimeError(f"only {acked} of {args.messages} PUBACKs")
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    client.disconnect()
    client.loop_stop()
    _result(
        messages=args.messages,
        seconds=seconds,
        per_s=args.messages / seconds,
        cpu_us=cpu_s * 1e6 / args.messages,
    )


def _subscription_parameters(publishing_ms: int) -> Any:
    """The subscription the relays make: the given publishing interval, no cap on the
    notifications per publish."""
    from asyncua import ua  # noqa: PLC0415

    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = float(publishing_ms)
    params.RequestedMaxKeepAliveCount = 100
    params.RequestedLifetimeCount = 300
    params.MaxNotificationsPerPublish = 0
    params.PublishingEnabled = True
    return params


async def _relay(args: argparse.Namespace) -> None:
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from asyncua import ua  # noqa: PLC0415
    from asyncua.client.client import Client  # noqa: PLC0415
    from asyncua.common.subscription import DataChangeEvent  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: PLC0415

    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    publisher.connect("127.0.0.1", args.mqtt_port)
    publisher.loop_start()
    client = Client(args.endpoint, timeout=5)
    await client.connect()
    try:
        ns = await client.get_namespace_index(args.namespace)
        subscription = await client.create_subscription(
            _subscription_parameters(args.publishing_ms), None, queue_maxsize=10_000
        )
        counter = client.get_node(ua.NodeId.from_string(f"ns={ns};s=CW1.PackCounter"))
        await subscription.subscribe_data_change(
            counter, queuesize=100, sampling_interval=ua.Double(0)
        )

        async def relay() -> None:
            async for event in subscription:
                if isinstance(event, DataChangeEvent):
                    value = event.data.monitored_item.Value.Value.Value
                    state = {"state": "red", "alerts": [{"message": f"pack cw1#{value} weighs"}]}
                    publisher.publish(args.topic, json.dumps(state), qos=1, retain=True)

        task = asyncio.create_task(relay())
        _result(ready=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes stdin
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await client.disconnect()
        publisher.disconnect()
        publisher.loop_stop()


async def _probe_relay(args: argparse.Namespace) -> None:
    """The bare pipeline of the end-to-end row: every probe change, as it arrives, published
    as one QoS 1 MQTT message (one record, shaped like the gateway's), nothing stored."""
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from asyncua import ua  # noqa: PLC0415
    from asyncua.client.client import Client  # noqa: PLC0415
    from asyncua.common.subscription import DataChangeEvent  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: PLC0415

    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    publisher.max_inflight_messages_set(1000)
    acked = 0

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1

    publisher.on_publish = on_publish
    publisher.connect("127.0.0.1", args.mqtt_port)
    publisher.loop_start()
    client = Client(args.endpoint, timeout=5)
    await client.connect()
    try:
        ns = await client.get_namespace_index(args.namespace)
        subscription = await client.create_subscription(
            _subscription_parameters(args.publishing_ms), None, queue_maxsize=10_000
        )
        nodes = [
            client.get_node(ua.NodeId.from_string(f"ns={ns};s=P{index}.Temperature"))
            for index in range(args.nodes)
        ]
        await subscription.subscribe_data_change(
            nodes, queuesize=args.queue_size, sampling_interval=ua.Double(0)
        )
        loop = asyncio.get_running_loop()
        window: dict[str, float] = {}
        seq = 0

        async def relay() -> None:
            nonlocal seq
            async for event in subscription:
                if isinstance(event, DataChangeEvent):
                    seq += 1
                    record = {
                        "seq": seq,
                        "data": {
                            "ts_us": time.time_ns() // 1000,
                            "line": "L1",
                            "device": "probes",
                            "probe": str(event.node.nodeid.Identifier),
                            "celsius": event.value,
                        },
                    }
                    publisher.publish(args.topic, json.dumps(record), qos=1)

        task = asyncio.create_task(relay())
        start_at = loop.time() + args.warmup
        await asyncio.sleep(args.warmup)
        window["acked0"], window["cpu0"], window["t0"] = acked, time.process_time(), loop.time()
        await asyncio.sleep(max(start_at + args.seconds - loop.time(), 0))
        window["acked1"], window["cpu1"], window["t1"] = acked, time.process_time(), loop.time()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await client.disconnect()
        publisher.disconnect()
        publisher.loop_stop()
    relayed = window["acked1"] - window["acked0"]
    seconds = window["t1"] - window["t0"]
    _result(
        relayed=int(relayed),
        seconds=seconds,
        per_s=relayed / seconds,
        cpu_us=(window["cpu1"] - window["cpu0"]) * 1e6 / max(relayed, 1),
        cpu_pct=(window["cpu1"] - window["cpu0"]) * 100 / seconds,
        rss_mb=_rss_mb(),
    )


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def _imports(_args: argparse.Namespace) -> None:
    import importlib  # noqa: PLC0415

    started = time.perf_counter()
    for name in GATEWAY_LIBRARIES:
        importlib.import_module(name)
    seconds = time.perf_counter() - started
    rss_kib = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    _result(import_s=seconds, rss_mb=rss_kib / 1024)


def main(argv: list[str] | None = None) -> int:
    """Run one bare measurement and print its JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    kinds = parser.add_subparsers(dest="kind", required=True)
    opcua = kinds.add_parser("asyncua")
    opcua.add_argument("--endpoint", required=True)
    opcua.add_argument("--namespace", default="urn:lineside:bench")
    opcua.add_argument("--nodes", type=int, required=True)
    opcua.add_argument("--publishing-ms", type=int, required=True)
    opcua.add_argument("--sampling-ms", type=int, required=True)
    opcua.add_argument("--queue-size", type=int, required=True)
    opcua.add_argument("--warmup", type=float, default=2.0)
    opcua.add_argument("--seconds", type=float, default=10.0)
    modbus = kinds.add_parser("modbus")
    modbus.add_argument("--host", default="127.0.0.1")
    modbus.add_argument("--port", type=int, required=True)
    modbus.add_argument("--devices", type=int, required=True)
    modbus.add_argument("--count", type=int, required=True)
    modbus.add_argument("--interval-ms", type=int, required=True)
    modbus.add_argument("--warmup", type=float, default=2.0)
    modbus.add_argument("--seconds", type=float, default=10.0)
    sqlite = kinds.add_parser("sqlite")
    sqlite.add_argument("--rows", type=int, required=True)
    sqlite.add_argument("--batch", type=int, required=True)
    sqlite.add_argument("--dir", default=None)
    paho = kinds.add_parser("paho")
    paho.add_argument("--port", type=int, required=True)
    paho.add_argument("--messages", type=int, required=True)
    relay = kinds.add_parser("relay")
    relay.add_argument("--endpoint", required=True)
    relay.add_argument("--namespace", default="urn:lineside:bench")
    relay.add_argument("--publishing-ms", type=int, required=True)
    relay.add_argument("--mqtt-port", type=int, required=True)
    relay.add_argument("--topic", required=True)
    probe_relay = kinds.add_parser("probe-relay")
    probe_relay.add_argument("--endpoint", required=True)
    probe_relay.add_argument("--namespace", default="urn:lineside:bench")
    probe_relay.add_argument("--nodes", type=int, required=True)
    probe_relay.add_argument("--publishing-ms", type=int, required=True)
    probe_relay.add_argument("--queue-size", type=int, required=True)
    probe_relay.add_argument("--mqtt-port", type=int, required=True)
    probe_relay.add_argument("--topic", required=True)
    probe_relay.add_argument("--warmup", type=float, default=2.0)
    probe_relay.add_argument("--seconds", type=float, default=10.0)
    kinds.add_parser("imports")
    args = parser.parse_args(argv)
    if args.kind in ("asyncua", "modbus", "relay", "probe-relay"):
        runners = {
            "asyncua": _asyncua,
            "modbus": _modbus,
            "relay": _relay,
            "probe-relay": _probe_relay,
        }
        asyncio.run(runners[args.kind](args))
    else:
        {"sqlite": _sqlite, "paho": _paho, "imports": _imports}[args.kind](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
