"""``lineside warehouse grant-readonly``: a PostgreSQL role that reads the facts, views and
dimensions and can write nothing (docs/warehouse-api.md §5).

A real PostgreSQL database per test, its schema made by the real ingest (``Warehouse.open``
runs the migrations) and a batch committed through it; then the command, then a connection
as the new role.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from gateway.cli import main
from sync.ingest.warehouse import PostgresWarehouse
from sync.protocol import Batch
from tests.support.pg_database import PG_HOST, PG_PORT, admin, fresh_database, fresh_role

TS0 = 1_750_000_000_000_000  # 2025-06-15T15:06:40Z, µs


def _pack(seq: int) -> dict[str, Any]:
    return {
        "ts_us": TS0 + seq * 1000,
        "line": "L1",
        "device": "cw1",
        "run_number": "R1",
        "pack_counter": seq,
        "net_g": 251.5,
        "gross_g": 263.5,
        "tare_g": 12.0,
        "accepted": 1,
        "label_seq": None,
        "flags": 0,
        "nominal_g": 250.0,
    }


@pytest.fixture
def warehouse_dsn() -> Iterator[tuple[str, str]]:
    """(admin DSN of a warehouse holding one batch, a role name for the test)."""
    with fresh_role("bi_reader") as role, fresh_database("lineside_role") as dsn:

        async def fill() -> None:
            warehouse = PostgresWarehouse(dsn)
            await warehouse.open()
            try:
                batch = Batch("gw1", "hull", "packs", tuple((s, _pack(s)) for s in (1, 2, 3)))
                await warehouse.commit_batch(batch, idempotency_key="b1")
            finally:
                await warehouse.close()

        asyncio.run(fill())
        yield dsn, role


def _as(role: str, dsn: str) -> psycopg.Connection[tuple[Any, ...]]:
    dbname = dsn.rsplit("/", 1)[1]
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=role, dbname=dbname, autocommit=True)


def _grant(
    dsn: str, role: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv("WAREHOUSE_ADMIN_DSN", dsn)
    code = main(
        [
            "warehouse",
            "grant-readonly",
            role,
            "--create",
            "--json",
            "--postgres-dsn-env",
            "WAREHOUSE_ADMIN_DSN",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    document: dict[str, Any] = json.loads(out)
    return document


def test_the_role_reads_facts_and_dimensions_and_writes_nothing(
    warehouse_dsn: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn, role = warehouse_dsn
    document = _grant(dsn, role, capsys, monkeypatch)
    assert document["version"] == 1
    assert document["created"] is True
    granted = set(document["relations"])
    assert {"packs", "runs", "sites", "gateways", "lines", "alerts_current"} <= granted
    assert not granted & {"idempotency_keys", "records", "conflicts", "alembic_version"}

    with psycopg.connect(dsn, autocommit=True) as owner:
        counts = {
            name: owner.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
            ).fetchone()
            for name in sorted(granted)
        }
    with _as(role, dsn) as conn:
        # Every relation granted reads as its owner sees it.
        for name in sorted(granted):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
            assert conn.execute(query).fetchone() == counts[name], name
        # The batch's typed rows, as the ingest wrote them.
        assert conn.execute("SELECT count(*) FROM packs").fetchone() == (3,)
        assert conn.execute("SELECT gateway, site, records FROM gateways").fetchall() == [
            ("gw1", "hull", 3)
        ]
        # Read-only sessions by default ...
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM packs")
        # ... and, even in a session that turns that off, no privilege to write.
        conn.execute("SET default_transaction_read_only = off")
        for statement in (
            "DELETE FROM packs",
            "INSERT INTO sites (site, first_seen, last_seen) VALUES ('x', now(), now())",
            "UPDATE gateways SET records = 0",
            "TRUNCATE lines",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        for private in ("idempotency_keys", "records", "conflicts"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(private)))

    with psycopg.connect(dsn, autocommit=True) as owner:  # nothing was changed
        assert owner.execute("SELECT count(*) FROM records").fetchone() == (3,)
        assert owner.execute("SELECT count(*) FROM packs").fetchone() == counts["packs"]


def test_new_partitions_are_readable_and_granting_again_changes_nothing(
    warehouse_dsn: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn, role = warehouse_dsn
    first = _grant(dsn, role, capsys, monkeypatch)
    # A partition the ingest makes later (a month far from any record of the fixture).
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute(
            "CREATE TABLE packs_209901 PARTITION OF packs "
            "FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')"
        )
    with _as(role, dsn) as conn:
        assert conn.execute("SELECT count(*) FROM packs_209901").fetchone() == (0,)
    monkeypatch.setenv("WAREHOUSE_ADMIN_DSN", dsn)
    assert (
        main(
            [
                "warehouse",
                "grant-readonly",
                role,
                "--postgres-dsn-env",
                "WAREHOUSE_ADMIN_DSN",
                "--json",
            ]
        )
        == 0
    )
    again = json.loads(capsys.readouterr().out)
    assert again["created"] is False
    assert set(again["relations"]) == set(first["relations"]) | {"packs_209901"}


def test_an_unknown_role_without_create_is_refused(
    warehouse_dsn: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    dsn, role = warehouse_dsn
    monkeypatch.setenv("WAREHOUSE_ADMIN_DSN", dsn)
    assert (
        main(["warehouse", "grant-readonly", role, "--postgres-dsn-env", "WAREHOUSE_ADMIN_DSN"])
        == 1
    )
    assert "does not exist (--create makes it)" in capsys.readouterr().err
    with admin() as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None
    # A SQLite warehouse has no roles: refused as a usage error.
    assert main(["warehouse", "grant-readonly", role, "--sqlite", str(tmp_path / "w.db")]) == 2
