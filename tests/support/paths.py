"""Where the checkout is, derived from this file (never from the working directory)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
