"""``python -m bench.pipeline_path`` at a tiny size, so the tool cannot rot.

It drives the real pipeline, rules and SQLite store. Nothing here looks at how fast anything
was: it checks that the figures are produced and that every reading was stored and queued
for sync exactly once.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

from tests.support.paths import REPO


def test_the_pipeline_path_bench_stores_every_reading_and_reports_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.pipeline_path", "--rows", "3000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    assert (result["rows"], result["stored"], result["queued_for_sync"]) == (3000, 3000, 3000)
    for figure in ("queue_cpu_us", "process_cpu_us"):
        assert isinstance(result[figure], float)
        assert math.isfinite(result[figure])
        assert result[figure] > 0
