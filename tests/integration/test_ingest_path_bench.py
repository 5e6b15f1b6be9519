"""``python -m bench.ingest_path`` at a tiny size, so the tool cannot rot.

It drives the real store, outbox, wire encoding and SQLite warehouse. Nothing here looks at
how fast anything was: it checks that the figures are produced and that every record the
gateway cut was stored in the warehouse exactly once.
"""

from __future__ import annotations

from tests.support.bench_tools import assert_figures, run_tool


def test_the_ingest_path_bench_stores_every_record_and_reports_its_figures() -> None:
    result = run_tool("bench.ingest_path", "--records", "3000")
    assert (result["records"], result["stored"]) == (3000, 3000)
    assert result["batches"] >= 3000 // 500
    assert_figures(result, "gateway_cut_cpu_us", "decode_cpu_us", "commit_cpu_us")
