"""Running a ``bench`` tool the way a developer does, for the tests that keep it from rotting."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

from tests.support.paths import REPO


def run_tool(module: str, *args: str) -> dict[str, Any]:
    """``python -m <module> <args>`` from the repository; the JSON object it prints."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_figures(result: dict[str, Any], *names: str) -> None:
    """Each named figure is there, a finite positive number (how large is not looked at)."""
    for name in names:
        assert isinstance(result[name], float), name
        assert math.isfinite(result[name]), name
        assert result[name] > 0, name
