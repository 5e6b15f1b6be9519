"""Where the checkout is, derived from this file (never from the working directory)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def repo_pythonpath() -> str:
    """A PYTHONPATH for child processes: this checkout first, then what the suite set (the
    faketime shim, ``tests/support/faketime_compat``)."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
