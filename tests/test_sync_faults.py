"""Faults on the MQTT sync path, through a real mosquitto to the central ingest (in-process).

The **conservation invariant** (reliability.md §7) is checked after each fault: every record
committed on the gateway is in the warehouse's ``records`` table exactly once (one row per
``(gateway, seq)``, in the right stream), and the warehouse holds nothing the gateway did not
commit. Duplicates on the wire are allowed and counted; losses are not.

1. §7 row 4: the gateway (``lineside run`` as a child process, fed by the simulators at high
   speed) is SIGKILLed at random moments while it publishes, restarted each time; the last
   run drains and stops on SIGTERM.
2. §7 row 16: the ingest dies between its warehouse COMMIT and its ack (an ambiguous
   outcome): the gateway resends the same batch, the warehouse dedupes, the outbox empties.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from adapters.simulators import SimulatorSettings, run_simulators
from gateway.clock import SystemClock
from gateway.config import StoreSection
from gateway.records import PackEvent
from gateway.schema import RECORD_STREAMS
from gateway.store import Store
from sync.ingest import IngestService, IngestSettings
from sync.ingest.warehouse import SqliteWarehouse
from sync.mqtt_uplink import MqttUplink
from sync.protocol import Ack, Batch
from tests.conftest import REPO
from tests.mosquitto import Mosquitto

DEMO = REPO / "config" / "demo.toml"
KILLS = 10
POLL_S = 0.02
pytestmark = pytest.mark.slow


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``condition`` every 20 ms until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(POLL_S)


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
    await until(lambda: consumer.subscribed.is_set() or task.done(), 15, "ingest subscribed")
    if task.done():
        task.result()  # raises what stopped it
    return task


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


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
            await until(lambda: _outbox_empty(store), 20, "the final drain")
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
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
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
                env={**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": "@" + name},
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
        await until(self._ready, 30, "gateway READY=1")

    async def wait(self, timeout: float) -> int:
        await until(lambda: self.proc.poll() is not None, timeout, "gateway exit")
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


async def test_sigkill_mid_publish_loses_and_doubles_nothing(
    tmp_path: Path, broker: Mosquitto
) -> None:
    rng = random.Random(20_261_123)
    db_path = tmp_path / "gw" / "lineside.db"
    db_path.parent.mkdir()
    warehouse_path = tmp_path / "warehouse.db"
    log = tmp_path / "gateway.log"
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    assert ingest.consumer is not None
    consumer = ingest.consumer
    ingest_task = await start_ingest(ingest)

    started: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    simulators = asyncio.create_task(
        run_simulators(
            SimulatorSettings(seed=7, speed=8.0, pack_rate_hz=2.0),
            on_started=started.set_result,
        )
    )
    gateway: GatewayProcess | None = None
    received_per_run: list[int] = []
    crashes: list[int] = []
    run = 0
    try:
        addresses = await asyncio.wait_for(asyncio.shield(started), 30)
        config = tmp_path / "gw.toml"
        config.write_text(demo_config(addresses, db_path, broker))

        kills = 0
        while kills < KILLS:
            assert run < KILLS + 5, f"too many crashes of the gateway: {crashes}"
            gateway = GatewayProcess(config, log, run)
            run += 1
            await gateway.ready()
            before = consumer.stats.received
            # The random moment: records flow, batches are published and acknowledged.
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            if gateway.crashed_known():
                crashes.append(run - 1)
            else:
                gateway.proc.send_signal(signal.SIGKILL)
                code = await gateway.wait(10)
                output = gateway.output()
                if code != -signal.SIGKILL:
                    # It died by itself (or was dying) just before the kill.
                    assert gateway.crashed_known()
                    crashes.append(run - 1)
                else:
                    kills += 1
                    assert "Traceback" not in output, f"failed before the kill:\n{output}"
                    received_per_run.append(consumer.stats.received - before)
            gateway.close()
            gateway = None

        # The last run: publish the backlog, then the simulators stop and it drains.
        gateway = GatewayProcess(config, log, run)
        run += 1
        await gateway.ready()
        before = consumer.stats.received
        await until(lambda: consumer.stats.received > before, 30, "the last run publishes")
        await stop_task(simulators)
        await until(
            lambda proc=gateway.proc: outbox_depth(db_path) == 0 or proc.poll() is not None,
            30,
            "the last run drains its outbox",
        )
        assert not gateway.crashed_known()
        gateway.proc.send_signal(signal.SIGTERM)
        code = await gateway.wait(10)
        assert code == 0, gateway.tail()
        gateway.close()
        gateway = None
        # What it committed while stopping (gateway_stopped) goes out without a new start.
        await drain_in_process(db_path, broker, "demo-site", "demo-gw1")
    finally:
        if gateway is not None:
            gateway.close()
        await stop_task(simulators)
        await stop_task(ingest_task)

    committed = check_conservation(db_path, "demo-gw1", warehouse_path)
    stats = ingest.warehouse.stats
    report = (
        f"{committed} records committed over {run} runs ({len(crashes)} crashed by "
        f"themselves); warehouse: {stats.batches} "
        f"batches, {stats.inserted} inserted, {stats.duplicates} duplicate records; broker "
        f"redeliveries to the ingest: {consumer.stats.redelivered}; messages received per "
        f"killed run: {received_per_run}"
    )
    print(report)
    assert stats.inserted == committed, report
    assert stats.conflicts == 0, report
    assert stats.invalid == 0, report
    assert sum(1 for n in received_per_run if n > 0) >= KILLS // 2, (
        f"most kills should land while batches flow: {report}"
    )
    edge = sqlite3.connect(db_path)
    try:
        starts = edge.execute(
            "SELECT count(*) FROM device_events WHERE kind = 'gateway_started'"
        ).fetchone()[0]
        packs = edge.execute("SELECT count(*) FROM packs").fetchone()[0]
        assert edge.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        edge.close()
    assert starts == run, report
    assert packs >= 50, f"packs should flow in every run: {report}"
    assert not crashes, report


# --------------------------------------------------------------------------------------
# 2. The ingest dies between its COMMIT and its ack


class AmbiguousWarehouse(SqliteWarehouse):
    """Commits for real; while armed, the first commit then never returns (no ack leaves)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.armed = True
        self.trapped = asyncio.Event()
        self.trapped_batch: Batch | None = None
        self.batch_ids: list[str] = []

    async def commit_batch(self, batch: Batch) -> Ack:
        ack = await super().commit_batch(batch)  # COMMIT has returned
        self.batch_ids.append(batch.batch_id)
        if self.armed:
            self.armed = False
            self.trapped_batch = batch
            self.trapped.set()
            await asyncio.Event().wait()  # the ingest dies here: cancelled by the test
        return ack


async def test_ingest_killed_between_commit_and_ack_is_resent_and_deduplicated(
    tmp_path: Path, broker: Mosquitto
) -> None:
    db_path = tmp_path / "gw.db"
    warehouse_path = tmp_path / "warehouse.db"
    warehouse = AmbiguousWarehouse(warehouse_path)
    await warehouse.open()
    settings = ingest_settings(broker, warehouse_path)
    first = IngestService(settings, warehouse=warehouse)
    first_task = await start_ingest(first)
    store = Store(StoreSection(path=db_path, commit_interval_ms=20), SystemClock())
    await store.open()
    committer = asyncio.create_task(store.run_committer())
    uplink = MqttUplink(
        store,
        host=broker.host,
        port=broker.port,
        site="test-site",
        gateway="gw-test",
        max_records=100,
        ack_timeout_s=0.3,
        ack_timeout_max_s=1.0,
        poll_interval_s=0.05,
    )
    uplink_task: asyncio.Task[None] | None = None
    second_task: asyncio.Task[None] | None = None
    second: IngestService | None = None

    def packs(start: int, n: int) -> list[asyncio.Future[int]]:
        return [
            store.submit(
                PackEvent(ts_us=1_000_000 + i, line="L1", device="cw1", net_g=240.0 + i % 7)
            )
            for i in range(start, start + n)
        ]

    try:
        await asyncio.gather(*packs(0, 250))
        uplink_task = asyncio.create_task(uplink.run())
        await asyncio.wait_for(warehouse.trapped.wait(), 15)
        await stop_task(first_task)  # the ingest dies after COMMIT, before the ack
        trapped = warehouse.trapped_batch
        assert trapped is not None
        trapped_seqs = {seq for seq, _ in trapped.records}
        assert set(await warehouse.record_hashes("gw-test")) >= trapped_seqs, "committed"
        assert await uplink.outbox.depth() == 250, "no ack left the ingest: nothing deleted"

        # Without an ack the gateway publishes the same batch again (queued by the broker in
        # the ingest's persistent session), and keeps recording meanwhile.
        await until(lambda: uplink.stats.batches_resent >= 1, 10, "the gateway resends")
        await asyncio.gather(*packs(250, 50))

        second = IngestService(settings, warehouse=warehouse)
        second_task = await start_ingest(second)
        await until(lambda: _outbox_empty(store), 20, "the outbox empties")
    finally:
        await uplink.stop()
        if uplink_task is not None:
            await asyncio.wait_for(uplink_task, 10)
        await store.stop_committer()
        await committer
        await store.close()
        for task in (first_task, second_task):
            if task is not None:
                await stop_task(task)
        await warehouse.close()

    assert second is not None
    assert second.consumer is not None
    committed = check_conservation(db_path, "gw-test", warehouse_path)
    stats = warehouse.stats
    report = (
        f"trapped batch {trapped.batch_id} ({len(trapped_seqs)} records) committed "
        f"{warehouse.batch_ids.count(trapped.batch_id)} times; warehouse: {stats.batches} "
        f"batches, {stats.inserted} inserted, {stats.duplicates} duplicate records; "
        f"gateway resends: {uplink.stats.batches_resent}; broker redeliveries (DUP) to the "
        f"new ingest: {second.consumer.stats.redelivered}"
    )
    print(report)
    assert committed == 300, report
    assert stats.inserted == committed, report
    assert warehouse.batch_ids.count(trapped.batch_id) >= 2, f"same batch_id again: {report}"
    assert stats.duplicates >= len(trapped_seqs), f"the resend is counted as dups: {report}"
    assert uplink.stats.records_acked == committed, report
