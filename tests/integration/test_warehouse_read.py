"""The central read side over a real warehouse: the run report EXACTLY as the gateway gives
it, traceability, analytics (central/reader.py; docs/warehouse-analytics.md).

Two gateways' days (tests/support/warehouse_day.py: two products one of them catch weight,
label-decided packs, ℮ batches, HACCP breaches, label gaps, rejects, uncertain values,
missed packs) go through the real rules engine and the real store, then through each store's
real outbox into the real warehouse (PostgreSQL 127.0.0.1:5432 in a fresh database for this
module, and SQLite). The gateway's own ``build_report`` over its store is the oracle.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from central.errors import Ambiguous, NotFound
from central.reader import WarehouseReader
from gateway.report import build_report
from gateway.report_output import run_alerts, run_losses
from sync.ingest.warehouse import PostgresWarehouse, SqliteWarehouse, Warehouse
from tests.support.cli_runs import lineside
from tests.support.command_docs import documented_keys
from tests.support.configs import minimal_config_text
from tests.support.warehouse_day import (
    GRIMSBY,
    HULL,
    SHARED_BATCH,
    sync_store,
    write_store,
)

PG_HOST, PG_PORT = "127.0.0.1", 5432
RUNS = (
    ("hull-gw1", "R-100"),
    ("hull-gw1", "R-101"),
    ("hull-gw1", "R-102"),
    ("grimsby-gw1", "R-100"),
    ("grimsby-gw1", "R-201"),
)
PLANS = {HULL.gateway: HULL, GRIMSBY.gateway: GRIMSBY}


@dataclass(frozen=True)
class Day:
    stores: dict[str, Path]
    """Each gateway's store (its outbox drained into the warehouse)."""
    targets: dict[str, str]
    """The warehouse reader's target per kind: 'postgres' DSN, 'sqlite' path."""
    folder: Path


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A fresh database for this module (no skip: PostgreSQL must be there)."""
    name = f"lineside_read_{secrets.token_hex(4)}"
    admin = psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    )
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


async def _fill(warehouse: Warehouse, stores: dict[str, Path]) -> None:
    await warehouse.open()
    try:
        for gateway, path in stores.items():
            await sync_store(PLANS[gateway], path, warehouse)
    finally:
        await warehouse.close()


async def _stores(folder: Path, kind: str) -> dict[str, Path]:
    stores = {}
    for plan in (HULL, GRIMSBY):
        path = folder / f"{plan.gateway}-{kind}.db"
        await write_store(plan, path)
        stores[plan.gateway] = path
    return stores


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory, pg_dsn: str) -> Day:
    folder = tmp_path_factory.mktemp("day")
    # The day is written twice, once per warehouse (each sync drains its store's outbox);
    # the manual clocks make the two copies identical.
    pg_stores = asyncio.run(_stores(folder, "pg"))
    lite_stores = asyncio.run(_stores(folder, "lite"))
    asyncio.run(_fill(PostgresWarehouse(pg_dsn), pg_stores))
    lite = folder / "warehouse.db"
    asyncio.run(_fill(SqliteWarehouse(lite), lite_stores))
    for gateway in pg_stores:
        assert _rows(pg_stores[gateway]) == _rows(lite_stores[gateway])
    return Day(stores=pg_stores, targets={"postgres": pg_dsn, "sqlite": str(lite)}, folder=folder)


def _rows(store: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(store)
    try:
        return db.execute("SELECT seq, ts_us, net_g FROM packs ORDER BY seq").fetchall()
    finally:
        db.close()


@pytest.fixture(params=["postgres", "sqlite"])
def reader(request: pytest.FixtureRequest, day: Day) -> Iterator[WarehouseReader]:
    with WarehouseReader.open(day.targets[request.param]) as opened:
        yield opened


@pytest.mark.parametrize(("gateway", "run"), RUNS)
def test_the_run_report_equals_the_gateways_own(
    reader: WarehouseReader, day: Day, gateway: str, run: str
) -> None:
    store = day.stores[gateway]
    expected = build_report(store, run)
    got = reader.run_report(run, gateway=gateway)
    # Field by field first (a failure names the field), then the whole dataclass.
    for name in expected.__slots__:
        assert getattr(got, name) == getattr(expected, name), name
    assert got == expected
    assert expected.packs > 0
    # ℮ batches close every hour: R-102 runs 20 minutes, after R-100 on the same line.
    assert bool(expected.emark_batches) == (run != "R-102")
    parts = reader.run_report_parts(run, gateway=gateway)
    assert parts.losses == run_losses(store, expected)
    assert parts.alerts == run_alerts(store, expected)


def test_the_day_has_what_the_report_must_get_right(day: Day) -> None:
    report = build_report(day.stores["hull-gw1"], "R-100")
    fixed, catch = report.products
    assert catch.catch_weight
    assert not fixed.catch_weight
    assert fixed.packs > 0
    assert catch.packs > 0
    assert fixed.rejected > 0
    assert report.uncertain_packs > 0
    assert sum(a["state"] == "raised" for a in report.temperature_breaches) > 0
    assert sum(a["state"] == "raised" for a in report.label_gaps) > 0
    db = sqlite3.connect(day.stores["hull-gw1"])
    (late,) = db.execute(
        "SELECT count(*) FROM device_events WHERE kind = 'pack_product'"
    ).fetchone()
    db.close()
    assert late > 0, "packs decided by their label"


def test_a_run_of_two_gateways_needs_the_gateway(reader: WarehouseReader) -> None:
    with pytest.raises(Ambiguous) as caught:
        reader.run_report("R-100")
    assert caught.value.gateways == ("grimsby-gw1", "hull-gw1")
    with pytest.raises(NotFound):
        reader.run_report("R-999")
    assert reader.run_report("R-101").run.run_number == "R-101"


def test_the_summary_takes_the_reports_figures(reader: WarehouseReader, day: Day) -> None:
    report = build_report(day.stores["hull-gw1"], "R-100")
    summary = reader.run_summary("R-100", gateway="hull-gw1")
    assert summary.packs == report.packs
    assert summary.kg == report.kg
    assert [p.mean_g for p in summary.products] == [p.mean_g for p in report.products]
    assert [p.giveaway_kg for p in summary.products] == [p.giveaway_kg for p in report.products]
    assert summary.haccp_breaches == sum(
        a["state"] == "raised" for a in report.temperature_breaches
    )
    assert summary.haccp_breach_s > 0
    assert summary.label_gaps == sum(a["state"] == "raised" for a in report.label_gaps)
    # The counter skipped two packs three times on L1.
    assert summary.missed_packs == run_losses(day.stores["hull-gw1"], report).missed_packs == 6
    assert summary.emark_batches == len(report.emark_batches)


def _store_rows(day: Day, query: str, *params: object) -> set[tuple[object, ...]]:
    found: set[tuple[object, ...]] = set()
    for gateway, path in day.stores.items():
        db = sqlite3.connect(path)
        try:
            found |= {(gateway, *r) for r in db.execute(query, params)}
        finally:
            db.close()
    return found


def test_a_batch_code_traces_to_exactly_its_runs_packs_and_labels(
    reader: WarehouseReader, day: Day
) -> None:
    trace = reader.trace_batch(SHARED_BATCH)
    assert {(t.run.gateway, t.run.run_number) for t in trace.runs} == {
        ("hull-gw1", "R-100"),
        ("hull-gw1", "R-101"),
    }
    for traced in trace.runs:
        run = traced.run.run_number
        packs = {(p.gateway, p.seq, p.net_g) for p in traced.packs}
        assert packs == {
            r
            for r in _store_rows(day, "SELECT seq, net_g FROM packs WHERE run_number = ?", run)
            if r[0] == "hull-gw1"
        }
        labels = {
            (lb.gateway, lb.seq, lb.gtin, lb.serial, lb.pack_date, lb.use_by)
            for lb in traced.labels
        }
        expected = {
            (g, seq, gtin, serial, date.fromisoformat(str(packed)), date.fromisoformat(str(use_by)))
            for g, seq, gtin, serial, packed, use_by in _store_rows(
                day,
                "SELECT seq, gtin, serial, pack_date, use_by FROM label_scans WHERE run_number = ?",
                run,
            )
            if g == "hull-gw1"
        }
        assert labels == expected
        assert labels
        assert traced.temperatures
        assert all(t.line == traced.run.line for t in traced.temperatures)
    with pytest.raises(NotFound):
        reader.trace_batch("NO-SUCH-BATCH")


def test_a_serial_traces_back_to_its_runs_and_batch_codes(
    reader: WarehouseReader, day: Day
) -> None:
    trace = reader.trace_serial("30")
    scans = {(lb.gateway, lb.seq) for t in trace.runs for lb in t.labels}
    assert scans == _store_rows(day, "SELECT seq FROM label_scans WHERE serial = ?", "30")
    assert len(scans) == 4  # on each line of each site
    assert set(trace.batch_codes) == {SHARED_BATCH, "B-HULL-1", "B-GRIM-1", "B-GRIM-2"}
    assert trace.unmatched_labels == ()


def test_compliance_giveaway_and_series(reader: WarehouseReader, day: Day) -> None:
    checks = {(c.check, c.subject): c for c in reader.compliance("R-100", gateway="hull-gw1")}
    assert not checks[("temperature_breach", "L1/R-100")].passed
    assert not checks[("label_gaps", "L1/R-100")].passed
    assert checks[("gg_in_premium", "L1/R-100/41240")].passed
    report = build_report(day.stores["grimsby-gw1"], "R-100")
    [by_run] = [
        g
        for g in reader.giveaway(by="run")
        if (g.gateway, g.run_number) == ("grimsby-gw1", "R-100")
    ]
    [product] = report.products
    assert by_run.packs == product.packs
    assert by_run.giveaway_kg == pytest.approx(product.giveaway_kg)
    for by in ("line_hour", "line_shift"):
        rows = [g for g in reader.giveaway(by=by) if (g.gateway, g.line) == ("grimsby-gw1", "L1")]
        assert sum(g.packs for g in rows) == product.packs, by
    weights = reader.pack_weights("R-100", gateway="hull-gw1")
    fixed = next(p for p in weights.products if p.plu == "41240")
    assert fixed.t1_g is not None
    assert fixed.nominal_g == 240
    series = reader.temperature_series("R-100", gateway="hull-gw1")
    assert series
    assert series[0].breaches
    assert reader.temperature_breaches(line="L1")
    nearing = reader.shelf_life(as_of=date(2026, 12, 11), within_days=1)
    assert {(r.gateway, r.run_number) for r in nearing} == set(RUNS)
    assert {(r.use_by, r.days_left, r.day, r.freeze_down_on) for r in nearing} == {
        (date(2026, 12, 11), 0, 11, date(2026, 12, 13))  # packed 1 Dec, +9 +1 rubber clock
    }
    assert reader.shelf_life(as_of=date(2026, 12, 5), within_days=1) == []
    [due] = {r.freeze_down_due for r in reader.shelf_life(as_of=date(2026, 12, 13))}
    assert due
    fleet = reader.fleet(now=datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    assert {f.gateway for f in fleet} == {"hull-gw1", "grimsby-gw1"}
    assert {s.site for s in reader.sites()} == {"hull", "grimsby"}
    assert len(reader.runs()) == 5


def _config(day: Day, gateway: str) -> Path:
    path = day.folder / f"{gateway}.toml"
    path.write_text(minimal_config_text(day.stores[gateway]))
    return path


@pytest.mark.parametrize("extra", [(), ("--json",), ("--all",), ("--json", "--all")])
def test_report_warehouse_prints_what_the_gateway_prints(day: Day, extra: tuple[str, ...]) -> None:
    gateway_side = lineside("report", "R-100", "-c", str(_config(day, "hull-gw1")), *extra)
    assert gateway_side.returncode == 0, gateway_side.stderr
    from_sqlite = lineside(
        "report", "R-100", "--warehouse", "--sqlite", day.targets["sqlite"],
        "--gateway", "hull-gw1", *extra,
    )  # fmt: skip
    assert from_sqlite.returncode == 0, from_sqlite.stderr
    assert from_sqlite.stdout == gateway_side.stdout
    from_pg = lineside(
        "report", "R-100", "--warehouse", "--postgres-dsn-env", "WAREHOUSE_DSN",
        "--gateway", "hull-gw1", *extra,
        env={**os.environ, "WAREHOUSE_DSN": day.targets["postgres"]},
    )  # fmt: skip
    assert from_pg.returncode == 0, from_pg.stderr
    assert from_pg.stdout == gateway_side.stdout
    ambiguous = lineside("report", "R-100", "--warehouse", "--sqlite", day.targets["sqlite"])
    assert ambiguous.returncode == 1
    assert "2 gateways" in ambiguous.stderr


def test_warehouse_trace_command(day: Day) -> None:
    done = lineside(
        "warehouse", "trace", "--batch", SHARED_BATCH, "--sqlite", day.targets["sqlite"], "--json"
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert set(document) == documented_keys("The trace document")
    assert document["version"] == 1
    assert {r["run"]["run_number"] for r in document["runs"]} == {"R-100", "R-101"}
    text = lineside("warehouse", "trace", "--serial", "30", "--sqlite", day.targets["sqlite"])
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("serial 30: 4 run(s)")
    missing = lineside("warehouse", "trace", "--batch", "NOPE", "--sqlite", day.targets["sqlite"])
    assert missing.returncode == 1
    assert "NOPE" in missing.stderr


def _query(day: Day, kind: str, statement: str) -> list[tuple[object, ...]]:
    if kind == "postgres":
        with psycopg.connect(day.targets["postgres"]) as conn:
            return conn.execute(statement).fetchall()
    db = sqlite3.connect(day.targets["sqlite"])
    try:
        return db.execute(statement).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_the_analytics_views_answer_in_both_databases(day: Day, kind: str) -> None:
    from sync.ingest.migrations.analytics_ddl import VIEWS  # noqa: PLC0415

    for view in VIEWS:
        assert _query(day, kind, f"SELECT * FROM {view}"), view
    report = build_report(day.stores["grimsby-gw1"], "R-100")
    [(packs, kg, emark, verdict, gaps, breaches)] = _query(
        day,
        kind,
        "SELECT packs, kg, emark_batches, emark_verdict, label_gaps, haccp_breaches "
        "FROM run_summary WHERE gateway = 'grimsby-gw1' AND run_number = 'R-100'",
    )
    assert packs == report.packs
    assert kg == pytest.approx(report.kg)
    assert emark == len(report.emark_batches)
    expected_verdict = (
        "fail" if any(b["verdict"] == "fail" for b in report.emark_batches) else "pass"
    )
    assert verdict == expected_verdict
    assert gaps == sum(a["state"] == "raised" for a in report.label_gaps)
    assert breaches == sum(a["state"] == "raised" for a in report.temperature_breaches)
    [(temperature_ok, label_gaps_ok, yield_ok)] = _query(
        day,
        kind,
        "SELECT temperature_ok, label_gaps_ok, yield_ok FROM run_compliance "
        "WHERE gateway = 'grimsby-gw1' AND run_number = 'R-100'",
    )
    assert not temperature_ok
    assert not label_gaps_ok
    assert yield_ok == (report.yield_pct is None or report.yield_pct >= 90)
    shifts = _query(day, kind, "SELECT DISTINCT shift FROM giveaway_by_line_shift")
    assert shifts == [("early",)]  # the day runs 06:00-08:02 UTC


def test_the_reports_and_traces_queries_are_served_by_indexes(day: Day) -> None:
    db = sqlite3.connect(day.targets["sqlite"])
    try:
        for statement in (
            "SELECT * FROM packs WHERE gateway = 'hull-gw1' AND run_number = 'R-100'",
            "SELECT * FROM label_scans WHERE serial = '30'",
            "SELECT * FROM label_scans WHERE gateway = 'hull-gw1' AND run_number = 'R-100'",
            "SELECT * FROM run_batch_codes WHERE batch_code = 'B-SHARED'",
            "SELECT gateway FROM runs WHERE run_number = 'R-100'",
            "SELECT * FROM temperatures WHERE gateway = 'hull-gw1' AND run_number = 'R-100'",
            "SELECT * FROM emark_batches WHERE gateway = 'hull-gw1' AND run_number = 'R-100'",
            "SELECT * FROM alerts WHERE gateway = 'hull-gw1' AND line = 'L1' AND ts_us <= 1",
            "SELECT * FROM device_events WHERE gateway = 'hull-gw1' AND kind = 'pack_product' "
            "AND ts >= '2026-12-01'",
        ):
            plan = " ".join(str(r[-1]) for r in db.execute(f"EXPLAIN QUERY PLAN {statement}"))
            assert "USING INDEX" in plan or "USING PRIMARY KEY" in plan, (statement, plan)
            assert "records" not in plan
    finally:
        db.close()


def test_postgres_serves_the_reports_and_traces_queries_by_index(day: Day) -> None:
    # With sequential scans priced out, a plan that still scans a table would mean no index
    # can serve the query; the planner picks index (or bitmap index) scans on the partitions.
    statements = (
        "SELECT * FROM packs WHERE gateway = 'hull-gw1' AND run_number = 'R-100'",
        "SELECT * FROM label_scans WHERE serial = '30'",
        "SELECT * FROM label_scans WHERE gateway = 'hull-gw1' AND run_number = 'R-100'",
        "SELECT * FROM run_batch_codes WHERE batch_code = 'B-SHARED'",
        "SELECT gateway FROM runs WHERE run_number = 'R-100'",
        "SELECT * FROM temperatures WHERE gateway = 'hull-gw1' AND run_number = 'R-100'",
        "SELECT * FROM emark_batches WHERE gateway = 'hull-gw1' AND run_number = 'R-100'",
        "SELECT * FROM alerts WHERE gateway = 'hull-gw1' AND line = 'L1' AND ts_us <= 1",
    )
    with psycopg.connect(day.targets["postgres"]) as conn:
        conn.execute("SET enable_seqscan = off")
        for statement in statements:
            plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN {statement}"))
            assert "Index" in plan, (statement, plan)
            assert "Seq Scan" not in plan, (statement, plan)
            assert "records" not in plan


def test_a_run_the_gateways_parser_refuses_is_a_read_error(tmp_path: Path) -> None:
    from bench.warehouse_read import migrate  # noqa: PLC0415
    from central.errors import WarehouseReadError  # noqa: PLC0415

    path = tmp_path / "warehouse.db"
    asyncio.run(migrate(None, path))
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO runs (gateway, run_number, site, seq, line, status, source, provisional, "
        "description, shelf_life_adjust, payload) VALUES ('gw', 'R1', 's', 1, 'L1', 'running', "
        "'erp', 0, '', 0, '{\"run_number\": 5}')"
    )
    db.commit()
    db.close()
    with WarehouseReader.open(str(path)) as reader, pytest.raises(WarehouseReadError) as caught:
        reader.run_report("R1")
    assert "R1" in str(caught.value)
