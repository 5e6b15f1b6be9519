"""The gateway's peers as child processes: an OPC UA server, a Modbus server, the ingest.

``python -m bench.peers opcua --probes 100`` (or ``modbus``, ``ingest``) prints one JSON
ready line, then answers one JSON line per command read from stdin (see
:class:`bench.common.JsonPeer`) and exits when stdin closes.

* ``opcua``: an asyncua server with ``--probes`` Double variables ``ns=2;s=P<i>.Temperature``
  and a checkweigher ``CW1`` (``PackCounter``, ``LastNetWeight``, ``NominalWeight``,
  ``Accepted``, ``LabelSequence``). Commands: ``probes`` (write every probe ``hz`` times a
  second, each write a new value), ``packs`` (play below-T2 packs and time how long each takes
  to show on an andon subscriber), ``stats``.
* ``modbus``: a pymodbus TCP server, unit 1, ``--registers`` input registers holding int16
  temperatures in 0.1 °C. Commands: ``stats``.
* ``ingest``: the central ingest (:mod:`sync.ingest`): the MQTT consumer on ``--mqtt-port``
  and the HTTP app over TLS, one SQLite or PostgreSQL warehouse. Commands: ``stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from bench.common import free_port

log = logging.getLogger("bench.peers")

NAMESPACE = "urn:lineside:bench"
NOMINAL_G = 200.0
"""Qn of the benchmark's product: TNE 9 g, T1 191 g, T2 182 g."""
BELOW_T2_G = 170.0
"""The weight of every pack the latency phase plays: below T2, wrongly accepted."""
PACK_PATTERN = re.compile(r"#(\d+) weighs")
"""How an andon state names the pack of an ``emark_t2`` alert (``pack cw1#12 weighs ...``)."""

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _serve_commands(handlers: dict[str, Handler]) -> None:
    """Answer JSON-line commands from stdin until it closes."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        try:
            command = json.loads(line)
            handler = handlers[command.pop("cmd")]
            _say(await handler(command))
        except Exception as exc:  # the parent gets every failure as an answer
            log.exception("command %r failed", line.strip())
            _say({"error": f"{type(exc).__name__}: {exc}"})


# --------------------------------------------------------------------------------------
# OPC UA


class AndonWatch:
    """A paho subscriber to a line's andon topic, timing when each pack shows on the board.

    An andon state names the newest below-T2 pack in its ``emark_t2`` alert; a state that
    names pack N also shows every earlier pack (the board has caught up with them), so each
    pack gets the arrival time of the first state naming it or a later one.
    """

    def __init__(self, host: str, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt  # noqa: PLC0415
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: PLC0415

        self.topic = topic
        self.sent: dict[int, float] = {}
        self.shown: dict[int, float] = {}
        self.messages = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_args: self._subscribed.set()
        self._client.on_connect = lambda client, *_args: client.subscribe(topic, qos=1)
        self._client.connect(host, port)
        self._client.loop_start()

    def wait_subscribed(self, timeout: float) -> bool:
        """Whether the subscription was granted within ``timeout``."""
        return self._subscribed.wait(timeout)

    def _on_message(self, _client: object, _userdata: object, message: Any) -> None:
        arrived = time.monotonic()
        try:
            state = json.loads(message.payload)
        except ValueError:
            return
        numbers = [
            int(match.group(1))
            for alert in state.get("alerts", [])
            if (match := PACK_PATTERN.search(str(alert.get("message", ""))))
        ]
        with self._lock:
            self.messages += 1
            if not numbers:
                return
            newest = max(numbers)
            for counter in self.sent:
                if counter <= newest and counter not in self.shown:
                    self.shown[counter] = arrived

    def note_sent(self, counter: int, at: float) -> None:
        """Pack ``counter`` was written (its counter last) at monotonic time ``at``."""
        with self._lock:
            self.sent[counter] = at

    def latencies_ms(self) -> list[float]:
        """Milliseconds from each pack's write to the first andon state showing it."""
        with self._lock:
            return [(self.shown[c] - t) * 1000 for c, t in self.sent.items() if c in self.shown]

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()


class OpcUaPeer:
    """An asyncua server with probe variables and one checkweigher."""

    def __init__(self, probes: int) -> None:
        self.probes = probes
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/bench"
        self.writes = 0
        self._server: Any = None
        self._probe_ids: list[Any] = []
        self._cw: dict[str, Any] = {}
        self._probe_task: asyncio.Task[None] | None = None
        self._pack_task: asyncio.Task[None] | None = None
        self._watch: AndonWatch | None = None
        self._counter = 0

    async def start(self) -> None:
        """Build the address space and listen."""
        from asyncua import ua  # noqa: PLC0415
        from asyncua.server.server import Server  # noqa: PLC0415

        server = Server()
        server.disable_clock()
        await server.init()
        server.set_server_name("Lineside bench")
        server.set_endpoint(self.endpoint)
        server.set_identity_tokens([ua.AnonymousIdentityToken])
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NAMESPACE)
        objects = server.nodes.objects
        probes = await objects.add_object(f"ns={ns};s=Probes", f"{ns}:Probes")
        for index in range(self.probes):
            node = await probes.add_variable(
                f"ns={ns};s=P{index}.Temperature",
                f"{ns}:P{index}",
                ua.Variant(3.0, ua.VariantType.Double),
            )
            self._probe_ids.append(node.nodeid)
        cw = await objects.add_object(f"ns={ns};s=CW1", f"{ns}:CW1")
        for name, variant in (
            ("NominalWeight", ua.Variant(NOMINAL_G, ua.VariantType.Double)),
            ("LastNetWeight", ua.Variant(0.0, ua.VariantType.Double)),
            ("Accepted", ua.Variant(False, ua.VariantType.Boolean)),
            ("LabelSequence", ua.Variant(0, ua.VariantType.UInt32)),
            ("PackCounter", ua.Variant(0, ua.VariantType.UInt32)),
        ):
            node = await cw.add_variable(f"ns={ns};s=CW1.{name}", f"{ns}:{name}", variant)
            self._cw[name] = node.nodeid
        await server.start()
        self._server = server

    async def stop(self) -> None:
        """Stop writing and close the server."""
        for task in (self._probe_task, self._pack_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._watch is not None:
            self._watch.close()
        if self._server is not None:
            await self._server.stop()

    async def _write(self, nodeid: Any, value: Any, variant_type: Any) -> None:
        from asyncua import ua  # noqa: PLC0415

        # Stamped at the source, as a checkweigher stamps each write: the gateway pairs a
        # pack's values with its counter by source time (docs/devices.md).
        await self._server.write_attribute_value(
            nodeid,
            ua.DataValue(
                ua.Variant(value, variant_type),
                SourceTimestamp=cast("ua.DateTime", datetime.now(UTC)),
            ),
        )

    async def _probe_loop(self, hz: float) -> None:
        from asyncua import ua  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        period = 1 / hz
        due = loop.time()
        step = 0
        while True:
            step += 1
            for index, nodeid in enumerate(self._probe_ids):
                # Every write is a new value (2.0 .. 4.9 °C), so every write is a notification.
                await self._write(nodeid, 2.0 + (step + index) % 30 / 10, ua.VariantType.Double)
            self.writes += len(self._probe_ids)
            due += period
            now = loop.time()
            if due < now - period:
                due = now  # fell behind: carry on from now, no burst to catch up
            await asyncio.sleep(max(due - now, 0.0))

    async def cmd_probes(self, command: dict[str, Any]) -> dict[str, Any]:
        """``{"hz": H}``: write every probe H times a second (0 stops)."""
        if self._probe_task is not None:
            self._probe_task.cancel()
            self._probe_task = None
        hz = float(command["hz"])
        if hz > 0:
            self._probe_task = asyncio.create_task(self._probe_loop(hz))
        return {"ok": True, "writes": self.writes}

    async def _pack_loop(self, count: int, rate: float, seed: int) -> None:
        from asyncua import ua  # noqa: PLC0415

        watch = self._watch
        assert watch is not None
        rng = random.Random(seed)
        for _ in range(count):
            self._counter += 1
            # The machine's order: the pack's values first, the counter last.
            await self._write(self._cw["LastNetWeight"], BELOW_T2_G, ua.VariantType.Double)
            await self._write(self._cw["Accepted"], True, ua.VariantType.Boolean)
            await self._write(self._cw["LabelSequence"], self._counter, ua.VariantType.UInt32)
            await self._write(self._cw["PackCounter"], self._counter, ua.VariantType.UInt32)
            watch.note_sent(self._counter, time.monotonic())
            # Random spacing: packs land at every phase of the publishing interval.
            await asyncio.sleep(rng.uniform(0.5, 1.5) / rate)

    async def cmd_packs(self, command: dict[str, Any]) -> dict[str, Any]:
        """``{"count", "rate", "mqtt_host", "mqtt_port", "topic"}``: play below-T2 packs."""
        if self._pack_task is not None and not self._pack_task.done():
            raise RuntimeError("packs are still being played")
        if self._watch is not None:
            self._watch.close()
        self._watch = AndonWatch(
            str(command["mqtt_host"]), int(command["mqtt_port"]), str(command["topic"])
        )
        if not await asyncio.to_thread(self._watch.wait_subscribed, 10.0):
            raise RuntimeError("the andon subscription was not granted")
        self._pack_task = asyncio.create_task(
            self._pack_loop(int(command["count"]), float(command["rate"]), 1)
        )
        return {"ok": True}

    async def cmd_stats(self, _command: dict[str, Any]) -> dict[str, Any]:
        """Values written, packs played, and the andon latencies measured so far."""
        watch = self._watch
        return {
            "writes": self.writes,
            "packs_sent": len(watch.sent) if watch else 0,
            "packs_done": self._pack_task is not None and self._pack_task.done(),
            "andon_messages": watch.messages if watch else 0,
            "latencies_ms": watch.latencies_ms() if watch else [],
        }


async def _opcua(args: argparse.Namespace) -> None:
    peer = OpcUaPeer(args.probes)
    await peer.start()
    try:
        _say({"ready": True, "endpoint": peer.endpoint, "probes": args.probes})
        await _serve_commands(
            {"probes": peer.cmd_probes, "packs": peer.cmd_packs, "stats": peer.cmd_stats}
        )
    finally:
        await peer.stop()


# --------------------------------------------------------------------------------------
# Modbus


async def _modbus(args: argparse.Namespace) -> None:
    from pymodbus.server import ModbusTcpServer  # noqa: PLC0415
    from pymodbus.simulator import DataType, SimData, SimDevice  # noqa: PLC0415

    # int16 tenths of a degree: 2.0 .. 4.9 °C.
    values = [20 + index % 30 for index in range(args.registers)]
    device = SimDevice(
        id=1,
        simdata=(
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=args.registers, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, values=values, datatype=DataType.REGISTERS)],
        ),
    )
    port = free_port()
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        _say({"ready": True, "host": "127.0.0.1", "port": port, "registers": args.registers})

        async def stats(_command: dict[str, Any]) -> dict[str, Any]:
            return {"ok": True}

        await _serve_commands({"stats": stats})
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------------------
# The central ingest


async def _ingest(args: argparse.Namespace) -> None:
    import uvicorn  # noqa: PLC0415

    from sync.ingest import IngestSettings  # noqa: PLC0415
    from sync.ingest.auth import TokenFile  # noqa: PLC0415
    from sync.ingest.http_app import IngestApp  # noqa: PLC0415
    from sync.ingest.mqtt_consumer import MqttConsumer  # noqa: PLC0415
    from sync.ingest.warehouse import create_warehouse  # noqa: PLC0415

    warehouse = create_warehouse(
        postgres_dsn=args.postgres_dsn, sqlite_path=Path(args.sqlite) if args.sqlite else None
    )
    await warehouse.open()
    settings = IngestSettings(
        mqtt_host="127.0.0.1",
        mqtt_port=args.mqtt_port,
        client_id=f"lineside-ingest-bench-{args.mqtt_port}",
        http_enabled=False,
    )
    consumer = MqttConsumer(settings, warehouse)
    tokens = TokenFile(path=Path(args.tokens)) if args.tokens else None
    app = IngestApp(warehouse, tokens=tokens)
    http_port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=http_port,
        interface="asgi3",
        lifespan="off",
        ws="none",
        log_config=None,
        access_log=False,
        server_header=False,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
    )
    server = uvicorn.Server(config)
    tasks = [
        asyncio.create_task(consumer.run(), name="ingest.mqtt"),
        asyncio.create_task(server.serve(), name="ingest.https"),
    ]
    try:
        await asyncio.wait_for(consumer.subscribed.wait(), 15)
        while not server.started:  # noqa: ASYNC110 (uvicorn has no event for it)
            await asyncio.sleep(0.02)
        _say({"ready": True, "https_port": http_port})

        async def stats(_command: dict[str, Any]) -> dict[str, Any]:
            return {
                "batches": warehouse.stats.batches,
                "inserted": warehouse.stats.inserted,
                "duplicates": warehouse.stats.duplicates,
                "conflicts": warehouse.stats.conflicts,
            }

        await _serve_commands({"stats": stats})
    finally:
        server.should_exit = True
        tasks[0].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await warehouse.close()


def main(argv: list[str] | None = None) -> int:
    """Run one peer until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    kinds = parser.add_subparsers(dest="kind", required=True)
    opcua = kinds.add_parser("opcua")
    opcua.add_argument("--probes", type=int, default=100)
    modbus = kinds.add_parser("modbus")
    modbus.add_argument("--registers", type=int, default=100)
    ingest = kinds.add_parser("ingest")
    ingest.add_argument("--mqtt-port", type=int, required=True)
    ingest.add_argument("--sqlite", default=None)
    ingest.add_argument("--postgres-dsn", default=None)
    ingest.add_argument("--cert", required=True)
    ingest.add_argument("--key", required=True)
    ingest.add_argument("--tokens", default=None, help="the gateways' token hashes (HTTPS)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    run = {"opcua": _opcua, "modbus": _modbus, "ingest": _ingest}[args.kind]
    if args.kind == "ingest":
        # As ``lineside ingest`` does (gateway/commands/ingest.py).
        from sync.ingest.gc_settings import settle_collector  # noqa: PLC0415

        settle_collector()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
