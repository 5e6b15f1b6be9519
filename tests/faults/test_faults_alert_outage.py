"""A broker outage during a burst of alert transitions (issue 17; docs/reference/reliability.md
§7 row 19).

The gateway runs with ``[sync.mqtt]`` against a real mosquitto; a HACCP probe's readings, fed
through the gateway's pipeline, raise and clear its alert again and again: some transitions
before the broker stops, most while it is away for :data:`OUTAGE_S`, the rest right after it
is back, while the gateway is still reconnecting. A board subscribed with a persistent
session (the broker keeps it across its restart) must then have seen every transition the
gateway stored, in ``seq`` order, a repeat only as the same bytes after a reconnect; and the
line's retained andon state must reach it within :data:`REPUBLISH_WITHIN_S` of the broker
accepting connections again, on the reconnect's CONNACK.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.base import DeviceAdapter
from gateway.config import LinesideConfig, load_config
from gateway.core.clock import Clock
from gateway.core.link import LinkState
from gateway.core.records import TemperatureReading
from gateway.pipeline import Pipeline
from gateway.service import run_gateway
from gateway.status import GatewayStatus
from sync.alert_feed import AlertFeed
from sync.mqtt_uplink import MqttUplink
from sync.protocol import alerts_topic, andon_topic, gateway_alerts_topic
from tests.support.configs import minimal_config_text
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for, wait_for_sync

OUTAGE_S = 20.0
"""How long the broker is away (the outage of the issue)."""
BEFORE, DURING, AFTER = 10, 80, 30
"""Transitions raised before the broker stops, while it is away, and as soon as it is back."""
RECONNECT_MAX_S = 0.5
"""The gateway's reconnect backoff cap here (``[sync.mqtt] reconnect_max_s``)."""
REPUBLISH_WITHIN_S = 1.0
"""From the broker accepting connections to the retained andon state at the board."""

SITE, GATEWAY, LINE = "test-site", "gw-test", "L1"
pytestmark = pytest.mark.slow


class Board:
    """An andon board with a persistent session: what it receives, when, in order."""

    def __init__(self, broker: Mosquitto, *topics: str) -> None:
        self.messages: list[tuple[float, str, bytes]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="board", protocol=MQTTProtocolVersion.MQTTv5
        )
        # Back quickly after the broker's restart; the session itself is kept by the broker.
        self.client.reconnect_delay_set(0.05, 0.1)  # type: ignore[arg-type]

        def on_connect(client: mqtt.Client, _u: Any, flags: Any, _rc: Any, _p: Any) -> None:
            # Subscribing again would replay the broker's retained andon as if it were new.
            if not flags.session_present:
                for topic in topics:
                    client.subscribe(topic, qos=1)

        def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            with self._lock:
                self.messages.append((time.monotonic(), message.topic, bytes(message.payload)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        self.client.connect(
            broker.host, broker.port, keepalive=5, clean_start=False, properties=properties
        )
        self.client.loop_start()
        wait_for_sync(self.subscribed.is_set, 5, "the board's subscriptions")

    def received(self, kind: str) -> list[tuple[float, str, bytes]]:
        """Messages on topics of ``kind`` (``/andon`` or ``/alerts``, with or without a line
        level after it)."""
        with self._lock:
            return [m for m in self.messages if f"{kind}/" in m[1] or m[1].endswith(kind)]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def board_on(broker: Mosquitto) -> Iterator[Board]:
    board = Board(
        broker,
        alerts_topic(SITE, GATEWAY, "+"),
        gateway_alerts_topic(SITE, GATEWAY),
        andon_topic(SITE, GATEWAY, LINE),
    )
    try:
        yield board
    finally:
        board.stop()


def gateway_config(tmp_path: Path, broker: Mosquitto) -> LinesideConfig:
    """One line, one HACCP probe that alerts at once above 5 °C, and the MQTT uplink."""
    path = tmp_path / "gw.toml"
    path.write_text(
        minimal_config_text(tmp_path / "gw.db", commit_interval_ms=20)
        + '[[devices]]\nid = "tt1"\nkind = "opcua"\nline = "L1"\nrole = "temperature_probe"\n'
        'endpoint = "opc.tcp://127.0.0.1:9"\n'
        '[[devices.groups]]\ntags = [{ name = "T1", node = "ns=2;s=T1" }]\n'
        '[[rules.probes]]\ndevice = "tt1"\nprobe = "T1"\nupper_c = 5.0\ndebounce_s = 0\n'
        f'[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f"reconnect_min_s = 0.1\nreconnect_max_s = {RECONNECT_MAX_S}\n"
    )
    return load_config(path)


class Probe:
    """Feeds the gateway's pipeline (in place of the device adapter): every reading crosses
    the limit, so every reading is one alert transition."""

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self.readings = 0

    def intake(
        self, _config: LinesideConfig, pipeline: Pipeline, _clock: Clock
    ) -> list[DeviceAdapter]:
        self.pipeline = pipeline
        return []

    def feed(self, count: int) -> None:
        assert self.pipeline is not None
        for _ in range(count):
            hot = self.readings % 2 == 0
            self.pipeline.submit(
                TemperatureReading(
                    ts_us=time.time_ns() // 1000,
                    line=LINE,
                    device="tt1",
                    probe="T1",
                    celsius=8.0 if hot else 2.0,
                )
            )
            self.readings += 1


async def test_every_alert_transition_reaches_the_board_across_a_broker_outage(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(tmp_path / "broker", persistence=True)  # keeps the board's session
    broker.start()
    probe = Probe()
    stop = asyncio.Event()
    started: asyncio.Future[GatewayStatus] = asyncio.get_running_loop().create_future()
    try:
        with board_on(broker) as board:
            gateway = asyncio.create_task(
                run_gateway(
                    gateway_config(tmp_path, broker),
                    stop=stop,
                    intake=probe.intake,
                    on_status=started.set_result,
                )
            )
            try:
                status = await asyncio.wait_for(started, 30)
                uplink = status.uplink
                assert isinstance(uplink, MqttUplink)
                assert isinstance(uplink.alerts, AlertFeed)
                feed = uplink.alerts
                store = status.store
                await wait_for(lambda: uplink.state is LinkState.UP, 15)
                await wait_for(lambda: bool(board.received("/andon")), 10, "the first andon")

                async def stored() -> list[int]:
                    return [seq for (seq,) in await store.fetchall("SELECT seq FROM alerts")]

                probe.feed(BEFORE)
                broker.stop()  # clean: the broker saves the board's session
                stopped = time.monotonic()
                await wait_for(lambda: uplink.state is not LinkState.UP, 10)
                probe.feed(DURING)
                await wait_for(
                    lambda: time.monotonic() - stopped >= OUTAGE_S, OUTAGE_S + 5, "the outage"
                )
                attempts = uplink.stats.connect_attempts

                called = time.monotonic()
                broker.start()  # returns once the port accepts connections
                back = time.monotonic()
                probe.feed(AFTER)
                await wait_for(
                    lambda: any(t >= called for t, _, _ in board.received("/andon")),
                    10,
                    "the andon state republished",
                )
                andon_at = next(t for t, _, _ in board.received("/andon") if t >= called)
                republished_s = max(0.0, andon_at - back)

                async def all_stored() -> bool:
                    return len(await stored()) == probe.readings

                await wait_for(all_stored, 15, "every transition stored")
                seqs = await stored()

                def all_seen() -> bool:
                    got = {json.loads(p)["seq"] for _, _, p in board.received("/alerts")}
                    return set(seqs) <= got

                await wait_for(all_seen, 30, "every stored transition at the board")
                await wait_for(lambda: feed.cursor == seqs[-1], 10, "the cursor at the last")
            finally:
                stop.set()
                await asyncio.wait_for(gateway, 30)
            alerts = board.received("/alerts")
            andon = board.received("/andon")
    finally:
        broker.kill()

    arrived = [json.loads(payload)["seq"] for _, _, payload in alerts]
    first_time = list(dict.fromkeys(arrived))
    by_seq: dict[int, set[bytes]] = {}
    for _, _, payload in alerts:
        by_seq.setdefault(json.loads(payload)["seq"], set()).add(payload)
    duplicates = len(arrived) - len(first_time)
    print(
        f"\n{len(seqs)} transitions stored ({BEFORE} before, {DURING} during a {OUTAGE_S:g} s "
        f"outage, {AFTER} after); {len(set(arrived) & set(seqs))} of them at the board, "
        f"{duplicates} repeats; reconnect attempts during the outage: {attempts}; "
        f"andon republished {republished_s:.3f} s after the broker accepted connections"
    )
    assert len(seqs) >= 50
    assert first_time == seqs, "every stored transition, in seq order"
    assert all(len(payloads) == 1 for payloads in by_seq.values()), "repeats are exact"
    assert duplicates <= feed.window * uplink.stats.connects, "repeats only after reconnects"
    assert republished_s <= REPUBLISH_WITHIN_S
    assert json.loads(andon[-1][2])["state"] == "green"  # the last reading cleared the alert
