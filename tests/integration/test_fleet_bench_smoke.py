"""The fleet benchmark at tiny sizes (``python -m bench --quick --only fleet``), so it cannot rot.

Real simulated gateways (their stores, outboxes and MQTT uplinks), a real mosquitto, real
``lineside ingest`` processes in one share group and a private PostgreSQL database per drain
(127.0.0.1:5432). Nothing here looks at how fast anything was: a smoke run's figures mean
nothing. It checks that every row of the table is produced with sane values, that every
record of every backlog reached the warehouse exactly once and left its outbox, and that
no database is left behind.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
from psycopg import sql

from tests.support.paths import REPO
from tests.support.pg_database import admin
from tests.support.processes import run_in_group

DRAINS = {(4, 1), (4, 2)}
"""(gateways, ingest instances) of the quick sizes."""


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bench_databases() -> set[str]:
    with admin() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'lineside_fleet_bench_%'"
        ).fetchall()
    return {str(row[0]) for row in rows}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], set[str], set[str]]:
    out = tmp_path_factory.mktemp("fleet-bench")
    before = _bench_databases()
    code, stderr = run_in_group(
        [sys.executable, "-m", "bench", "--quick", "--only", "fleet", "--out", str(out)],
        cwd=REPO,
        timeout=100,
    )
    assert code == 0, stderr[-4000:]
    return json.loads((out / "latest.json").read_text()), before, _bench_databases()


@pytest.mark.slow
def test_every_row_is_produced(smoke: tuple[dict[str, Any], set[str], set[str]]) -> None:
    results, _, _ = smoke
    assert set(results["phases"]) == {"fleet"}
    assert "error" not in results["phases"]["fleet"]
    rows = {row["key"]: row for row in results["rows"]}
    for gateways, instances in DRAINS:
        key = f"fleet.gw{gateways}_i{instances}"
        rate = rows[f"{key}_records_per_s"]
        assert _finite(rate["gateway"]), key
        assert rate["gateway"] > 0, key
        assert _finite(rate["bare"]), key
        assert rate["bare"] > 0, key
        assert _finite(rate["ratio"]), key
        cpu = rows[f"{key}_ingest_cpu_us"]
        assert _finite(cpu["gateway"]), key
        assert cpu["gateway"] > 0, key
        assert "PostgreSQL" in cpu["note"], key
        if instances > 1:
            assert _finite(rows[f"{key}_scaling"]["gateway"]), key
        else:
            assert f"{key}_scaling" not in rows
    assert all(row["met"] is None for row in rows.values())  # the issue sets no goal
    notes = results["phases"]["fleet"]["notes"]
    assert sum("limit:" in note for note in notes) == len(DRAINS)


@pytest.mark.slow
def test_every_record_arrives_once(smoke: tuple[dict[str, Any], set[str], set[str]]) -> None:
    results, _, _ = smoke
    counts = results["phases"]["fleet"]["counts"]
    for gateways, instances in DRAINS:
        key = f"gw{gateways}_i{instances}"
        assert counts[f"{key}_backlog"] > 0, key
        assert counts[f"{key}_stored"] == counts[f"{key}_backlog"], key
        assert counts[f"{key}_duplicate_keys"] == 0, key
        assert counts[f"{key}_left_in_outboxes"] == 0, key


@pytest.mark.slow
def test_no_database_is_left_behind(smoke: tuple[dict[str, Any], set[str], set[str]]) -> None:
    _, before, after = smoke
    left = after - before
    for name in left:  # clean up before failing, so one failure does not pile up databases
        with admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    assert not left
