"""The delivery pace against a real mosquitto and the real ingest (SQLite warehouse).

On the default settings a backlog is carried in batches that grow past the sizes the pace
starts from, and every record still lands exactly once. Over a link whose acks come slower
than a quarter of the ack timeout, the pace never leaves its start: no more queued ahead of
an alert than with the fixed sizes of before.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.core.link import LinkState
from gateway.core.records import PackEvent
from gateway.store import Store
from sync.delivery_pace import START_BYTES, START_RECORDS, START_WINDOW, PaceLimits
from sync.ingest import IngestService
from sync.mqtt_uplink import MqttUplink
from tests.support.faultproxy import FaultProxy
from tests.support.mosquitto import Mosquitto
from tests.support.sync_harness import check_conservation, ingest_settings, start_ingest, stop_task
from tests.support.waiting import wait_for

GATEWAY = "gw-pace"
START = PaceLimits(START_RECORDS, START_BYTES, START_WINDOW)


async def _backlog(store: Store, count: int) -> None:
    await asyncio.gather(
        *(
            store.submit(
                PackEvent(ts_us=1_000_000 + i, line="L1", device="cw1", net_g=240 + i % 13)
            )
            for i in range(count)
        )
    )


async def _drain(
    tmp_path: Path, broker: Mosquitto, backlog: int, port: int | None = None, **options: float
) -> tuple[list[PaceLimits], int]:
    """Drain a backlog; every pace the uplink used, and the warehouse's batch count."""
    db_path, warehouse_path = tmp_path / "gw.db", tmp_path / "warehouse.db"
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    ingest_task = await start_ingest(ingest)
    store = Store(StoreSection(path=db_path, commit_interval_ms=20), SystemClock())
    await store.open()
    committer = asyncio.create_task(store.run_committer())
    paces: list[PaceLimits] = []
    uplink = MqttUplink(
        store,
        host="127.0.0.1",
        port=port or broker.port,
        site="test-site",
        gateway=GATEWAY,
        keepalive_s=10,
        poll_interval_s=0.05,
        **options,  # type: ignore[arg-type]
    )
    uplink_task: asyncio.Task[None] | None = None
    try:
        await _backlog(store, backlog)
        uplink_task = asyncio.create_task(uplink.run())
        await wait_for(lambda: uplink.state is LinkState.UP, 15)

        async def drained() -> bool:
            limits = uplink.batches.pace.limits
            if not paces or paces[-1] != limits:
                paces.append(limits)
            return await uplink.outbox.depth() == 0

        await wait_for(drained, 120, interval=0.005)
        assert ingest.warehouse is not None
        batches = ingest.warehouse.stats.batches
    finally:
        await uplink.stop()
        if uplink_task is not None:
            await asyncio.wait_for(uplink_task, 10)
        await store.stop_committer()
        await committer
        await store.close()
        await stop_task(ingest_task)
    assert check_conservation(db_path, GATEWAY, warehouse_path) == backlog
    return paces, batches


async def test_a_backlog_on_the_defaults_goes_in_batches_larger_than_the_start(
    tmp_path: Path, broker: Mosquitto
) -> None:
    backlog = 40_000
    paces, batches = await _drain(tmp_path, broker, backlog)
    print(f"paces {paces}, {batches} batches")
    assert paces[0] == START
    assert max(p.records for p in paces) > START_RECORDS
    # Fixed 500-record batches would have taken 80.
    assert batches < backlog // START_RECORDS


async def test_acks_slower_than_a_quarter_of_the_ack_timeout_keep_the_start(
    tmp_path: Path, broker: Mosquitto
) -> None:
    async with FaultProxy(broker.port) as proxy:
        proxy.latency(0.2)  # each way: every ack comes 0.4 s or more after its publish
        paces, _ = await _drain(tmp_path, broker, 3_000, port=proxy.port, ack_timeout_s=1.2)
    print(f"paces {paces}")
    assert paces == [START]
