"""Several ``lineside ingest`` processes into one PostgreSQL database, for the fleet tests.

Each instance is a real process in a session of its own (:class:`tests.support.day_processes.
Group`), with its own client id, and its HTTP(S) status endpoint (``GET /v1/healthz``) on a
free port: the tests ask each instance how many batches it committed. :meth:`FleetIngest.kill`
is a crash (SIGKILL to the whole group); :meth:`FleetIngest.end` a clean stop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.fleet_gateways import Fleet
from sync.ingest.auth import hash_token, write_tokens
from tests.support.fleet_warehouse import Timeline, stored_records
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.processes import Group
from tests.support.waiting import wait_for

DSN_VARIABLE = "FLEET_WAREHOUSE_DSN"

VICTIM_BATCHES = 5
"""Batches the instance a test kills commits first: its share is then never nothing."""


class FleetIngest(Group):
    """One ``lineside ingest`` instance of a fleet test."""

    def __init__(
        self,
        name: str,
        directory: Path,
        dsn: str,
        *,
        tokens: Path,
        broker: Mosquitto | None = None,
        share_group: str | None = None,
        tls: tuple[Path, Path] | None = None,
        ca_file: Path | None = None,
        pool_size: int = 2,
        password_file: Path | None = None,
        ack_keys: Path | None = None,
    ) -> None:
        self.name = name
        self.http_port = free_port()
        self.broker = broker
        self.ca_file = ca_file
        scheme = "https" if tls is not None else "http"
        self.base = f"{scheme}://127.0.0.1:{self.http_port}"
        argv = [
            sys.executable, "-m", "gateway.cli", "ingest",
            "--client-id", name,
            "--http-port", str(self.http_port), "--gateway-tokens", str(tokens),
            "--postgres-dsn-env", DSN_VARIABLE, "--db-pool-size", str(pool_size),
            "--log-level", "info",
        ]  # fmt: skip
        if broker is None:
            argv.append("--no-mqtt")
        else:
            argv += ["--mqtt-host", broker.host, "--mqtt-port", str(broker.port)]
        if password_file is not None:
            # The broker user is the client id (the shipped ACL names lineside-ingest-1...).
            argv += ["--mqtt-username", name, "--mqtt-password-file", str(password_file)]
        if ack_keys is not None:
            argv += ["--ack-keys", str(ack_keys)]
        if share_group is not None:
            argv += ["--share-group", share_group]
        if tls is not None:
            argv += ["--http-tls-cert", str(tls[0]), "--http-tls-key", str(tls[1])]
        super().__init__(argv, directory / f"{name}.log", **{DSN_VARIABLE: dsn})
        self.last_status: dict[str, Any] = {}
        """The last answer of :meth:`status` (kept for an instance that was killed since)."""

    def status(self) -> dict[str, Any]:
        """``GET /v1/healthz``: the instance's state and counters (also kept as
        :attr:`last_status`)."""
        verify: ssl.SSLContext | bool = True
        if self.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_file))
        response = httpx.get(f"{self.base}/v1/healthz", timeout=5.0, verify=verify)
        response.raise_for_status()
        self.last_status = dict(response.json())
        return self.last_status

    def _ready(self) -> bool:
        self.alive()
        try:
            body = self.status()
        except httpx.HTTPError:
            return False
        return self.broker is None or body.get("mqtt") == "connected"

    async def ready(self, timeout_s: float = 45.0) -> None:
        """Wait until it answers its status endpoint (and is connected to the broker)."""
        await wait_for(self._ready, timeout_s, f"{self.name} ready", interval=0.1)

    def kill(self) -> None:
        """Crash it: SIGKILL to its whole process group, then reap it."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    @property
    def batches(self) -> int:
        """Batches it committed, as its last status said."""
        return committed_batches(self.last_status)

    @property
    def redelivered(self) -> int:
        """MQTT messages the broker gave it again (DUP), as its last status said."""
        consumer = self.last_status.get("consumer", {})
        return int(consumer.get("redelivered", 0)) if isinstance(consumer, Mapping) else 0

    @property
    def duplicates(self) -> int:
        """Records it found already stored (redeliveries, resends), as its last status said."""
        return int(_counters(self.last_status).get("duplicates", 0))


async def produce_and_kill(
    fleet: Fleet, victim: FleetIngest, timeline: Timeline, records_per_gateway: int
) -> None:
    """Produce ``records_per_gateway`` more records on every gateway and, in the middle of
    the drain (``victim`` has committed a few batches, the warehouse holds a tenth of the
    records or more but not all), SIGKILL ``victim``; return once every record is committed
    to the stores."""
    total = fleet.produced() + len(fleet.gateways) * records_per_gateway

    async def victim_busy() -> bool:
        await asyncio.to_thread(victim.status)
        if victim.batches < VICTIM_BATCHES:
            return False
        return await stored_records(timeline.dsn) >= total // 10

    async with asyncio.TaskGroup() as group:
        group.create_task(fleet.produce(records_per_gateway), name="fleet.produce")
        await wait_for(victim_busy, 30, f"{victim.name} committing", interval=0.1)
        victim.kill()
        at_kill = await timeline.mark(f"{victim.name} killed")
        assert 0 < at_kill < total, "not in the middle of the drain"


async def batches_per_instance(ingests: Sequence[FleetIngest]) -> dict[str, int]:
    """The batches each instance committed: asked now of those still running, as last
    polled for one that was killed."""
    for ingest in ingests:
        if ingest.proc.poll() is None:
            await asyncio.to_thread(ingest.status)
    return {ingest.name: ingest.batches for ingest in ingests}


def _counters(status: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``records`` counters of a status answer (docs/operations.md)."""
    counters = status.get("records", {})
    return counters if isinstance(counters, Mapping) else {}


def committed_batches(status: Mapping[str, Any]) -> int:
    """The batches an instance's status says it committed."""
    return int(_counters(status).get("batches", 0))


def write_tokens_file(path: Path, tokens: Mapping[str, str]) -> Path:
    """The ingest's ``--gateway-tokens`` file for ``tokens`` (gateway -> bearer token)."""
    write_tokens(path, {gateway: hash_token(token) for gateway, token in tokens.items()})
    return path
