"""The health endpoint of a running gateway: /healthz, /readyz against a real broker and a
real (unreachable) device, and a health port that is taken when the gateway starts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import HealthSection
from gateway.health import HealthServer
from tests.support.configs import minimal_config_text
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.running_gateway import answers, gateway_in_process, health_toml, http_get
from tests.support.waiting import wait_for


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as running:
        yield running


async def test_readyz_follows_the_broker_down_and_back(tmp_path: Path, broker: Mosquitto) -> None:
    port = free_port()
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db", commit_interval_ms=20)
        + f'[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        + health_toml(port, require_uplink=True)
    )
    readyz = f"http://127.0.0.1:{port}/readyz"
    async with gateway_in_process(config):
        await wait_for(lambda: answers(readyz, 200), timeout=20)
        ready = (await http_get(readyz)).json()
        assert ready["ready"] is True
        assert ready["checks"]["uplink"]["state"] == "up"

        await asyncio.to_thread(broker.stop)
        await wait_for(lambda: answers(readyz, 503), timeout=20)
        down = (await http_get(readyz)).json()
        assert down["ready"] is False
        assert down["checks"]["uplink"]["ok"] is False
        assert down["checks"]["uplink"]["state"] in ("down", "connecting")
        assert down["checks"]["store"]["ok"] is True, "only the uplink is the matter"

        await asyncio.to_thread(broker.start)
        await wait_for(lambda: answers(readyz, 200), timeout=30)
        back = (await http_get(readyz)).json()
        assert back["checks"]["uplink"]["state"] == "up"


async def test_readyz_names_a_device_that_is_not_connected(tmp_path: Path) -> None:
    port, nobody = free_port(), free_port()
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + '[[devices]]\nid = "scan1"\nkind = "scanner_tcp"\nline = "L1"\n'
        f'role = "label_scanner"\nhost = "127.0.0.1"\nport = {nobody}\n'
        "reconnect_min_s = 0.05\nreconnect_max_s = 0.2\n" + health_toml(port, require_devices=True)
    )
    base = f"http://127.0.0.1:{port}"
    async with gateway_in_process(config) as status:
        await wait_for(lambda: answers(f"{base}/readyz", 503), timeout=20)

        async def scanner_reported_down() -> bool:
            checks = (await http_get(f"{base}/readyz")).json()["checks"]
            return bool(checks["devices"]["not_connected"]) and bool(
                checks["devices"]["not_connected"][0]["last_error"]
            )

        await wait_for(scanner_reported_down, timeout=20)
        body = (await http_get(f"{base}/readyz")).json()
        [device] = body["checks"]["devices"]["not_connected"]
        assert device["id"] == "scan1"
        assert device["state"] in ("down", "connecting")
        assert "cannot connect" in device["last_error"]
        assert body["checks"]["uplink"] == {
            "ok": True,
            "required": False,
            "state": "not configured",
        }

        # The same gateway judged with require_devices = false is ready: the setting decides.
        lenient = HealthServer(HealthSection(port=free_port(), require_devices=False), status)
        ready, checks = await lenient.readiness()
        assert ready is True
        assert checks["devices"]["not_connected"][0]["id"] == "scan1"

        alive = await http_get(f"{base}/healthz")
        assert (alive.status_code, alive.json()) == (200, {"status": "alive"})
        assert (await http_get(f"{base}/nothing-here")).status_code == 404
        refused = await http_get(f"{base}/metrics", method="POST")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD"
        head = await http_get(f"{base}/readyz", method="HEAD")
        assert (head.status_code, head.content) == (503, b"")


async def test_a_taken_health_port_does_not_stop_recording(tmp_path: Path) -> None:
    port = free_port()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    config = tmp_path / "gw.toml"
    config.write_text(minimal_config_text(tmp_path / "gw.db") + health_toml(port))
    try:
        async with gateway_in_process(config) as status:
            # Running and recording (the start-up event is committed) while the port is taken.
            await wait_for(lambda: status.store.stats.records_committed >= 1, timeout=20)
            blocker.close()
            await wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz", 200), timeout=30)
    finally:
        blocker.close()
