"""A fixed status source for the TUI: the seam the control socket fills."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

from gateway.api import GatewayUnavailable
from rules.actions import DEFAULT_ACTIONS
from rules.alarm_rates import Raise, alarm_load
from rules.alert_refs import alert_ref

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


def _load(raised_us: list[int], now_us: int) -> dict[str, Any]:
    """Alarm load figures (as :func:`rules.alarm_rates.alarm_load` gives them) for raises at
    ``raised_us`` within the last 24 hours."""
    raises = [Raise(ts, "L1", "device_down") for ts in raised_us]
    start = now_us - 24 * 3600 * 1_000_000
    report = alarm_load(raises, start_us=start, end_us=now_us + 1, lines=["L1"])
    return report.total.as_dict()


def _with_load(status: dict[str, Any], raised_us: list[int]) -> None:
    """Set the gateway's and L1's alarm load from the recorded raises plus ``raised_us``."""
    now_us = status["gateway"]["now_us"]
    recorded = [a["raised_us"] for a in status["alerts"]["active"] + status["alerts"]["recent"]]
    load = _load(sorted({*recorded, *raised_us}), now_us)
    status["alerts"]["load"] = load
    status["lines"][0]["alarm_load"] = dict(load)


def alert_flood(status: dict[str, Any], count: int = 240) -> dict[str, Any]:
    """The recorded status with ``count`` more active alerts (a device flapping, say): one
    raised every 7 s, so the last ten minutes are in flood."""
    status = copy.deepcopy(status)
    template = status["alerts"]["active"][0]
    now_us = status["gateway"]["now_us"]
    severities = ["critical", "major", "warning"]
    action = DEFAULT_ACTIONS["device_down"]
    raised = []
    for n in range(count):
        alert = dict(template)
        alert_id = f"device_down:tt-modbus:{n}"
        raised_us = now_us - (n + 1) * 7_000_000
        alert.update(
            id=alert_id,
            ref=alert_ref(alert_id),
            rule="device_down",
            subject="tt-modbus",
            severity=severities[n % 3],
            acknowledged=n % 4 == 0,
            state="active-acknowledged" if n % 4 == 0 else "active-unacknowledged",
            raised_us=raised_us,
            first_us=raised_us,
            last_us=raised_us,
            occurrences=1,
            value=None,
            action=action,
            message=f"device tt-modbus link down ({n + 1}. time today): no valid reply in 3 s"
            f". Action: {action}",
        )
        raised.append(raised_us)
        status["alerts"]["active"].append(alert)
        status["lines"][0]["active_alerts"].append(alert)
    _with_load(status, raised)
    return status


CHATTER = [
    # (subject, severity, occurrences, first seen this long ago, last seen, acknowledged)
    ("tt-modbus", "major", 600, 3 * 3600, 4, False),
    ("cw1-modbus", "major", 37, 50 * 60, 20, False),
    ("probes-opcua", "critical", 12, 9 * 60, 65, False),
    ("scanner1", "warning", 2, 7 * 60, 300, True),
]


def chattering(status: dict[str, Any]) -> dict[str, Any]:
    """The recorded status with devices dropping their links again and again: one alert per
    device, counting the drops (``×600``), and more than ten raised in the last ten
    minutes, so the line and the gateway are in flood."""
    status = copy.deepcopy(status)
    template = status["alerts"]["active"][0]
    now_us = status["gateway"]["now_us"]
    action = DEFAULT_ACTIONS["device_down"]
    for subject, severity, count, first_s, last_s, acked in CHATTER:
        alert = dict(template)
        alert_id = f"device_down:{subject}:{now_us - first_s * 1_000_000}"
        alert.update(
            id=alert_id,
            ref=alert_ref(alert_id),
            rule="device_down",
            subject=subject,
            severity=severity,
            acknowledged=acked,
            acknowledged_by="Ann Operator" if acked else None,
            state="active-acknowledged" if acked else "active-unacknowledged",
            raised_us=now_us - first_s * 1_000_000,
            first_us=now_us - first_s * 1_000_000,
            last_us=now_us - last_s * 1_000_000,
            occurrences=count,
            value=None,
            action=action,
            message=f"device {subject} link down: no valid reply in 3 s. Action: {action}",
        )
        status["alerts"]["active"].append(alert)
        status["lines"][0]["active_alerts"].append(alert)
    # Each alert above came back after it had cleared: 14 raises in the last ten minutes.
    _with_load(status, [now_us - n * 40_000_000 for n in range(1, 15)])
    return status
