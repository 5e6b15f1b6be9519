"""The sync path under faults: ingest set-up, conservation checks, a gateway child process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.store import Store
from gateway.store.schema import RECORD_STREAMS
from sync.ingest import IngestService, IngestSettings
from sync.mqtt_uplink import MqttUplink
from tests.support.mosquitto import Mosquitto
from tests.support.paths import REPO, repo_pythonpath
from tests.support.waiting import wait_for

DEMO = REPO / "config" / "demo.toml"
KILLS = 10
POLL_S = 0.02


def ingest_settings(broker: Mosquitto, warehouse_path: Path) -> IngestSettings:
    return IngestSettings(
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        http_enabled=False,
        sqlite_path=warehouse_path,
        reconnect_initial_s=0.1,
        reconnect_max_s=1.0,
    )


async def start_ingest(service: IngestService) -> asyncio.Task[None]:
    task = asyncio.create_task(service.run())
    assert service.consumer is not None
    consumer = service.consumer
    await wait_for(lambda: consumer.subscribed.is_set() or task.done(), 15, "ingest subscribed")
    if task.done():
        task.result()  # raises what stopped it
    return task


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it; if it had already failed, raise its error (a
    simulator or an ingest that died must not pass for one that was stopped)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error


def check_conservation(gateway_db: Path, gateway: str, warehouse_db: Path) -> int:
    """Assert the conservation invariant; return how many records the gateway committed."""
    edge = sqlite3.connect(f"file:{gateway_db}?mode=ro", uri=True)
    try:
        committed: dict[int, str] = {}
        for stream in RECORD_STREAMS:
            for (seq,) in edge.execute(f"SELECT seq FROM {stream}"):
                assert seq not in committed, f"seq {seq} in both {committed[seq]} and {stream}"
                committed[int(seq)] = stream
        left = edge.execute("SELECT count(*) FROM outbox").fetchone()[0]
        quarantined = (
            edge.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'outbox_quarantine'"
            ).fetchone()[0]
            and edge.execute("SELECT count(*) FROM outbox_quarantine").fetchone()[0]
        )
    finally:
        edge.close()
    wh = sqlite3.connect(f"file:{warehouse_db}?mode=ro", uri=True)
    try:
        rows = wh.execute(
            "SELECT gateway, seq, min(stream), count(*) FROM records GROUP BY gateway, seq"
        ).fetchall()
        conflicts = wh.execute("SELECT count(*) FROM conflicts").fetchone()[0]
    finally:
        wh.close()
    assert left == 0, f"{left} records still in the gateway's outbox"
    assert not quarantined, f"{quarantined} records quarantined"
    assert conflicts == 0, "the warehouse saw a sequence number reused for other content"
    assert {g for g, *_ in rows} <= {gateway}, "records of an unknown gateway"
    counts = {int(seq): n for _, seq, _, n in rows}
    stored_streams = {int(seq): stream for _, seq, stream, _ in rows}
    twice = sorted(seq for seq, n in counts.items() if n != 1)
    missing = sorted(set(committed) - set(counts))
    invented = sorted(set(counts) - set(committed))
    assert not twice, f"stored more than once: {twice[:20]}"
    assert not missing, f"{len(missing)} committed records lost: {missing[:20]}"
    assert not invented, f"{len(invented)} records the gateway never committed: {invented[:20]}"
    wrong = [s for s, stream in committed.items() if stored_streams[s] != stream]
    assert not wrong, f"stored under another stream: {wrong[:20]}"
    return len(committed)


async def drain_in_process(gateway_db: Path, broker: Mosquitto, site: str, gateway: str) -> None:
    """Deliver what a cleanly stopped gateway left in its outbox (its ``gateway_stopped``
    event is committed after the uplink stopped), without committing anything new."""
    async with Store(StoreSection(path=gateway_db, commit_interval_ms=20), SystemClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        uplink = MqttUplink(
            store,
            host=broker.host,
            port=broker.port,
            site=site,
            gateway=gateway,
            ack_timeout_s=1.0,
            poll_interval_s=0.05,
        )
        running = asyncio.create_task(uplink.run())
        try:
            await wait_for(lambda: _outbox_empty(store), 20, "the final drain")
        finally:
            await uplink.stop()
            await asyncio.wait_for(running, 10)
            await store.stop_committer()
            await committer


async def _outbox_empty(store: Store) -> bool:
    rows = await store.fetchall("SELECT count(*) FROM outbox")
    return int(rows[0][0]) == 0


# --------------------------------------------------------------------------------------
# 1. SIGKILL the gateway mid-publish


def outbox_depth(db_path: Path) -> int | None:
    return _count(db_path, "outbox")


def pack_count(db_path: Path) -> int | None:
    return _count(db_path, "packs")


def _count(db_path: Path, table: str) -> int | None:
    """Rows in ``table`` of a gateway's store (read-only), or None if it cannot be read now.

    Called from a test's event loop, which also runs the simulators and the ingest: a store
    that is busy (a gateway recovering its WAL after a SIGKILL) answers None at once rather
    than holding that loop for seconds; the caller polls again."""
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=0.1)
    except sqlite3.Error:
        return None
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        db.close()


def demo_config(addresses: dict[str, str], db_path: Path, broker: Mosquitto) -> str:
    """config/demo.toml on the simulators' ephemeral ports, syncing to the test broker."""

    def port(address: str) -> str:
        found = re.search(r":(\d+)(?:/|$)", address)
        assert found, address
        return found.group(1)

    text = (
        DEMO.read_text()
        .replace("48400", port(addresses["opcua"]))
        .replace("50200", port(addresses["modbus"]))
        .replace("50300", port(addresses["scanner"]))
        .replace("48500", port(addresses["erp"]))
        .replace('path = "../var/demo/lineside.db"', f'path = "{db_path}"')
        .replace("commit_interval_ms = 250", "commit_interval_ms = 20")
        .replace('log_level = "info"', 'log_level = "warning"')
    )
    assert f'path = "{db_path}"' in text
    assert "commit_interval_ms = 20" in text
    return text + f'\n[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'


class GatewayProcess:
    """``lineside run`` as a child process, READY reported over a NOTIFY_SOCKET."""

    def __init__(self, config: Path, log: Path, run: int) -> None:
        name = f"lineside-faults-{os.getpid()}-{run}"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.listener.bind("\0" + name)
        self.listener.setblocking(False)
        self.log = log
        self.log_start = log.stat().st_size if log.exists() else 0
        with log.open("ab") as out:
            out.write(f"---- run {run}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": repo_pythonpath(), "NOTIFY_SOCKET": "@" + name},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the gateway exited with {self.proc.returncode}:\n{self.tail()}")
        with contextlib.suppress(BlockingIOError):
            while True:
                if self.listener.recv(4096).startswith(b"READY=1"):
                    return True
        return False

    async def ready(self) -> None:
        await wait_for(self._ready, 30, "gateway READY=1")

    async def wait(self, timeout: float) -> int:
        await wait_for(lambda: self.proc.poll() is not None, timeout, "gateway exit")
        code = self.proc.returncode
        assert code is not None
        return code

    def output(self) -> str:
        """What this run wrote to the log."""
        with self.log.open("rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace")

    def crashed_known(self) -> bool:
        """False while the gateway runs; a gateway that exited by itself fails the test."""
        code = self.proc.poll()
        if code is None:
            return False
        raise AssertionError(f"the gateway exited by itself with {code}:\n{self.output()[-3000:]}")

    def tail(self) -> str:
        return "\n".join(self.output().splitlines()[-30:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.listener.close()
