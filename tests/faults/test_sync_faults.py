"""Faults on the MQTT sync path, through a real mosquitto to the central ingest (in-process).

The **conservation invariant** (docs/reference/reliability.md §7) is checked after each fault: every
record committed on the gateway is in the warehouse's ``records`` table exactly once (one row per
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
import random
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.simulators import SimulatorSettings, run_simulators
from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.core.records import PackEvent
from gateway.store import Store
from sync.ingest import IngestService
from sync.ingest.warehouse import SqliteWarehouse
from sync.mqtt_uplink import MqttUplink
from sync.protocol import Ack, Batch
from tests.support.mosquitto import Mosquitto
from tests.support.sync_harness import (
    KILLS,
    GatewayProcess,
    _outbox_empty,
    check_conservation,
    demo_config,
    drain_in_process,
    ingest_settings,
    outbox_depth,
    pack_count,
    start_ingest,
    stop_task,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def packs_flow(
    db_path: Path, before: int, gateway: GatewayProcess, simulators: asyncio.Task[None]
) -> Callable[[], bool]:
    """Whether this run has recorded a pack yet (or died, which the test then reports). The
    simulators stopping is the test's failure, with their error, not a wait for packs."""

    def flowing() -> bool:
        if simulators.done():
            simulators.result()
            raise AssertionError("the simulators stopped")
        return (pack_count(db_path) or 0) > before or gateway.crashed_known()

    return flowing


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
            packs_before = pack_count(db_path) or 0
            gateway = GatewayProcess(config, log, run)
            run += 1
            await gateway.ready()
            before = consumer.stats.received
            # Packs flow in this run (however slow the machine), then the random moment:
            # records flow, batches are published and acknowledged.
            await wait_for(
                packs_flow(db_path, packs_before, gateway, simulators), 30, "a pack in this run"
            )
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
        await wait_for(lambda: consumer.stats.received > before, 30, "the last run publishes")
        await stop_task(simulators)
        proc = gateway.proc
        await wait_for(
            lambda: outbox_depth(db_path) == 0 or proc.poll() is not None,
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
    assert packs >= run, f"packs should flow in every run: {report}"
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

    async def commit_batch(self, batch: Batch, *, idempotency_key: str | None = None) -> Ack:
        ack = await super().commit_batch(batch, idempotency_key=idempotency_key)  # COMMITted
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
        await wait_for(lambda: uplink.stats.batches_resent >= 1, 10, "the gateway resends")
        await asyncio.gather(*packs(250, 50))

        second = IngestService(settings, warehouse=warehouse)
        second_task = await start_ingest(second)
        await wait_for(lambda: _outbox_empty(store), 20, "the outbox empties")
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
