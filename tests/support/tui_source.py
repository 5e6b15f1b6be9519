"""A fixed status source for the TUI: the seam the control socket fills."""

from __future__ import annotations

import asyncio
import copy
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


class SilentSource(FixedSource):
    """Answers once, then never again: a gateway that hangs (stopped, deadlocked)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        super().__init__(snapshot)
        self.answered = 0

    async def status(self) -> dict[str, Any]:
        if self.answered:
            await asyncio.Event().wait()  # no answer, ever (cancelled when the app quits)
        self.answered += 1
        return await super().status()


class SetClock:
    """A steady clock that moves only when a test moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def device_down(status: dict[str, Any]) -> dict[str, Any]:
    """The recorded status with the probes' device down for 95 s: its readings are old."""
    status = copy.deepcopy(status)
    device = next(d for d in status["system"]["devices"] if d["id"] == "probes-opcua")
    device["state"] = "down"
    device["last_error"] = "device probes-opcua: connect: connection refused"
    line = status["lines"][0]
    for probe in [*line["probes"], line["worst_probe"]]:
        probe["link"] = "down"
        probe["age_s"] = 95.0
    return status


def alert_flood(status: dict[str, Any], count: int = 240) -> dict[str, Any]:
    """The recorded status with ``count`` more active alerts (a device flapping, say)."""
    status = copy.deepcopy(status)
    template = status["alerts"]["active"][0]
    now_us = status["gateway"]["now_us"]
    severities = ["critical", "major", "warning"]
    for n in range(count):
        alert = dict(template)
        alert.update(
            id=f"device_down:tt-modbus:{n}",
            rule="device_down",
            subject="tt-modbus",
            severity=severities[n % 3],
            acknowledged=n % 4 == 0,
            state="active-acknowledged" if n % 4 == 0 else "active-unacknowledged",
            raised_us=now_us - (n + 1) * 7_000_000,
            message=f"device tt-modbus link down ({n + 1}. time today): no valid reply in 3 s",
        )
        status["alerts"]["active"].append(alert)
        status["lines"][0]["active_alerts"].append(alert)
    return status
