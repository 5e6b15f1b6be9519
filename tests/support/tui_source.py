"""A fixed status source for the TUI: the seam the control socket fills."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tui.client import GatewayUnavailable

STATUS = json.loads((Path(__file__).parent / "data" / "tui_status.json").read_text())
SIZES = [(80, 24), (120, 40)]


class FixedSource:
    """The seam the control socket fills: always the same snapshot (or no gateway)."""

    address = "/run/lineside/control.sock"

    def __init__(self, snapshot: dict[str, Any] | None) -> None:
        self.snapshot = snapshot
        self.commands: list[dict[str, Any]] = []

    async def status(self) -> dict[str, Any]:
        if self.snapshot is None:
            raise GatewayUnavailable("no control socket (the gateway is not running)")
        return self.snapshot

    async def command(self, request: dict[str, Any]) -> dict[str, Any]:
        self.commands.append(request)
        return {"ok": True}

    async def close(self) -> None:
        return None
