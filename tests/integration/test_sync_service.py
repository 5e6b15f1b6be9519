"""The gateway service with [sync.mqtt] through a real mosquitto to the central ingest:
every record committed on the gateway reaches the warehouse exactly once, the outbox empties,
an andon subscriber sees the line's retained state and the gateway's status, and the alert
transitions the gateway stores at start are published like every other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import StoreSection, load_config
from gateway.core.clock import SystemClock
from gateway.core.records import AlertRecord, PackEvent, Severity
from gateway.service import run_gateway
from gateway.store import Store
from sync.ingest import IngestService, IngestSettings
from sync.protocol import alerts_topic, andon_topic, gateway_alerts_topic, status_topic
from tests.support.configs import minimal_config_text
from tests.support.gateway_tokens import token_for, tokens
from tests.support.mosquitto import Mosquitto
from tests.support.paths import REPO
from tests.support.uplink_harness import Watcher
from tests.support.waiting import wait_for, wait_for_sync


def retained(broker: Mosquitto, topics: list[str]) -> dict[str, bytes | bytearray]:
    """What a subscriber that connects now is handed for ``topics``."""
    seen: dict[str, bytes | bytearray] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, message: seen.__setitem__(message.topic, message.payload)
    client.connect(broker.host, broker.port)
    for topic in topics:
        client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        # The caller checks what arrived: a missing topic shows there, by name.
        with contextlib.suppress(AssertionError):
            wait_for_sync(lambda: len(seen) >= len(topics), timeout=5)
    finally:
        client.loop_stop()
        client.disconnect()
    return seen


async def test_gateway_records_reach_the_warehouse_exactly_once(
    tmp_path: Path, broker: Mosquitto
) -> None:
    warehouse_path = tmp_path / "warehouse.db"
    ingest = IngestService(
        IngestSettings(
            mqtt_host=broker.host, mqtt_port=broker.port, http_port=0, sqlite_path=warehouse_path
        )
    )
    ingest_task = asyncio.create_task(ingest.run())
    await asyncio.wait_for(ingest.ready.wait(), 15)
    db_path = tmp_path / "gw.db"
    config_path = tmp_path / "gw.toml"
    config_path.write_text(
        minimal_config_text(db_path, commit_interval_ms=20)
        + f'[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    config = load_config(config_path)
    stop = asyncio.Event()
    started: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    gateway = asyncio.create_task(run_gateway(config, stop=stop, on_ready=started.set_result))
    try:
        store = await asyncio.wait_for(started, 15)
        await asyncio.gather(
            *(
                store.submit(  # type: ignore[attr-defined]
                    PackEvent(ts_us=1_000_000 + i, line="L1", device="cw1", net_g=240.0 + i % 7)
                )
                for i in range(300)
            )
        )  # committed (and in the outbox) before we wait for the outbox to drain

        async def drained() -> bool:
            rows = await store.fetchall("SELECT count(*) FROM outbox")  # type: ignore[attr-defined]
            return int(rows[0][0]) == 0

        await wait_for(drained, timeout=30)
        messages = await asyncio.to_thread(
            retained,
            broker,
            [status_topic("test-site", "gw-test"), andon_topic("test-site", "gw-test", "L1")],
        )
        assert messages[status_topic("test-site", "gw-test")] == b"online"
        andon = json.loads(messages[andon_topic("test-site", "gw-test", "L1")])
        assert andon["state"] == "green"
    finally:
        stop.set()
        await asyncio.wait_for(gateway, 15)
        ingest_task.cancel()
        await asyncio.gather(ingest_task, return_exceptions=True)

    edge = sqlite3.connect(db_path)
    committed = {seq for (seq,) in edge.execute("SELECT seq FROM packs")}
    committed |= {seq for (seq,) in edge.execute("SELECT seq FROM device_events")}
    warehouse = sqlite3.connect(warehouse_path)
    received = [seq for (seq,) in warehouse.execute("SELECT seq FROM records")]
    assert len(received) == len(set(received)), "exactly once in the warehouse"
    # The gateway_stopped event is committed at shutdown after the uplink stopped: it stays
    # in the outbox for the next start.
    left = {seq for (seq,) in edge.execute("SELECT seq FROM outbox")}
    assert set(received) <= committed, "nothing invented"
    assert committed - left == set(received), "everything acknowledged is in the warehouse"
    assert len(received) >= 300


async def test_gateway_records_reach_the_warehouse_over_https(tmp_path: Path) -> None:
    warehouse_path = tmp_path / "warehouse.db"
    ingest = IngestService(
        IngestSettings(
            mqtt_enabled=False,
            http_port=0,
            sqlite_path=warehouse_path,
            gateway_tokens=tokens("gw-test"),
        )
    )
    ingest_task = asyncio.create_task(ingest.run())
    await asyncio.wait_for(ingest.ready.wait(), 15)
    db_path = tmp_path / "gw.db"
    config_path = tmp_path / "gw.toml"
    token_path = tmp_path / "ingest-token"
    token_path.write_text(token_for("gw-test") + "\n")
    config_path.write_text(
        minimal_config_text(db_path, commit_interval_ms=20)
        + f'[sync.https]\nurl = "http://127.0.0.1:{ingest.http_port}/v1/ingest"\n'
        + f'token = {{ file = "{token_path}" }}\n'
    )
    stop = asyncio.Event()
    started: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    gateway = asyncio.create_task(
        run_gateway(load_config(config_path), stop=stop, on_ready=started.set_result)
    )
    try:
        store = await asyncio.wait_for(started, 15)
        await asyncio.gather(
            *(
                store.submit(  # type: ignore[attr-defined]
                    PackEvent(ts_us=2_000_000 + i, line="L1", device="cw1", net_g=241.0)
                )
                for i in range(120)
            )
        )

        async def drained() -> bool:
            rows = await store.fetchall("SELECT count(*) FROM outbox")  # type: ignore[attr-defined]
            return int(rows[0][0]) == 0

        await wait_for(drained, timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(gateway, 15)
        ingest_task.cancel()
        await asyncio.gather(ingest_task, return_exceptions=True)
    edge = sqlite3.connect(db_path)
    packs = {seq for (seq,) in edge.execute("SELECT seq FROM packs")}
    received = [
        seq for (seq,) in sqlite3.connect(warehouse_path).execute("SELECT seq FROM records")
    ]
    assert len(received) == len(set(received))
    assert packs <= set(received)
    # The data team's check: every committed record is in the warehouse or still buffered.
    command = [sys.executable, "-m", "gateway.cli", "reconcile", "-c", str(config_path)]
    ok = await asyncio.to_thread(
        subprocess.run,
        [*command, "--sqlite", str(warehouse_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "every committed record is in the warehouse or buffered" in ok.stdout
    lost = sqlite3.connect(warehouse_path)
    lost.execute(
        "DELETE FROM records WHERE seq = (SELECT min(seq) FROM records WHERE stream = 'packs')"
    )
    lost.commit()
    lost.close()
    bad = await asyncio.to_thread(
        subprocess.run,
        [*command, "--sqlite", str(warehouse_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert bad.returncode == 1
    # Summary first (docs/command-output.md), then the bucket that differs.
    assert bad.stdout.startswith("gateway gw-test: 1 bucket(s) differ")
    assert bad.stdout.splitlines()[-1].startswith("packs")
    assert "1 bucket(s) differ" in bad.stderr


async def test_transitions_stored_at_start_are_published(tmp_path: Path, broker: Mosquitto) -> None:
    """Alerts of other sources active at the last stop are cleared by the restart (see
    RulesEngine.restore); those transitions are stored at start, before any subscriber of the
    rules engine exists, and reach the alerts topics from the store like every other."""
    db_path = tmp_path / "gw.db"
    async with Store(StoreSection(path=db_path, commit_interval_ms=20), SystemClock()) as store:
        now = store.clock.wall_us()
        await store.commit_with_meta(
            [
                AlertRecord(
                    ts_us=now,
                    alert_id=alert_id,
                    rule=rule,
                    subject="erp",
                    severity=Severity.MAJOR,
                    state="raised",
                    message="raised before the stop",
                    line=line,
                )
                for alert_id, rule, line in (
                    ("erp.unavailable", "erp_unavailable", None),
                    ("erp.run_changed.R1", "erp_run_changed", "L1"),
                )
            ],
            {},
        )
    line_topic = alerts_topic("test-site", "gw-test", "L1")
    gateway_topic = gateway_alerts_topic("test-site", "gw-test")
    board = Watcher(broker, line_topic, gateway_topic)
    config_path = tmp_path / "gw.toml"
    config_path.write_text(
        minimal_config_text(db_path, commit_interval_ms=20)
        + f'[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    stop = asyncio.Event()
    gateway = asyncio.create_task(run_gateway(load_config(config_path), stop=stop))

    def seen() -> list[tuple[str, dict[str, object]]]:
        return [(m.topic, json.loads(m.payload)) for m in list(board.messages)]

    def restart_clears() -> list[tuple[str, dict[str, object]]]:
        return [(t, b) for t, b in seen() if str(b["message"]).startswith("cleared at gateway")]

    try:
        await wait_for(lambda: len(restart_clears()) == 2, 20, "both clears of the restart")
    finally:
        stop.set()
        await asyncio.wait_for(gateway, 15)
        board.stop()
    assert {(topic, body["alert_id"]) for topic, body in restart_clears()} == {
        (gateway_topic, "erp.unavailable"),
        (line_topic, "erp.run_changed.R1"),
    }
    edge = sqlite3.connect(db_path)
    stored = [seq for (seq,) in edge.execute("SELECT seq FROM alerts ORDER BY seq")]
    assert [body["seq"] for _, body in seen()] == stored  # every one, in order, once
