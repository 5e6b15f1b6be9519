"""A slow uplink (docs/reference/reliability.md §7 rows 19, 22): alerts are not starved by backlog
replay.

The gateway comes back to a backlog of thousands of pack records over a link to the broker
that the fault proxy makes slow (added latency each way, throughput throttled). An alert
raised while the backlog replays must reach the warehouse long before the backlog is
through: the outbox hands out alerts first and the uplink keeps a window slot for them.
Afterwards the link is made fast again and everything drains: the conservation invariant
holds (every committed record in the warehouse exactly once).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.core.link import LinkState
from gateway.core.records import AlertRecord, PackEvent, Severity
from gateway.store import Store
from sync.ingest import IngestService
from sync.mqtt_uplink import MqttUplink
from tests.support.faultproxy import FaultProxy
from tests.support.mosquitto import Mosquitto
from tests.support.sync_harness import check_conservation, ingest_settings, start_ingest, stop_task
from tests.support.waiting import wait_for

BACKLOG = 20_000
pytestmark = pytest.mark.slow


def in_warehouse(path: Path, seq: int) -> bool:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT 1 FROM records WHERE seq = ?", (seq,)).fetchone() is not None
    except sqlite3.OperationalError:  # the ingest has not created its tables yet
        return False
    finally:
        db.close()


async def test_alert_overtakes_a_backlog_replayed_over_a_slow_link(
    tmp_path: Path, broker: Mosquitto
) -> None:
    db_path, warehouse_path = tmp_path / "gw.db", tmp_path / "warehouse.db"
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    ingest_task = await start_ingest(ingest)
    store = Store(StoreSection(path=db_path, commit_interval_ms=20), SystemClock())
    await store.open()
    committer = asyncio.create_task(store.run_committer())
    uplink_task: asyncio.Task[None] | None = None
    uplink: MqttUplink | None = None
    try:
        # The backlog: the line kept recording while the uplink was away.
        await asyncio.gather(
            *(
                store.submit(
                    PackEvent(ts_us=1_000_000 + i, line="L1", device="cw1", net_g=240 + i % 13)
                )
                for i in range(BACKLOG)
            )
        )
        async with FaultProxy(broker.port) as proxy:
            proxy.latency(0.1)
            proxy.throttle(30_000)  # bytes per second, each way
            uplink = MqttUplink(
                store,
                host="127.0.0.1",
                port=proxy.port,
                site="test-site",
                gateway="gw-test",
                keepalive_s=10,
                ack_timeout_s=5.0,
                poll_interval_s=0.05,
            )
            uplink_task = asyncio.create_task(uplink.run())
            await wait_for(lambda: uplink.state is LinkState.UP, 15)
            await wait_for(lambda: uplink.stats.records_acked >= 500, 30)  # replay under way

            alert_seq = await store.submit(
                AlertRecord(
                    ts_us=2_000_000,
                    alert_id="haccp_upper:P1",
                    rule="haccp_upper",
                    subject="P1",
                    severity=Severity.CRITICAL,
                    state="raised",
                    message="P1 above 5.0 °C",
                    line="L1",
                )
            )
            left_then: list[int] = []

            async def alert_delivered() -> bool:
                if not in_warehouse(warehouse_path, alert_seq):
                    return False
                left_then.append(await uplink.outbox.depth())
                return True

            await wait_for(alert_delivered, 30)
            backlog_left = left_then[0]
            print(
                f"alert delivered with {backlog_left} of {BACKLOG} backlog records still unsent "
                f"({proxy.stats.bytes_up} bytes up so far)"
            )
            # Not starved: most of the replay was still to come.
            assert backlog_left > BACKLOG // 2
            assert uplink.stats.records_acked < BACKLOG // 2

            proxy.throttle(None)
            proxy.latency(0)
            await wait_for(lambda: _outbox_empty(uplink), 60)
            assert uplink.stats.connects == 1, "the slow link held: no reconnect"
    finally:
        if uplink is not None:
            await uplink.stop()
        if uplink_task is not None:
            await asyncio.wait_for(uplink_task, 10)
        await store.stop_committer()
        await committer
        await store.close()
        await stop_task(ingest_task)
    committed = check_conservation(db_path, "gw-test", warehouse_path)
    assert committed == BACKLOG + 1


async def _outbox_empty(uplink: MqttUplink) -> bool:
    return await uplink.outbox.depth() == 0
