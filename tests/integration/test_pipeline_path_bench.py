"""``python -m bench.pipeline_path`` at a tiny size, so the tool cannot rot.

It drives the real pipeline, rules and SQLite store. Nothing here looks at how fast anything
was: it checks that the figures are produced and that every reading was stored and queued
for sync exactly once.
"""

from __future__ import annotations

from tests.support.bench_tools import assert_figures, run_tool


def test_the_pipeline_path_bench_stores_every_reading_and_reports_its_figures() -> None:
    result = run_tool("bench.pipeline_path", "--rows", "3000")
    assert (result["rows"], result["stored"], result["queued_for_sync"]) == (3000, 3000, 3000)
    assert_figures(result, "queue_cpu_us", "process_cpu_us")
