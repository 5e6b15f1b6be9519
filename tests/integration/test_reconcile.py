"""Reconciliation after a real sync (gateway → mosquitto → ingest, in-process): the gateway's
counts minus its outbox equal the warehouse's, and one record deleted from the warehouse
shows up as exactly that bucket, off by one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.core.clock import SystemClock
from gateway.core.records import PackEvent, TemperatureReading
from gateway.service import run_gateway
from gateway.store import Store
from sync.ingest import IngestService, IngestSettings
from sync.ingest.warehouse import create_warehouse
from sync.reconcile import (
    Difference,
    Key,
    compare,
    gateway_counts,
    hour_key,
    outbox_counts,
    warehouse_counts,
)
from tests.support.cli_runs import lineside
from tests.support.command_docs import documented_keys
from tests.support.configs import minimal_config_text
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

T0 = int(datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp() * 1_000_000)
HOUR = 3_600_000_000


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as running:
        yield running


def test_hour_key_floors_to_the_utc_hour() -> None:
    assert hour_key(T0 // HOUR) == "2024-05-01T10"
    assert hour_key((T0 + HOUR - 1) // HOUR) == "2024-05-01T10"
    assert hour_key(-1) == "1969-12-31T23"
    assert hour_key(datetime(2024, 5, 1, 10, tzinfo=UTC)) == "2024-05-01T10"


def test_compare_subtracts_what_is_still_buffered() -> None:
    a: Key = ("packs", "R1", "2024-05-01T10")
    b: Key = ("device_events", None, "2024-05-01T10")
    c: Key = ("alerts", None, "2024-05-01T11")
    gateway = {a: 10, b: 3}
    warehouse = {a: 8, b: 3, c: 1}
    buffered = {a: 2}
    assert compare(gateway, warehouse, buffered) == [Difference(c, 0, 1, 0)]
    assert compare(gateway, warehouse, {}) == [Difference(c, 0, 1, 0), Difference(a, 10, 8, 0)]
    assert Difference(a, 10, 8, 0).missing == 2


async def test_reconcile_after_a_real_sync(tmp_path: Path, broker: Mosquitto) -> None:
    warehouse_path = tmp_path / "warehouse.db"
    ingest = IngestService(
        IngestSettings(
            mqtt_host=broker.host, mqtt_port=broker.port, http_port=0, sqlite_path=warehouse_path
        )
    )
    ingest_task = asyncio.create_task(ingest.run())
    await asyncio.wait_for(ingest.ready.wait(), 15)
    assert ingest.consumer is not None
    await asyncio.wait_for(ingest.consumer.subscribed.wait(), 15)
    config_path = tmp_path / "gw.toml"
    config_path.write_text(
        minimal_config_text(tmp_path / "gw.db", commit_interval_ms=20)
        + f'[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    config = load_config(config_path)
    stop = asyncio.Event()
    started: asyncio.Future[Store] = asyncio.get_running_loop().create_future()
    gateway = asyncio.create_task(run_gateway(config, stop=stop, on_ready=started.set_result))
    try:
        store = await asyncio.wait_for(started, 15)
        for i in range(240):
            # Three hours, two runs and packs without a run.
            run = ("R1", "R2", None)[i % 3]
            ts = T0 + (i % 3) * HOUR + i * 1_000_000
            store.submit(PackEvent(ts_us=ts, line="L1", device="cw1", net_g=240.0, run_number=run))
        for i in range(30):
            store.submit(
                TemperatureReading(
                    ts_us=T0 + i * 60_000_000, line="L1", device="t1", probe="p1", celsius=2.5
                )
            )

        async def drained() -> bool:
            # The warehouse first (fetchall may run inside the committer's open transaction,
            # between a batch's record rows and its outbox rows), then the outbox.
            if ingest.warehouse.stats.inserted < 240 + 30:
                return False
            rows = await store.fetchall("SELECT count(*) FROM outbox")
            return int(rows[0][0]) == 0

        await wait_for(drained, timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(gateway, 15)
        ingest_task.cancel()
        await asyncio.gather(ingest_task, return_exceptions=True)

    async with Store(config.store, SystemClock()) as edge:
        mine = await gateway_counts(edge)
        buffered = await outbox_counts(edge)
    async with create_warehouse(postgres_dsn=None, sqlite_path=warehouse_path) as warehouse:
        theirs = await warehouse_counts(warehouse, "gw-test")

    # The command says how much is still buffered, in total and per stream.
    command = ("reconcile", "-c", str(config_path), "--sqlite", str(warehouse_path))
    done = lineside(*command, "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert set(document) == documented_keys("The reconcile document")
    assert document == {
        "version": 1,
        "gateway": "gw-test",
        "consistent": True,
        "committed_records": sum(mine.values()),
        "buffered": {
            "total": sum(buffered.values()),
            "per_stream": {"device_events": sum(buffered.values())},
        },
        "differences": [],
    }
    text = lineside(*command).stdout.splitlines()
    assert text[0] == "gateway gw-test: every committed record is in the warehouse or buffered"
    assert text[1] == (
        f"  committed {sum(mine.values())} record(s); still buffered {sum(buffered.values())} "
        f"(device_events {sum(buffered.values())})"
    )

    r1_10: Key = ("packs", "R1", "2024-05-01T10")
    assert mine[r1_10] == 80
    assert mine[("packs", None, "2024-05-01T12")] == 80
    assert mine[("temperatures", None, "2024-05-01T10")] == 30
    # gateway_stopped was committed after the uplink stopped: still buffered, and accounted.
    assert sum(buffered.values()) >= 1
    assert all(key[0] == "device_events" for key in buffered)
    assert compare(mine, theirs, buffered) == []

    with contextlib.closing(sqlite3.connect(warehouse_path)) as db, db:
        deleted = db.execute(
            "DELETE FROM records WHERE gateway = 'gw-test' AND stream = 'packs'"
            " AND json_extract(payload, '$.run_number') = 'R1' AND seq = (SELECT min(seq)"
            " FROM records WHERE stream = 'packs' AND json_extract(payload, '$.run_number') = 'R1')"
        ).rowcount
    assert deleted == 1
    async with create_warehouse(postgres_dsn=None, sqlite_path=warehouse_path) as warehouse:
        theirs = await warehouse_counts(warehouse, "gw-test")
    assert compare(mine, theirs, buffered) == [Difference(r1_10, 80, 79, 0)]
    done = lineside(*command, "--json")
    assert done.returncode == 1
    [lost] = json.loads(done.stdout)["differences"]
    assert lost == {
        "stream": "packs",
        "run_number": "R1",
        "hour": "2024-05-01T10",
        "gateway_count": 80,
        "warehouse_count": 79,
        "still_buffered": 0,
        "missing": 1,
    }
