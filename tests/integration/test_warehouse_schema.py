"""The warehouse's schema and its migrations, in real PostgreSQL and SQLite: both databases
have the same tables and columns; an old warehouse (the schema before the migrations, with
its per-stream views) is adopted and upgraded, and the backfill fills its typed tables with
exactly what live ingest would have written, once; PostgreSQL's monthly partitions and
indexes; a warehouse newer than the code is refused (docs/warehouse-schema.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.cli import main
from sync.ingest.backfill import BackfillSummary
from sync.ingest.migrations import SchemaTooNew, gateway_backlog_ddl, head_revision
from sync.ingest.migrations.baseline_ddl import OLD_VIEWS, PG_BASELINE, SQLITE_BASELINE
from sync.ingest.migrations.typed_ddl import SQLITE_TYPES, TABLES
from sync.ingest.warehouse import (
    PostgresWarehouse,
    SqliteWarehouse,
    Warehouse,
    canonical_json,
    payload_sha256,
)
from sync.protocol import Batch
from tests.support.warehouse_data import (
    TODAY,
    alert,
    batch,
    empty_typed_tables,
    every_stream,
    execute,
    fresh_database,
    pack,
    rows,
)
from tests.support.warehouse_typed import column_types, typed_rows

SEEN = ("received_at", "first_seen", "last_seen")
LATER_COLUMNS = {"gateways": {c: pg for c, pg, _ in gateway_backlog_ddl.COLUMNS}}
"""Columns later revisions add to the tables of 0002, with their declared types."""
"""When the warehouse saw something: differs between two warehouses by nature."""


@pytest.fixture(scope="module")
def pg_dsns() -> Iterator[tuple[str, str]]:
    """Two fresh databases for this module: an old warehouse and a live one."""
    with fresh_database("lineside_old") as old, fresh_database("lineside_live") as live:
        yield old, live


def _warehouse(kind: str, dsn: str, path: Path) -> Warehouse:
    if kind == "postgres":
        return PostgresWarehouse(dsn, today=lambda: TODAY)
    return SqliteWarehouse(path)


def _old_warehouse(kind: str, dsn: str, path: Path, batches: list[Batch]) -> None:
    """A warehouse as the code before the migrations left it: its tables, its views, and
    the records of ``batches`` as it stored them."""
    insert = (
        "INSERT INTO records (gateway, site, seq, stream, payload, payload_sha256)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
    )
    values = [
        (b.gateway, b.site, seq, b.stream, canonical_json(data), payload_sha256(data))
        for b in batches
        for seq, data in b.records
    ]
    if kind == "postgres":
        with psycopg.connect(dsn, autocommit=True) as conn:
            for name in (*(t.name for t in TABLES), "alembic_version", "records"):
                found = conn.execute(
                    "SELECT relkind FROM pg_class WHERE relname = %s"
                    " AND relnamespace = 'public'::regnamespace",
                    (name,),
                ).fetchone()
                if found is not None:
                    kind_of = "VIEW" if found[0] == "v" else "TABLE"
                    conn.execute(f"DROP {kind_of} {name} CASCADE")
            for statement in PG_BASELINE:
                conn.execute(statement)
            for view in OLD_VIEWS:
                conn.execute(
                    f"CREATE VIEW {view} AS SELECT gateway, site, seq, received_at,"
                    f" payload->>'line' AS line FROM records WHERE stream = '{view}'"
                )
            with conn.cursor() as cur:
                cur.executemany(insert, values)
        return
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        for statement in SQLITE_BASELINE:
            db.execute(statement)
        for view in OLD_VIEWS:
            db.execute(
                f"CREATE VIEW {view} AS SELECT gateway, site, seq, received_at,"
                f" json_extract(payload, '$.line') AS line FROM records WHERE stream = '{view}'"
            )
        db.executemany(insert.replace("%s", "?"), values)


def _everything(warehouse: Warehouse) -> dict[str, list[dict[str, Any]]]:
    """Every typed table, without the times of receipt."""
    return {t.name: typed_rows(warehouse, t.name, skip=SEEN) for t in TABLES}


def _batches() -> list[Batch]:
    late = [
        batch("alerts", (30, alert(30, "cleared"))),
        batch("packs", (31, pack(31, ts_us=1_800_000_000_000_000))),  # 2027-01
    ]
    return [*late, *every_stream(1), *every_stream(100)]


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_an_old_warehouse_upgrades_and_backfills_to_what_live_ingest_writes(
    kind: str, pg_dsns: tuple[str, str], tmp_path: Path
) -> None:
    batches = _batches()
    old_path, live_path = tmp_path / "old.db", tmp_path / "live.db"
    _old_warehouse(kind, pg_dsns[0], old_path, batches)
    live = _warehouse(kind, pg_dsns[1], live_path)
    asyncio.run(live.open())
    empty_typed_tables(live)
    for one in batches:
        asyncio.run(live.commit_batch(one))

    old = _warehouse(kind, pg_dsns[0], old_path)
    asyncio.run(old.open())  # upgrade head: the views give way to tables, still empty
    assert rows(old, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert rows(old, "SELECT count(*) FROM packs") == [(0,)]
    progress: list[int] = []
    summary = asyncio.run(old.backfill(chunk=7, progress=lambda s: progress.append(s.records)))
    assert summary.records == summary.facts == sum(len(b.records) for b in batches)
    assert summary.unfit == 0
    assert progress == sorted(progress)
    assert progress[-1] == summary.records
    assert _everything(old) == _everything(live)
    # And the times of receipt are the records' own.
    assert rows(old, "SELECT count(*) FROM packs p JOIN records r USING (gateway, seq)") == [
        (len([1 for b in batches if b.stream == "packs" for _ in b.records]),)
    ]

    before = {t.name: typed_rows(old, t.name) for t in TABLES}
    again = asyncio.run(old.backfill())
    assert (again.records, again.facts) == (summary.records, 0)
    assert {t.name: typed_rows(old, t.name) for t in TABLES} == before
    for opened in (old, live):
        asyncio.run(opened.close())


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_a_backfill_stopped_half_way_resumes(
    kind: str, pg_dsns: tuple[str, str], tmp_path: Path
) -> None:
    batches = every_stream(1)
    _old_warehouse(kind, pg_dsns[0], tmp_path / "old.db", batches)
    old = _warehouse(kind, pg_dsns[0], tmp_path / "old.db")
    asyncio.run(old.open())

    def stop_after_the_first_chunk(summary: BackfillSummary) -> None:
        raise KeyboardInterrupt

    def facts() -> int:
        streams = {b.stream for b in batches}
        return sum(rows(old, f"SELECT count(*) FROM {s}")[0][0] for s in streams)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(old.backfill(chunk=4, progress=stop_after_the_first_chunk))
    assert facts() == 4  # the first chunk's transaction committed, the rest never ran
    rest = asyncio.run(old.backfill(chunk=4))
    assert (rest.records, rest.facts) == (12, 12 - 4)
    assert facts() == 12
    asyncio.run(old.close())


def test_the_backfill_command_prints_a_json_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    _old_warehouse("sqlite", "", path, every_stream(1))
    assert main(["warehouse", "backfill", "--sqlite", str(path), "--json", "--chunk", "5"]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["version"] == 1
    assert (document["records"], document["facts"], document["unfit"]) == (12, 12, 0)
    assert document["by_stream"]["packs"] == 2
    assert "12 records read, 12 facts added" in err
    assert main(["warehouse", "backfill", "--sqlite", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["facts"] == 0


def test_the_backfill_command_refuses_an_unset_dsn_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LINESIDE_TEST_NO_DSN", raising=False)
    assert main(["warehouse", "backfill", "--postgres-dsn-env", "LINESIDE_TEST_NO_DSN"]) == 2
    assert capsys.readouterr().err.strip() == (
        "lineside warehouse backfill: $LINESIDE_TEST_NO_DSN is not set"
    )


# --------------------------------------------------------------------------------------
# The schema itself


def test_both_databases_have_the_same_tables_and_columns(
    pg_dsns: tuple[str, str], tmp_path: Path
) -> None:
    pg = _warehouse("postgres", pg_dsns[1], tmp_path / "unused.db")
    lite = _warehouse("sqlite", "", tmp_path / "w.db")
    for opened in (pg, lite):
        asyncio.run(opened.open())
    pg_columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows(
        pg,
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        " AND c.table_name NOT IN (SELECT inhrelid::regclass::text FROM pg_inherits)"
        " ORDER BY c.table_name, c.ordinal_position",
    ):
        pg_columns.setdefault(table, []).append((column, data_type))
    lite_columns = {
        name: [
            (str(r[1]), str(r[2])) for r in rows(lite, f"SELECT * FROM pragma_table_info('{name}')")
        ]
        for (name,) in rows(lite, "SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert sorted(pg_columns) == sorted(lite_columns)
    assert {"packs", "alerts_current", "runs", "sites", "gateways", "lines"} <= set(pg_columns)
    for table, columns in pg_columns.items():
        assert [c for c, _ in columns] == [c for c, _ in lite_columns[table]], table
    for table in TABLES:  # the declared types, mapped as docs/warehouse-schema.md says
        declared = {**column_types(table), **LATER_COLUMNS.get(table.name, {})}
        assert [SQLITE_TYPES[declared[c]] for c, _ in lite_columns[table.name]] == [
            t for _, t in lite_columns[table.name]
        ]
        assert [t for _, t in pg_columns[table.name]] == [
            {"TIMESTAMPTZ": "timestamp with time zone", "JSONB": "jsonb"}.get(
                declared[c], declared[c].lower()
            )
            for c, _ in pg_columns[table.name]
        ]
    for opened in (pg, lite):
        asyncio.run(opened.close())


def test_partitions_are_made_at_open_and_for_a_new_month(
    pg_dsns: tuple[str, str], tmp_path: Path
) -> None:
    warehouse = _warehouse("postgres", pg_dsns[1], tmp_path / "unused.db")
    asyncio.run(warehouse.open())
    empty_typed_tables(warehouse)

    def partitions() -> set[str]:
        return {
            r[0]
            for r in rows(
                warehouse,
                "SELECT inhrelid::regclass::text FROM pg_inherits"
                " WHERE inhparent = 'packs'::regclass",
            )
        }

    assert {"packs_202612", "packs_202701", "packs_202702", "packs_default"} <= partitions()
    assert "packs_203001" not in partitions()
    in_2030 = 1_893_456_000_000_000 + 86_400_000_000  # 2030-01-02
    in_1990 = 631_152_000_000_000  # 1990-01-01: outside the partitioned years
    asyncio.run(
        warehouse.commit_batch(
            batch("packs", (1, pack(1, ts_us=in_2030)), (2, pack(2, ts_us=in_1990)))
        )
    )
    assert "packs_203001" in partitions()
    assert rows(warehouse, "SELECT seq FROM packs_203001") == [(1,)]
    assert rows(warehouse, "SELECT seq FROM packs_default") == [(2,)]
    # The query of a run's packs reads an index, never the records.
    execute(warehouse, "ANALYZE packs")
    with psycopg.connect(pg_dsns[1], autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT * FROM packs WHERE gateway = %s AND run_number = %s",
                ("hull-gw1", "R1001"),
            ).fetchall()
        )
    assert "Index" in plan
    assert "records" not in plan
    assert "Seq Scan" not in plan
    asyncio.run(warehouse.close())


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_a_warehouse_newer_than_the_code_is_refused(
    kind: str, pg_dsns: tuple[str, str], tmp_path: Path
) -> None:
    warehouse = _warehouse(kind, pg_dsns[1], tmp_path / "w.db")
    asyncio.run(warehouse.open())
    asyncio.run(warehouse.close())
    execute(warehouse, "UPDATE alembic_version SET version_num = '0099_from_the_future'")
    again = _warehouse(kind, pg_dsns[1], tmp_path / "w.db")
    with pytest.raises(SchemaTooNew, match="0099_from_the_future"):
        asyncio.run(again.open())
    execute(warehouse, f"UPDATE alembic_version SET version_num = '{head_revision()}'")


def test_lineside_ingest_refuses_a_newer_warehouse_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.db"
    warehouse = _warehouse("sqlite", "", path)
    asyncio.run(warehouse.open())
    asyncio.run(warehouse.close())
    execute(warehouse, "UPDATE alembic_version SET version_num = '0099_from_the_future'")
    # The warehouse is opened before any transport starts: port 1 is never dialled.
    code = main(["ingest", "--sqlite", str(path), "--no-http", "--mqtt-port", "1"])
    assert code == 1
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith("lineside ingest: the warehouse schema is at revision '0099_from_the_future'")
    )


def test_ingest_instances_starting_together_upgrade_once(tmp_path: Path) -> None:
    with fresh_database("lineside_race") as dsn:
        warehouses = [_warehouse("postgres", dsn, tmp_path / "unused.db") for _ in range(4)]

        async def open_all() -> None:
            await asyncio.gather(*(w.open() for w in warehouses))

        asyncio.run(open_all())
        assert rows(warehouses[0], "SELECT version_num FROM alembic_version") == [
            (head_revision(),)
        ]
        for warehouse in warehouses:
            asyncio.run(warehouse.close())
