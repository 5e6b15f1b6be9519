"""The fleet benchmark's derived figures (bench/fleet_report.py) from drains given here: CPU per
record, shares of a core, the scaling factor, the bare ratio, which resource ran out first,
disk per million records, and the table ``make bench`` and fleet-latest.md show."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest

from bench import fleet_report, report
from bench.fleet_scale import as_phase

CORES = 2


def drain(
    gateways: int,
    instances: int,
    *,
    rate: float,
    ingest_s: float,
    postgres_s: float = 1.0,
    machine_s: float = 10.0,
    wall_s: float = 10.0,
    stored: int = 100_000,
) -> dict[str, Any]:
    return {
        "gateways": gateways,
        "instances": instances,
        "backlog": stored,
        "stored": stored,
        "duplicate_keys": 0,
        "left_in_outboxes": 0,
        "acknowledged": stored,
        "batches_resent": 0,
        "records_per_s": rate,
        "commit_span_s": wall_s - 1,
        "wall_s": wall_s,
        "transactions": 200,
        "wal_bytes": 50 * 2**20,
        "bytes_on_disk": stored * 500,
        "cpu_s": {
            "ingest": ingest_s,
            "postgres_backends": postgres_s,
            "postgres_server": 0.5,
            "broker": 0.5,
            "generator": 2.0,
            "machine_busy": machine_s,
            "machine_total": 2 * wall_s,
        },
        "instance_cpu_s": [ingest_s / instances] * instances,
        "instance_batches": [200 // instances] * instances,
        "instance_duplicates": [0] * instances,
        "pool_size": 2,
    }


def analysed(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(os, "cpu_count", lambda: CORES)
    first = drain(20, 1, rate=10_000, ingest_s=9.5, machine_s=14.0)
    first["bare"] = [
        {"rows": 100_000, "batches": 200, "seconds": 2.0, "connections": 2},
        {"rows": 100_000, "batches": 200, "seconds": 1.0, "connections": 4},
    ]
    results = {
        "plan": {"records": 100_000, "batch_records": 500, "window": 4, "pool_size": 2},
        "postgres": {"server_version": "15", "synchronous_commit": "on"},
        "drains": [
            first,
            drain(20, 2, rate=15_000, ingest_s=12.0, machine_s=18.0),
            drain(200, 1, rate=5_000, ingest_s=3.0, machine_s=6.0, stored=200_000),
        ],
    }
    return fleet_report.analyse(results)


def test_per_record_and_per_core_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    first = analysed(monkeypatch)["drains"][0]
    assert first["cpu_us_per_record"]["ingest"] == pytest.approx(95.0)
    assert first["cpu_us_per_record"]["postgres_backends"] == pytest.approx(10.0)
    assert first["cpu_pct"]["ingest"] == pytest.approx(95.0)
    assert first["cpu_pct"]["machine"] == pytest.approx(140.0)
    assert first["instance_cpu_pct"] == [pytest.approx(95.0)]
    assert first["commits_per_s"] == pytest.approx(200 / 9)


def test_scaling_and_bare_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    one, two, other = analysed(monkeypatch)["drains"]
    assert one["scaling"] == pytest.approx(1.0)
    assert two["scaling"] == pytest.approx(1.5)
    assert other["scaling"] == pytest.approx(1.0)  # against its own gateway count's 1
    assert one["bare_records_per_s"] == pytest.approx(50_000)
    assert two["bare_records_per_s"] == pytest.approx(100_000)
    assert one["ratio_to_bare"] == pytest.approx(0.2)
    assert math.isnan(other["bare_records_per_s"])  # no bare run for 200 gateways here


def test_the_limit_named(monkeypatch: pytest.MonkeyPatch) -> None:
    one, two, other = analysed(monkeypatch)["drains"]
    assert one["limit"].startswith("one ingest instance's CPU (95 %")
    assert two["limit"].startswith("the machine's CPU (90% of 2 cores busy")
    assert "ingest instances" in two["limit"]
    assert other["limit"].startswith("neither CPU nor a single process")


def test_disk_per_million_from_the_largest_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    assert analysed(monkeypatch)["bytes_per_million_records"] == pytest.approx(500e6)


def test_table_and_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    results = analysed(monkeypatch)
    text = fleet_report.markdown(results)
    assert "| Gateways | Ingest instances | Records/s (warehouse) |" in text
    assert "| 20 | 2 | 15,000 | 1.50× | 100,000 | 0.15× |" in text
    phase = as_phase(results).as_dict()
    rows = {r.key: r for r in report.rows({"phases": {"fleet": phase}})}
    assert rows["fleet.gw20_i2_records_per_s"].ratio == pytest.approx(0.15)
    assert rows["fleet.gw20_i2_scaling"].gateway == pytest.approx(1.5)
    assert "fleet.gw20_i1_scaling" not in rows
    assert rows["fleet.gw200_i1_ingest_cpu_us"].gateway == pytest.approx(15.0)
