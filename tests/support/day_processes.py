"""The warehouse day's child processes, each in a session of its own so it is ended with
its whole group (tests/support/processes.py): a site's simulators, its gateway
(``lineside run`` on config/demo.toml with a second line), ``lineside ingest`` into
PostgreSQL and ``lineside warehouse serve``."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.mosquitto import Mosquitto
from tests.support.processes import Group
from tests.support.sync_harness import demo_config
from tests.support.waiting import wait_for, wait_for_sync

SPEED = 30.0
"""Simulated seconds per real second: the demo's 780 s cycle of faults in 26 s."""
PACK_RATE_HZ = 0.25
"""Packs per simulated second per checkweigher (7.5 a second each at :data:`SPEED`)."""
CYCLE_PACKS = round(780 * PACK_RATE_HZ)
"""Packs per checkweigher in one cycle of the demo scenario (780 simulated seconds)."""

# The second line: the Modbus simulator's scale (checkweigher CW2, register map in
# adapters/simulators/modbus_server.py) and its temperature transmitters, on L2.
_L2_CHECKWEIGHER = """
[[devices]]
id = "cw2"
kind = "modbus_tcp"
line = "L2"
role = "checkweigher"
host = "127.0.0.1"
port = {port}
unit_id = 1
poll_interval_ms = 50
tags = [
  {{ name = "net_weight", address = 200, type = "float32", min = 0, max = 5000 }},
  {{ name = "gross_weight", address = 202, type = "float32", min = 0, max = 6000 }},
  {{ name = "pack_counter", address = 204, type = "uint32" }},
  {{ name = "accepted", address = 206, bit = 1 }},
]
"""


def gateway_config(
    addresses: dict[str, str], db_path: Path, broker: Mosquitto, *, gateway: str, site: str
) -> str:
    """config/demo.toml for one site of the day: its own gateway and site id, its own
    simulators, a second line (L2: the Modbus scale and transmitters), the short P1
    excursion debounce the sped-up scenario needs, syncing to ``broker``."""
    text = demo_config(addresses, db_path, broker)
    transmitters = 'role = "temperature_probe"\nhost'
    replaced = (
        text.replace('id = "demo-gw1"', f'id = "{gateway}"')
        .replace('site = "demo-site"', f'site = "{site}"')
        .replace(f'line = "L1"\n{transmitters}', f'line = "L2"\n{transmitters}')
        .replace("debounce_s = 60 ", "debounce_s = 3 ")
        .replace("poll_interval_s = 5", "poll_interval_s = 1")
        # ℮ batches of 6 s, so several close (and are judged) on each line within the day.
        .replace("emark_batch_minutes = 60", "emark_batch_minutes = 0.1")
    )
    for expected in (f'"{gateway}"', f'"{site}"', 'line = "L2"', "debounce_s = 3 ", "= 0.1"):
        assert expected in replaced, expected
    modbus_port = addresses["modbus"].rsplit(":", 1)[1]
    head, sync = replaced.split("\n[sync.mqtt]", 1)
    return head + _L2_CHECKWEIGHER.format(port=modbus_port) + "\n[sync.mqtt]" + sync


class Simulators(Group):
    """A site's simulators (tests/support/day_site.py); :attr:`addresses` once listening."""

    def __init__(self, log: Path, *, seed: int, first_label: int) -> None:
        argv = [sys.executable, "-m", "tests.support.day_site", str(seed), str(first_label)]
        super().__init__([*argv, str(SPEED), str(PACK_RATE_HZ)], log)
        self.addresses: dict[str, str] = {}

    def _listening(self) -> bool:
        self.alive()
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                self.addresses = json.loads(line)
                return True
        return False

    async def listening(self) -> None:
        await wait_for(self._listening, 30, "the simulators listening", interval=0.05)


class Gateway(Group):
    """``lineside run``; READY=1 comes over a NOTIFY_SOCKET (as under systemd)."""

    def __init__(self, config: Path, log: Path, *, name: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        abstract = f"lineside-day-{os.getpid()}-{name}"
        self.listener.bind("\0" + abstract)
        self.listener.setblocking(False)
        self.config = config
        argv = [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)]
        super().__init__(argv, log, NOTIFY_SOCKET="@" + abstract)

    def _ready(self) -> bool:
        self.alive()
        with contextlib.suppress(BlockingIOError):
            while True:
                if self.listener.recv(4096).startswith(b"READY=1"):
                    return True
        return False

    async def ready(self) -> None:
        await wait_for(self._ready, 40, "gateway READY=1", interval=0.05)

    def end(self) -> int:
        try:
            return super().end()
        finally:
            self.listener.close()


class Ingest(Group):
    """``lineside ingest``: MQTT only, into the PostgreSQL database named by ``dsn``."""

    def __init__(self, broker: Mosquitto, dsn: str, log: Path) -> None:
        argv = [
            sys.executable, "-m", "gateway.cli", "ingest",
            "--mqtt-host", broker.host, "--mqtt-port", str(broker.port),
            "--client-id", f"lineside-day-ingest-{os.getpid()}", "--no-http",
            "--postgres-dsn-env", "DAY_WAREHOUSE_DSN", "--log-level", "info",
        ]  # fmt: skip
        super().__init__(argv, log, DAY_WAREHOUSE_DSN=dsn)

    async def connected(self) -> None:
        await wait_for(
            lambda: self.alive() and "connected to MQTT" in self.log.read_text(errors="replace"),
            60,
            "the ingest connected to the broker",
            interval=0.05,
        )


class ReadApi(Group):
    """``lineside warehouse serve`` over ``dsn`` on ``port``, bearer tokens from ``tokens``."""

    def __init__(self, dsn: str, tokens: Path, port: int, log: Path) -> None:
        argv = [
            sys.executable, "-m", "gateway.cli", "warehouse", "serve",
            "--postgres-dsn-env", "DAY_WAREHOUSE_DSN", "--tokens", str(tokens),
            "--port", str(port),
        ]  # fmt: skip
        super().__init__(argv, log, DAY_WAREHOUSE_DSN=dsn)
        self.base = f"http://127.0.0.1:{port}"

    def _up(self) -> bool:
        self.alive()
        try:
            return httpx.get(f"{self.base}/api/v1/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_up(self) -> None:
        wait_for_sync(self._up, 30, "the read API answering", interval=0.1)


@contextlib.contextmanager
def ended(groups: list[Any]) -> Iterator[list[Any]]:
    """End every group in ``groups`` (last started first) on the way out."""
    try:
        yield groups
    finally:
        for group in reversed(groups):
            with contextlib.suppress(Exception):
                group.end()
