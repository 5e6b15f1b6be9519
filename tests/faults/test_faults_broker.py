"""A hung broker (docs/reference/reliability.md §7 row 2): TCP stays open, nothing comes back.

The uplink must notice within 1.5 × its MQTT keep-alive, reconnect once the broker answers
again, and lose nothing: the conservation invariant (every committed record in the warehouse
exactly once, duplicates on the wire counted) holds afterwards. Two ways to hang it: SIGSTOP
the mosquitto process (the kernel still accepts connections for it), or black-hole the route
with the fault proxy (the broker is fine, the path is not).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.core.link import LinkState
from gateway.core.records import PackEvent
from gateway.store import Store
from sync.ingest import IngestService
from sync.mqtt_uplink import MqttUplink
from tests.support.faultproxy import FaultProxy
from tests.support.mosquitto import Mosquitto
from tests.support.sync_harness import (
    check_conservation,
    drain_in_process,
    ingest_settings,
    start_ingest,
    stop_task,
)
from tests.support.waiting import wait_for

KEEPALIVE_S = 3
pytestmark = pytest.mark.slow


@dataclass
class Line:
    """A store with its committer, an uplink to the broker, and a feeder of pack events."""

    store: Store
    uplink: MqttUplink
    submitted: int = 0

    def feed(self, n: int) -> None:
        for _ in range(n):
            i = self.submitted
            self.store.submit(
                PackEvent(ts_us=1_000_000 + i, line="L1", device="cw1", net_g=240.0 + i % 9)
            )
            self.submitted += 1


@asynccontextmanager
async def running_line(db_path: Path, port: int) -> AsyncIterator[Line]:
    store = Store(StoreSection(path=db_path, commit_interval_ms=20), SystemClock())
    await store.open()
    committer = asyncio.create_task(store.run_committer())
    uplink = MqttUplink(
        store,
        host="127.0.0.1",
        port=port,
        site="test-site",
        gateway="gw-test",
        keepalive_s=KEEPALIVE_S,
        connect_timeout_s=1.0,
        max_records=50,
        ack_timeout_s=0.5,
        ack_timeout_max_s=2.0,
        poll_interval_s=0.05,
    )
    task = asyncio.create_task(uplink.run())
    line = Line(store, uplink)
    feeder = asyncio.create_task(_feed_forever(line))
    try:
        yield line
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await uplink.stop()
        await asyncio.wait_for(task, 15)
        await store.stop_committer()
        await committer
        await store.close()


async def _feed_forever(line: Line) -> None:
    while True:
        line.feed(5)
        await asyncio.sleep(0.05)


async def hang_and_recover(
    line: Line, hang: Callable[[], None], release: Callable[[], None]
) -> float:
    """Hang the broker while batches flow; return how long the uplink took to notice."""
    uplink = line.uplink
    await wait_for(lambda: uplink.state is LinkState.UP, 15)
    acked = uplink.stats.records_acked
    await wait_for(lambda: uplink.stats.records_acked > acked + 100, 15)
    connects, disconnects = uplink.stats.connects, uplink.stats.disconnects
    attempts = uplink.stats.connect_attempts
    hang()
    hung_at = time.monotonic()
    await wait_for(lambda: uplink.stats.disconnects > disconnects, 4 * KEEPALIVE_S)
    noticed = time.monotonic() - hung_at
    assert uplink.state is not LinkState.UP
    # Still hung: a reconnect attempt times out (no CONNACK), records pile up in the outbox.
    await wait_for(lambda: uplink.stats.connect_attempts >= attempts + 2, 15)
    assert uplink.stats.connects == connects
    depth = await uplink.outbox.depth()
    assert depth > 0
    release()
    await wait_for(lambda: uplink.stats.connects > connects, 20)
    assert uplink.state in (LinkState.UP, LinkState.DEGRADED)
    # Acknowledgements flow again (the ingest reconnects by itself too).
    acked = uplink.stats.records_acked
    await wait_for(lambda: uplink.stats.records_acked > acked + 50, 20)
    return noticed


async def test_sigstopped_broker_is_noticed_within_one_and_a_half_keepalives(
    tmp_path: Path, broker: Mosquitto
) -> None:
    db_path, warehouse_path = tmp_path / "gw.db", tmp_path / "warehouse.db"
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    ingest_task = await start_ingest(ingest)
    process = broker._process
    assert process is not None
    try:
        async with running_line(db_path, broker.port) as line:
            noticed = await hang_and_recover(
                line,
                lambda: process.send_signal(signal.SIGSTOP),
                lambda: process.send_signal(signal.SIGCONT),
            )
        await drain_in_process(db_path, broker, "test-site", "gw-test")
    finally:
        process.send_signal(signal.SIGCONT)
        await stop_task(ingest_task)
    assert noticed <= 1.5 * KEEPALIVE_S, f"noticed after {noticed:.2f} s"
    committed = check_conservation(db_path, "gw-test", warehouse_path)
    assert committed == line.submitted
    assert ingest.warehouse.stats.inserted == committed


async def test_black_holed_route_to_the_broker_is_noticed_and_nothing_is_lost(
    tmp_path: Path, broker: Mosquitto
) -> None:
    db_path, warehouse_path = tmp_path / "gw.db", tmp_path / "warehouse.db"
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    ingest_task = await start_ingest(ingest)
    try:
        async with FaultProxy(broker.port) as proxy, running_line(db_path, proxy.port) as line:
            noticed = await hang_and_recover(line, proxy.blackhole, proxy.pass_through)
            assert proxy.stats.connections >= 3  # the first, the timed-out retries, the new one
        await drain_in_process(db_path, broker, "test-site", "gw-test")
    finally:
        await stop_task(ingest_task)
    assert noticed <= 1.5 * KEEPALIVE_S, f"noticed after {noticed:.2f} s"
    committed = check_conservation(db_path, "gw-test", warehouse_path)
    assert committed == line.submitted
    stats = ingest.warehouse.stats
    assert stats.inserted == committed
    print(f"duplicates on the wire: {stats.duplicates}; noticed after {noticed:.2f} s")
