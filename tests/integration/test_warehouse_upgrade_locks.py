"""A schema upgrade at start never leaves the warehouse's readers queued behind it.

An ``ALTER TABLE`` waiting for a lock holds every later reader of that table in
PostgreSQL's lock queue. The ingest's upgrade waits at most its lock timeout, gives up
whole, and is tried again later (docs/warehouse.md, "Schema upgrades"). Real PostgreSQL
(127.0.0.1:5432): a database one revision behind, an analyst's open transaction on the
table the last revision alters, and a dashboard reading that table meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sync.ingest.migrations import head_revision
from sync.ingest.migrations.gateway_backlog_ddl import downgrade_statements
from sync.ingest.migrations.runner import LOCK_KEY
from sync.ingest.warehouse_postgres import PostgresWarehouse
from sync.ingest.warehouse_records import WarehouseUnavailable
from tests.support.pg_database import fresh_database

BEFORE_HEAD = "0004_pack_products"
"""The revision before the head: the head's upgrade adds columns to ``gateways``."""


@pytest.fixture
def one_revision_behind() -> Iterator[str]:
    with fresh_database("upgrade_locks") as dsn:

        async def create() -> None:
            async with PostgresWarehouse(dsn, pool_size=1):
                pass

        asyncio.run(create())
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in downgrade_statements(True):
                conn.execute(statement)
            conn.execute("UPDATE alembic_version SET version_num = %s", (BEFORE_HEAD,))
        yield dsn


def _revision(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


def _waiting_for_a_lock(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return row is not None and int(row[0]) > 0


def _dashboard_read(dsn: str) -> int:
    """What a dashboard asks of ``gateways``, allowed a minute (the upgrade's wait is 5 s)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '60s'")
        row = conn.execute("SELECT count(*) FROM gateways").fetchone()
    assert row is not None
    return int(row[0])


async def _gives_up(upgrade: asyncio.Task[None], dsn: str) -> None:
    """The upgrade ends with a transient error about its lock, having changed nothing."""
    with pytest.raises(WarehouseUnavailable, match="lock timeout"):
        async with asyncio.timeout(60):
            await upgrade
    assert _revision(dsn) == BEFORE_HEAD  # rolled back whole


async def _upgrades_once_free(dsn: str) -> None:
    async with PostgresWarehouse(dsn, pool_size=1):
        pass
    assert _revision(dsn) == head_revision()


@pytest.mark.slow
async def test_an_upgrade_behind_a_long_query_gives_up_and_readers_go_on(
    one_revision_behind: str,
) -> None:
    dsn = one_revision_behind
    analyst: psycopg.Connection[Any] = psycopg.connect(dsn)  # its transaction stays open
    try:
        analyst.execute("SELECT count(*) FROM gateways").fetchone()
        warehouse = PostgresWarehouse(dsn, pool_size=1)
        try:
            upgrade = asyncio.create_task(warehouse.open())
            async with asyncio.timeout(60):
                while not await asyncio.to_thread(_waiting_for_a_lock, dsn):
                    assert not upgrade.done(), "the upgrade ended without waiting for the lock"
                    await asyncio.sleep(0.05)
            # Queued behind the upgrade's ALTER until the upgrade gives up, not for as long
            # as the analyst's transaction stays open.
            assert await asyncio.to_thread(_dashboard_read, dsn) == 0
            await _gives_up(upgrade, dsn)
        finally:
            await warehouse.close()
    finally:
        analyst.close()
    await _upgrades_once_free(dsn)


@pytest.mark.slow
async def test_an_instance_waiting_for_another_instances_upgrade_tries_again(
    one_revision_behind: str,
) -> None:
    dsn = one_revision_behind
    other = psycopg.connect(dsn)  # holds the upgrade's advisory lock, as an instance would
    try:
        other.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LOCK_KEY,))
        warehouse = PostgresWarehouse(dsn, pool_size=1)
        try:
            await _gives_up(asyncio.create_task(warehouse.open()), dsn)
        finally:
            await warehouse.close()
    finally:
        other.close()
    await _upgrades_once_free(dsn)
