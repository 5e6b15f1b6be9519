"""Where the suite's ``sitecustomize`` lives, and how to apply it to this process."""

from __future__ import annotations

from pathlib import Path

FOLDER = str(Path(__file__).resolve().parent)


def apply() -> None:
    """Apply ``sitecustomize`` here (the test process started before PYTHONPATH named it)."""
    from tests.support.faketime_compat import sitecustomize  # noqa: F401, PLC0415
