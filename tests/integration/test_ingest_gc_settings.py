"""The ingest's collector settings: applied in a process of its own (never in the test's)."""

from __future__ import annotations

import json
import subprocess
import sys

from sync.ingest.gc_settings import FIRST_THRESHOLD

PROBE = """
import gc, json
before = gc.get_threshold()
from sync.ingest.gc_settings import settle_collector
settle_collector()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_start_up_is_frozen_and_the_first_threshold_widened() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(done.stdout)
    assert seen["after"] == [FIRST_THRESHOLD, seen["before"][1], seen["before"][2]]
    assert seen["frozen"] > 1000  # the modules, classes and functions imported so far
