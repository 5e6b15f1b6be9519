"""The benchmark harness at tiny sizes (``python -m bench --quick``), so it cannot rot.

The fleet phase has its own smoke test (test_fleet_bench_smoke.py): it needs PostgreSQL and
the time of several drains, so this one runs the other phases.

Every phase runs against its real peers (asyncua and pymodbus servers, mosquitto, the
central ingest) and the real ``lineside run`` process. Nothing here looks at how fast
anything was: a smoke run's figures mean nothing. It checks that every figure, ratio and
goal of the table is produced, with sane types, and that records are conserved.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest

from tests.support.paths import REPO

PHASES = {"ingest", "modbus", "store", "drain", "latency", "startup", "delivery"}
ROWS_WITH_GOALS = {
    "ingest.readings_per_s",
    "ingest.cpu_us_per_reading",
    "ingest.history_cpu_us_per_reading",
    "ingest.history_rss_mb",
    "store.rows_per_s",
    "drain.mqtt_records_per_s",
    "drain.https_records_per_s",
    "latency.p99_ms",
    "memory.rss_start_mb",
    "memory.rss_end_mb",
    "memory.rss_growth_mb",
    "startup.ready_s",
    "delivery.gateway_cpu_us",
    "delivery.ingest_cpu_us",
    "delivery.sustained_100",
}
ROWS_WITHOUT_GOALS = {
    "modbus.tags_per_s",
    "modbus.cpu_us_per_tag",
    "store.rows_per_s_vs_table_only",
    "drain.mqtt_fixed_records_per_s",
    "drain.https_fixed_records_per_s",
    "latency.p50_ms",
}
ROWS_WITHOUT_BARE = {
    "ingest.history_rss_mb",
    "memory.rss_end_mb",
    "memory.rss_growth_mb",
    "delivery.ingest_cpu_us",
    "delivery.sustained_100",
}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            ",".join(sorted(PHASES)),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads((out / "latest.json").read_text())
    return results, (out / "latest.md").read_text()


@pytest.mark.slow
def test_every_figure_ratio_and_goal_is_produced(smoke: tuple[dict[str, Any], str]) -> None:
    results, markdown = smoke
    assert set(results["phases"]) == PHASES
    assert all("error" not in phase for phase in results["phases"].values())
    rows = {row["key"]: row for row in results["rows"]}
    assert set(rows) == ROWS_WITH_GOALS | ROWS_WITHOUT_GOALS
    for key, row in rows.items():
        assert isinstance(row["figure"], str), key
        assert row["figure"], key
        assert _finite(row["gateway"]), key
        if key in ROWS_WITHOUT_BARE:
            assert row["bare"] is None, key
            assert row["ratio"] is None, key
        else:
            assert _finite(row["bare"]), key
            assert row["bare"] > 0, key
            assert _finite(row["ratio"]), key
        if key in ROWS_WITH_GOALS:
            assert isinstance(row["goal"], str), key
            assert row["goal"], key
            assert isinstance(row["met"], bool), key
        else:
            assert row["met"] is None, key
    assert set(results["goals"]) == ROWS_WITH_GOALS
    assert all(isinstance(met, bool) for met in results["goals"].values())
    machine = results["machine"]
    assert machine["cores"] >= 1
    assert machine["python"]
    assert machine["libraries"]["asyncua"]
    assert "| Figure | Gateway | Bare library | Ratio | Goal | Met |" in markdown
    assert all(row["figure"] in markdown for row in rows.values())


@pytest.mark.slow
def test_records_are_conserved(smoke: tuple[dict[str, Any], str]) -> None:
    results, _ = smoke
    phases = results["phases"]
    ingest = phases["ingest"]["counts"]
    assert ingest["readings_stored"] > 0
    assert ingest["readings_stored"] == ingest["readings_queued"] == ingest["readings_joined"]
    assert ingest["rejected"] == 0
    history = phases["ingest"]["gateway"]
    assert history["history_runs"] > 0
    assert history["history_readings_stored"] > 0
    assert history["history_readings_joined"] == history["history_readings_stored"]
    modbus = phases["modbus"]["counts"]
    assert modbus["readings_stored"] > 0
    assert modbus["readings_stored"] == modbus["readings_queued"]
    assert modbus["rejected"] == 0
    store = phases["store"]["counts"]
    assert store["rows_submitted"] == store["rows_stored"] == store["rows_queued"]
    drain = phases["drain"]["counts"]
    for uplink in ("mqtt", "https", "mqtt_fixed", "https_fixed"):
        assert drain[f"{uplink}_in_warehouse"] == drain["backlog"]
        assert drain[f"{uplink}_conflicts"] == 0
    latency = phases["latency"]["counts"]
    assert latency["packs_sent"] > 0
    assert latency["packs_stored"] == latency["packs_timed"] == latency["packs_sent"]
    assert latency["below_t2_alert_updates"] >= latency["packs_sent"]
    delivery = phases["delivery"]["counts"]
    assert delivery["readings_stored"] > 0
    assert delivery["warehouse_inserted"] > 0
    assert delivery["warehouse_conflicts"] == 0
