"""The central team's read-only HTTP API (docs/warehouse-api.md): ``create_app``."""

from __future__ import annotations

from central.api.app import create_app
from central.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
