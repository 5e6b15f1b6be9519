"""The warehouse scale benchmark at a tiny size (``python -m bench.warehouse_scale --packs
20000``), so it cannot rot.

It loads a private PostgreSQL database (127.0.0.1:5432) through the real migrations and
commit path, times the real reader and bare psycopg, and runs the EXPLAIN checks. Nothing
here looks at how fast anything was: a smoke run's figures mean nothing. It checks that
every figure is produced with sane values, that every answer matched what was loaded, that
each statement the reader sent was explained and checked, and that the database is gone
afterwards.
"""

from __future__ import annotations

import json
import math
import secrets
import sys
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.support.paths import REPO
from tests.support.processes import run_in_group

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
OPERATIONS = {"run_report", "trace_batch", "trace_serial"}
PACKS, REPS = 20_000, 20


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _database_exists(name: str) -> bool:
    with psycopg.connect(PG, autocommit=True) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    out = tmp_path_factory.mktemp("warehouse-scale")
    database = f"lineside_scale_smoke_{secrets.token_hex(4)}"
    command = [
        sys.executable, "-m", "bench.warehouse_scale", "--packs", str(PACKS), "--days", "40",
        "--reps", str(REPS), "--warmup", "2", "--database", database, "--out", str(out),
    ]  # fmt: skip
    try:
        code, stderr = run_in_group(command, cwd=REPO, timeout=100)
    finally:
        if _database_exists(database):
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
            pytest.fail(f"the benchmark left its database {database} behind")
    assert code == 0, stderr[-4000:]
    results = json.loads((out / "warehouse-latest.json").read_text())
    return results, (out / "warehouse-latest.md").read_text(), database


@pytest.mark.slow
def test_every_figure_is_produced_and_sane(smoke: tuple[dict[str, Any], str, str]) -> None:
    results, markdown, _ = smoke
    assert results["plan"]["packs"] == PACKS
    assert results["plan"]["lines"] == 8
    assert len(results["plan"]["months"]) >= 2
    assert results["reused"] is False
    assert results["load_total_s"] > 0
    assert all(_finite(v) and v > 0 for v in results["load_s"].values())
    tables = results["tables"]
    assert tables["packs"]["rows"] == PACKS
    assert tables["label_scans"]["rows"] == PACKS
    assert tables["temperatures"]["rows"] == results["plan"]["temperatures"] > 0
    assert tables["runs"]["rows"] == results["plan"]["runs"]
    assert tables["device_events"]["rows"] > tables["runs"]["rows"]
    assert tables["emark_batches"]["rows"] > 0
    assert tables["alerts"]["rows"] == 2 * tables["alerts_current"]["rows"] > 0
    # Run versions came through the commit path: a records row each, and nothing else there.
    assert tables["records"]["rows"] == tables["run_versions"]["rows"] == 2 * tables["runs"]["rows"]
    assert set(results["operations"]) == OPERATIONS
    for name, op in results["operations"].items():
        assert len(op["items"]) == REPS, name
        assert len(set(op["items"])) == REPS, name  # different runs, batches, serials
        for side in ("first_ms", "warm_ms", "bare_ms"):
            figures = op[side]
            assert all(_finite(figures[k]) and figures[k] > 0 for k in figures), (name, side)
            assert figures["min"] <= figures["median"] <= figures["p95"] <= figures["max"]
        assert _finite(op["ratio"]), name
        assert op["ratio"] > 0, name
        assert isinstance(op["met"], bool), name
        assert op["statements"] >= 1, name
        assert op["bare_rows_median"] >= 1, name
        assert op["correct"] is True, (name, op["found"], op["wanted"])
        assert all(found > 0 for found in op["found"]), name
    assert set(results["goals"]) == OPERATIONS
    assert "| Operation | First call median |" in markdown
    assert "Load time" in markdown


@pytest.mark.slow
def test_every_statement_is_explained_and_checked(smoke: tuple[dict[str, Any], str, str]) -> None:
    results, markdown, _ = smoke
    for name, op in results["operations"].items():
        # Every statement of the first item (a run's report may send more than another
        # run's: one more per chunk of the alerts it copies).
        assert 1 <= len(op["explain"]) <= op["statements"], name
        for explained in op["explain"]:
            assert explained["sql"].startswith("SELECT"), name
            assert explained["plan_text"], name
            assert explained["scans"], name  # every statement reads a relation
            assert _finite(explained["execution_ms"]), name
            # The reader never reads the synced payloads.
            assert not any("records" in scan.split() for scan in explained["scans"]), name
            assert all("on records" not in f for f in explained["findings"]), name
        assert op["explain_ok"] == (not op["explain_findings"]), name
    reports = results["operations"]["run_report"]["explain"]
    assert any("packs_" in scan for e in reports for scan in e["scans"])
    assert "EXPLAIN (ANALYZE, BUFFERS)" in markdown


@pytest.mark.slow
def test_the_database_is_dropped_afterwards(smoke: tuple[dict[str, Any], str, str]) -> None:
    _, _, database = smoke
    assert not _database_exists(database)
