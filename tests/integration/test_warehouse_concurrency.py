"""Many writers on one PostgreSQL warehouse, as several ingest instances with their pools are.

Three :class:`PostgresWarehouse` instances (three ingests) with three connections each
commit overlapping batches of several gateways at once: the same batch to two instances at
the same moment, every stream of a gateway across instances, months whose partitions
nobody made yet needed by many transactions together. Every record ends stored exactly
once with its hash; the typed facts, the current state and the dimensions are exactly what
one writer committing the same batches one after the other produces; no commit fails (a
deadlock or serialisation failure is run again); every ack says every record committed.

A real deadlock between the warehouse's transaction and another connection is broken by
PostgreSQL, and the batch's transaction, run again, commits once (sync/ingest/pg_retry.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from sync.ingest.facts_pg import partition_name
from sync.ingest.migrations.typed_ddl import TABLES
from sync.ingest.warehouse import PostgresWarehouse, Warehouse, payload_sha256
from sync.protocol import Ack, Batch
from tests.support.pg_database import fresh_database
from tests.support.waiting import wait_for
from tests.support.warehouse_data import (
    SITE,
    TODAY,
    TS0,
    batch,
    every_stream,
    pack,
    rows,
)
from tests.support.warehouse_typed import typed_rows

GATEWAYS = ("hull-gw1", "hull-gw2", "hull-gw3", "hull-gw4")
SEEN = ("received_at", "first_seen", "last_seen")
MONTH_US = 31 * 24 * 3600 * 1_000_000
FAR_MONTHS = [TS0 + k * MONTH_US for k in (14, 15)]
"""Months no partition exists for at open (TODAY's and the next two are made then)."""


@pytest.fixture(scope="module")
def dsns() -> Iterator[tuple[str, str]]:
    """One database for the concurrent writers, one for the serial reference."""
    with (
        fresh_database("lineside_concurrent") as concurrent,
        fresh_database("lineside_serial") as serial,
    ):
        yield concurrent, serial


def workload() -> list[Batch]:
    """Every stream of every gateway, twice over, plus packs of months without partitions."""
    batches: list[Batch] = []
    for gw in GATEWAYS:
        for first in (1, 100, 200):
            batches += [Batch(gw, SITE, b.stream, b.records) for b in every_stream(first)]
        for k, ts_us in enumerate(FAR_MONTHS):
            seqs = range(300 + 10 * k, 305 + 10 * k)
            batches.append(
                batch("packs", *((s, pack(s, ts_us=ts_us + s)) for s in seqs), gateway=gw)
            )
    return batches


def everything(warehouse: Warehouse) -> dict[str, Any]:
    """Every typed table without the times of receipt, and every record's hash."""
    tables: dict[str, Any] = {t.name: typed_rows(warehouse, t.name, skip=SEEN) for t in TABLES}
    tables["records"] = rows(
        warehouse, "SELECT gateway, seq, stream, payload_sha256 FROM records ORDER BY 1, 2"
    )
    tables["conflicts"] = rows(warehouse, "SELECT count(*) FROM conflicts")
    return tables


def partitions(warehouse: Warehouse) -> list[str]:
    found = rows(
        warehouse,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid ORDER BY 1",
    )
    return [str(name) for (name,) in found]


def expected_ack(sent: Batch) -> Ack:
    return Ack(sent.gateway, sent.batch_id, tuple(sorted(s for s, _ in sent.records)), ())


async def test_three_instances_committing_at_once_store_what_one_serial_writer_does(
    dsns: tuple[str, str],
) -> None:
    concurrent_dsn, serial_dsn = dsns
    batches = workload()
    shuffle = random.Random(22)
    # (batch, instance): each batch to one instance, every third to two instances at once.
    commits = [(b, shuffle.randrange(3)) for b in batches]
    commits += [(b, (i + 1) % 3) for n, (b, i) in enumerate(commits) if n % 3 == 0]
    shuffle.shuffle(commits)

    instances = [
        PostgresWarehouse(concurrent_dsn, pool_size=3, today=lambda: TODAY) for _ in range(3)
    ]
    for instance in instances:
        await instance.open()
    try:
        acks = await asyncio.gather(*(instances[i].commit_batch(b) for b, i in commits))
        assert acks == [expected_ack(b) for b, _ in commits]
        concurrent = everything(instances[0])
        made = partitions(instances[0])
        inserted = sum(w.stats.inserted for w in instances)
        duplicates = sum(w.stats.duplicates for w in instances)
    finally:
        for instance in instances:
            await instance.close()

    serial = PostgresWarehouse(serial_dsn, pool_size=1, today=lambda: TODAY)
    await serial.open()
    try:
        for b in sorted(batches, key=lambda b: (b.gateway, b.records[0][0])):
            assert await serial.commit_batch(b) == expected_ack(b)
        reference = everything(serial)
        reference_partitions = partitions(serial)
    finally:
        await serial.close()

    records = [(b.gateway, seq, payload_sha256(data)) for b in batches for seq, data in b.records]
    assert len(records) == len({(gw, seq) for gw, seq, _ in records})
    assert sorted((gw, seq, sha) for gw, seq, _, sha in concurrent["records"]) == sorted(records)
    assert inserted == len(records)
    assert duplicates == sum(len(b.records) for b, _ in commits) - len(records)
    assert concurrent["conflicts"] == [(0,)]
    for name in reference:
        assert concurrent[name] == reference[name], f"{name} differs from the serial writer's"
    assert made == reference_partitions
    for ts_us in FAR_MONTHS:
        moment = datetime.fromtimestamp(ts_us / 1e6, UTC)
        assert partition_name("packs", (moment.year, moment.month)) in made


async def test_a_deadlock_with_another_transaction_is_run_again_and_commits_once(
    dsns: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    dsn, _ = dsns
    caplog.set_level(logging.WARNING, logger="sync.ingest.warehouse")
    gw = "hull-gw9"
    warehouse = PostgresWarehouse(dsn, pool_size=2, today=lambda: TODAY)
    await warehouse.open()
    try:
        await warehouse.commit_batch(batch("packs", (1, pack(1)), gateway=gw))
        second = batch("packs", (2, pack(2)), gateway=gw)
        sha = payload_sha256(pack(2))
        with psycopg.connect(dsn) as other, psycopg.connect(dsn, autocommit=True) as watcher:
            # The other transaction lets the warehouse's be the one PostgreSQL aborts.
            other.execute("SET LOCAL deadlock_timeout = '60s'")
            other.execute("UPDATE gateways SET records = records WHERE gateway = %s", (gw,))
            commit = asyncio.create_task(warehouse.commit_batch(second))

            def waiting() -> bool:
                found = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND application_name = 'lineside-ingest' AND datname = current_database()"
                ).fetchone()
                return found == (1,)

            # The warehouse stored seq 2 (uncommitted) and waits for the gateway row; the
            # other transaction now waits for seq 2: a cycle.
            await wait_for(waiting, 15, "the commit waiting for the gateway row")
            done = threading.Event()

            def insert_same_record() -> None:
                other.execute(
                    "INSERT INTO records (gateway, site, seq, stream, payload, payload_sha256)"
                    " VALUES (%s, %s, 2, 'packs', '{}'::jsonb, %s) ON CONFLICT DO NOTHING",
                    (gw, SITE, sha),
                )
                done.set()

            await asyncio.to_thread(insert_same_record)
            assert done.is_set()
            other.rollback()  # nothing of the other transaction stays
            ack = await asyncio.wait_for(commit, 30)
    finally:
        await warehouse.close()

    assert ack == Ack(gw, second.batch_id, (2,), ())
    retried = [r.getMessage() for r in caplog.records if "[40P01]" in r.getMessage()]
    assert retried, "no deadlock was broken"
    assert all(f"batch {second.batch_id}" in message for message in retried)
    assert rows(
        warehouse, "SELECT seq, payload_sha256 FROM records WHERE gateway = %s ORDER BY 1", gw
    ) == [
        (1, payload_sha256(pack(1))),
        (2, sha),
    ]
    assert rows(warehouse, "SELECT count(*) FROM packs WHERE gateway = %s", gw) == [(2,)]
    assert rows(warehouse, "SELECT records, last_seq FROM gateways WHERE gateway = %s", gw) == [
        (2, 2)
    ]
    assert warehouse.stats.inserted == 2
