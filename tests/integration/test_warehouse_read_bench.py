"""bench/warehouse_read.py at a tiny size, so it cannot rot: the warehouse it fills is read
back right (a run's report has its packs, a batch traces to them). Nothing here looks at
how fast anything was."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.warehouse_read import migrate, run_bench


def test_the_read_bench_fills_and_reads_a_warehouse(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.db"
    asyncio.run(migrate(None, path))
    result = run_bench(str(path), postgres=False, packs=600, per_run=200, repeat=1)
    assert result["database"] == "sqlite"
    assert result["packs"] == 600
    assert result["packs_per_run"] == 200
    for key in ("fill_s", "run_report_ms", "trace_batch_ms"):
        assert isinstance(result[key], float), key
