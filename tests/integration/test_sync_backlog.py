"""Each gateway's backlog reaches the warehouse (docs/topics-and-payloads.md, "The backlog a
batch reports"): a real store with records waiting, the real MQTT uplink, a real mosquitto
and the real ingest into SQLite and PostgreSQL; and, with hand-built batches, a resent or
late batch never turns the stored figure back."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from central.reader import WarehouseReader
from gateway.config import load_config
from gateway.core.clock import ManualClock
from gateway.core.records import PackEvent
from gateway.service import run_gateway
from gateway.store import Store
from sync.ingest import IngestService, IngestSettings
from sync.ingest.migrations.typed_ddl import TABLES
from sync.ingest.warehouse import PostgresWarehouse, SqliteWarehouse, Warehouse
from sync.outbox import BACKLOG_REFRESH_S, Outbox, batch_seqs
from sync.protocol import Batch
from tests.support.configs import minimal_config_text
from tests.support.gateway_tokens import token_for, tokens
from tests.support.mosquitto import Mosquitto
from tests.support.pg_database import fresh_database
from tests.support.uplink_harness import GW, SITE, commit, pack, running_store, running_uplink
from tests.support.waiting import wait_for

WAITING = 230
"""Records in the outbox before the uplink starts: five batches of at most 50."""
T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, the ManualClock's default
SECOND = 1_000_000
NOW = datetime(2026, 1, 1, 1, tzinfo=UTC)


class RecordingOutbox(Outbox):
    """The real outbox reporting its backlog. The test's clock moves one refresh period
    before each cut, so every batch counts again; each cut is noted with the depth the
    outbox had then (one batch in flight at a time: nothing is deleted in between)."""

    def __init__(self, store: Store, clock: ManualClock) -> None:
        super().__init__(store, gateway=GW, site=SITE, report_backlog=True)
        self.clock = clock
        self.cuts: list[tuple[int | None, int | None, int]] = []

    async def next_batch(self, *args: Any, **kwargs: Any) -> Batch | None:
        self.clock.advance(BACKLOG_REFRESH_S)
        batch = await super().next_batch(*args, **kwargs)
        if batch is not None:
            self.cuts.append((batch.backlog, batch.backlog_at_us, await self.depth()))
        return batch


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with fresh_database("lineside_backlog") as dsn:
        yield dsn


def _gateway_row(target: str) -> tuple[Any, ...]:
    """``(backlog, backlog_at)`` of the gateway, ``backlog_at`` as a UTC datetime."""
    if target.startswith("postgresql://"):
        with psycopg.connect(target, autocommit=True) as conn:
            found = conn.execute(
                "SELECT backlog, backlog_at FROM gateways WHERE gateway = %s", (GW,)
            ).fetchall()
        return tuple(found[0]) if found else ()
    with contextlib.closing(sqlite3.connect(target)) as db:
        found = db.execute(
            "SELECT backlog, backlog_at FROM gateways WHERE gateway = ?", (GW,)
        ).fetchall()
    if not found:
        return ()
    backlog, at = found[0]
    return backlog, None if at is None else datetime.fromisoformat(at)


def _records(target: str) -> int:
    if target.startswith("postgresql://"):
        with psycopg.connect(target, autocommit=True) as conn:
            return int(conn.execute("SELECT count(*) FROM records").fetchall()[0][0])
    with contextlib.closing(sqlite3.connect(target)) as db:
        return int(db.execute("SELECT count(*) FROM records").fetchall()[0][0])


def _at(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_the_warehouse_holds_the_backlog_a_batch_was_cut_with(
    kind: str, tmp_path: Path, broker: Mosquitto, pg_dsn: str
) -> None:
    target = pg_dsn if kind == "postgres" else str(tmp_path / "warehouse.db")
    settings = IngestSettings(
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        http_port=0,
        sqlite_path=tmp_path / "warehouse.db",
        postgres_dsn=pg_dsn if kind == "postgres" else None,
    )
    ingest = IngestService(settings)
    ingest_task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(ingest.ready.wait(), 15)
        clock = ManualClock()
        async with running_store(tmp_path, clock) as store:
            await commit(store, [pack(i) for i in range(WAITING)])
            outbox = RecordingOutbox(store, clock)
            async with running_uplink(store, broker, outbox=outbox, window=1, alert_slots=0):
                await wait_for(lambda: _records(target) >= WAITING, 30, "records stored")
                await wait_for(lambda: _drained(outbox), 30, "the outbox drained")
    finally:
        ingest_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ingest_task

    assert len(outbox.cuts) >= WAITING // 50
    # Each batch reports the depth the outbox had when it was cut, never 0 while draining.
    assert all(backlog == depth for backlog, _, depth in outbox.cuts), outbox.cuts
    backlogs = [depth for _, _, depth in outbox.cuts]
    assert backlogs[0] == WAITING
    assert all(b > 0 for b in backlogs)
    assert backlogs == sorted(backlogs, reverse=True)
    _, last_at, last_backlog = outbox.cuts[-1]
    assert last_at is not None
    assert last_at == max(at for _, at, _ in outbox.cuts if at is not None)
    # The warehouse keeps the one counted last: true when that batch was cut.
    assert _gateway_row(target) == (last_backlog, _at(last_at))
    assert 0 < last_backlog <= backlogs[0]
    with WarehouseReader.open(target) as reader:
        [row] = reader.fleet(now=NOW)
    assert (row.backlog, row.backlog_at) == (last_backlog, _at(last_at))


async def _drained(outbox: Outbox) -> bool:
    return await outbox.depth() == 0


# --------------------------------------------------------------------------------------
# The newest figure wins, whatever order the batches come in (hand-built batches)


def _pack(seq: int) -> dict[str, Any]:
    """A ``packs`` record as the gateway's outbox sends it."""
    return {
        "ts_us": T0_US + seq * 1000,
        "line": "L1",
        "device": "cw1",
        "run_number": "R1001",
        "pack_counter": seq,
        "net_g": 251.5,
        "gross_g": 263.5,
        "tare_g": 12.0,
        "accepted": 1,
        "label_seq": None,
        "flags": 0,
        "nominal_g": 250.0,
    }


def _batch(seqs: list[int], backlog: int | None = None, at_us: int | None = None) -> Batch:
    records = tuple((seq, _pack(seq)) for seq in seqs)
    return Batch(GW, SITE, "packs", records, backlog=backlog, backlog_at_us=at_us)


@pytest.fixture(params=["sqlite", "postgres"])
async def opened(
    request: pytest.FixtureRequest, tmp_path: Path, pg_dsn: str
) -> AsyncIterator[tuple[Warehouse, str]]:
    warehouse: Warehouse
    if request.param == "postgres":
        warehouse, target = PostgresWarehouse(pg_dsn), pg_dsn
        await warehouse.open()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"TRUNCATE records, conflicts, {', '.join(t.name for t in TABLES)}")
    else:
        path = tmp_path / "warehouse.db"
        warehouse, target = SqliteWarehouse(path), str(path)
        await warehouse.open()
    try:
        yield warehouse, target
    finally:
        await warehouse.close()


async def test_a_resent_or_late_batch_never_turns_the_backlog_back(
    opened: tuple[Warehouse, str],
) -> None:
    warehouse, target = opened
    await warehouse.commit_batch(_batch([1]))
    assert _gateway_row(target) == (None, None)  # an old gateway's batch: not reported

    first = _batch([2, 3], backlog=500, at_us=T0_US + 2 * SECOND)
    await warehouse.commit_batch(first)
    assert _gateway_row(target) == (500, _at(T0_US + 2 * SECOND))

    await warehouse.commit_batch(_batch([4, 5], backlog=300, at_us=T0_US + 5 * SECOND))
    assert _gateway_row(target) == (300, _at(T0_US + 5 * SECOND))

    # The first batch again (its ack was lost): its records are duplicates, its older
    # figure is not taken.
    ack = await warehouse.commit_batch(first)
    assert ack.committed == (2, 3)
    assert _gateway_row(target) == (300, _at(T0_US + 5 * SECOND))
    # A batch cut earlier that arrives late, one counted at the same moment, one without.
    await warehouse.commit_batch(_batch([6], backlog=900, at_us=T0_US + SECOND))
    await warehouse.commit_batch(_batch([7], backlog=7, at_us=T0_US + 5 * SECOND))
    await warehouse.commit_batch(_batch([8]))
    assert _gateway_row(target) == (300, _at(T0_US + 5 * SECOND))

    await warehouse.commit_batch(_batch([9], backlog=0, at_us=T0_US + 9 * SECOND))
    assert _gateway_row(target) == (0, _at(T0_US + 9 * SECOND))
    with WarehouseReader.open(target) as reader:
        [row] = reader.fleet(now=NOW)
    assert (row.backlog, row.backlog_at) == (0, _at(T0_US + 9 * SECOND))


async def test_the_outbox_counts_its_depth_at_most_once_a_second(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_store(tmp_path, clock) as store:
        await commit(store, [pack(i) for i in range(120)])
        silent = await Outbox(store, gateway=GW, site=SITE).next_batch(50, 1_000_000)
        assert silent is not None
        assert (silent.backlog, silent.backlog_at_us) == (None, None)

        outbox = Outbox(store, gateway=GW, site=SITE, report_backlog=True)
        first = await outbox.next_batch(50, 1_000_000)
        assert first is not None
        assert (first.backlog, first.backlog_at_us) == (120, clock.wall_us())
        assert first.batch_id == silent.batch_id  # the figure is no part of the id
        await outbox.acknowledge(batch_seqs(first))
        clock.advance(BACKLOG_REFRESH_S / 2)
        second = await outbox.next_batch(50, 1_000_000)
        assert second is not None
        # Within the refresh period: the figure counted before, with its time.
        assert (second.backlog, second.backlog_at_us) == (120, first.backlog_at_us)
        await outbox.acknowledge(batch_seqs(second))
        clock.advance(BACKLOG_REFRESH_S / 2)
        third = await outbox.next_batch(50, 1_000_000)
        assert third is not None
        assert (third.backlog, third.backlog_at_us) == (20, clock.wall_us())


async def test_a_gateway_with_report_backlog_reports_it_over_https(tmp_path: Path) -> None:
    warehouse_path = tmp_path / "warehouse.db"
    ingest = IngestService(
        IngestSettings(
            mqtt_enabled=False,
            http_port=0,
            sqlite_path=warehouse_path,
            gateway_tokens=tokens("gw-test"),
        )
    )
    ingest_task = asyncio.create_task(ingest.run())
    token_path = tmp_path / "ingest-token"
    token_path.write_text(token_for("gw-test") + "\n")
    config_path = tmp_path / "gw.toml"
    stop = asyncio.Event()
    gateway: asyncio.Task[object] | None = None
    try:
        await asyncio.wait_for(ingest.ready.wait(), 15)
        config_path.write_text(
            minimal_config_text(tmp_path / "gw.db", commit_interval_ms=20)
            + "[sync]\nreport_backlog = true\n"
            + f'[sync.https]\nurl = "http://127.0.0.1:{ingest.http_port}/v1/ingest"\n'
            + f'token = {{ file = "{token_path}" }}\nbatch_records = 20\n'
        )
        started: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        gateway = asyncio.create_task(
            run_gateway(load_config(config_path), stop=stop, on_ready=started.set_result)
        )
        store = await asyncio.wait_for(started, 15)
        await asyncio.gather(
            *(
                store.submit(PackEvent(ts_us=2_000_000 + i, line="L1", device="cw1", net_g=241.0))
                for i in range(100)
            )
        )

        async def drained() -> bool:
            rows = await store.fetchall("SELECT count(*) FROM outbox")
            return int(rows[0][0]) == 0

        await wait_for(drained, 30, "the outbox drained")
    finally:
        stop.set()
        if gateway is not None:
            await asyncio.wait_for(gateway, 15)
        ingest_task.cancel()
        await asyncio.gather(ingest_task, return_exceptions=True)
    with contextlib.closing(sqlite3.connect(warehouse_path)) as db:
        [(backlog, backlog_at)] = db.execute(
            "SELECT backlog, backlog_at FROM gateways WHERE gateway = 'gw-test'"
        ).fetchall()
    # Every batch reports at least its own records; the figure kept is a count the gateway
    # made of its outbox, never more than all it ever held.
    assert isinstance(backlog, int)
    assert 0 < backlog <= 100 + 20  # the packs, and the gateway's own records at start
    assert datetime.fromisoformat(backlog_at).tzinfo is not None


async def test_a_clock_the_protocol_cannot_carry_sends_the_records_without_the_figure(
    tmp_path: Path,
) -> None:
    clock = ManualClock(wall_us=-SECOND)  # before 1970: a gateway whose clock was never set
    async with running_store(tmp_path, clock) as store:
        await commit(store, [pack(i) for i in range(3)])
        outbox = Outbox(store, gateway=GW, site=SITE, report_backlog=True)
        batch = await outbox.next_batch(50, 1_000_000)
    assert batch is not None
    assert len(batch.records) == 3
    assert (batch.backlog, batch.backlog_at_us) == (None, None)
