"""Pieces of the status snapshot built from one object each: an alert, a production run, a
line's label monitors, the probes' configured places and intervals. No state, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from adapters.base import DeviceAdapter
from gateway.config import (
    LinesideConfig,
    ModbusRtuDevice,
    ModbusTcpDevice,
    OpcUaDevice,
    ProbeRules,
)
from gateway.core.runs import ProductionRun
from rules.alerts import Alert
from rules.haccp import ProbeMonitor
from rules.labels import LabelSequenceMonitor
from rules.shelf_life import expected_use_by


def num(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def alert_json(alert: Alert, ref: str = "", action: str = "") -> dict[str, Any]:
    """One alert as the status snapshot and the ``alerts`` control request give it."""
    return {
        "id": alert.id,
        "ref": ref,
        "rule": alert.rule,
        "subject": alert.subject,
        "line": alert.line,
        "severity": str(alert.severity),
        "state": str(alert.state),
        "active": alert.active,
        "acknowledged": alert.acknowledged,
        "acknowledged_by": alert.acknowledged_by,
        "comment": alert.comment,
        "raised_us": alert.raised_us,
        "cleared_us": alert.cleared_us,
        "shelved_until_us": alert.shelved_until_us,
        "message": alert.message,
        "occurrences": alert.occurrences,
        "first_us": alert.first_us,
        "last_us": alert.last_us,
        "value": alert.value,
        "action": action,
    }


def run_json(run: ProductionRun, *, base_days: int, provisional: bool) -> dict[str, Any]:
    """A production run as the snapshot gives it, with its expected use-by date."""
    use_by = None
    if run.pack_date is not None:
        try:
            use_by = expected_use_by(run.pack_date, run.shelf_life_adjust, base_days).isoformat()
        except ValueError:
            use_by = None  # an adjustment the rules refuse; the compliance alert says why
    return {
        "run_number": run.run_number,
        "status": str(run.status),
        "description": run.description,
        "batch_codes": list(run.batch_codes),
        "species": run.species,
        "pack_date": run.pack_date.isoformat() if run.pack_date else None,
        "use_by": use_by,
        "shelf_life_adjust": run.shelf_life_adjust,
        "products": [
            {
                "plu": p.plu,
                "description": p.description,
                "nominal_g": num(p.nominal_g),
                "catch_weight": p.catch_weight,
                "tier": str(p.tier) if p.tier is not None else None,
            }
            for p in run.products
        ],
        "provisional": provisional,
    }


def labels_json(monitors: Sequence[LabelSequenceMonitor]) -> dict[str, Any]:
    """The label sequence of one line (its scanners' monitors for the current run)."""
    if not monitors:
        return {"state": "no scans", "last": None, "missing": [], "duplicates": 0, "read": 0}
    # A gap across a long outage can hold many thousands of numbers: the newest 20 of
    # each monitor are enough to show the newest 20 of the line.
    missing = sorted({n for m in monitors for n in m.newest_missing(20)})
    missing_count = sum(m.missing_count for m in monitors)
    duplicates = sum(m.duplicates for m in monitors)
    last = max((m.last_number for m in monitors if m.last_number is not None), default=None)
    state = "gap" if missing_count else ("duplicate" if duplicates else "ok")
    return {
        "state": state,
        "last": last,
        "missing": missing[-20:],
        "missing_count": missing_count,
        "duplicates": duplicates,
        "read": sum(m.read for m in monitors),
    }


def probe_json(
    rules: ProbeRules,
    monitor: ProbeMonitor,
    tag: tuple[str, float | None],
    link: str,
    now_us: int,
) -> dict[str, Any]:
    """One probe: its last valid reading and how old it is, its limits and its state.

    ``tag`` is where the probe sits and how often a reading is expected (:func:`probe_tags`);
    ``link`` the state of its device's link.
    """
    last = monitor.last_valid
    breach = sorted(monitor.in_breach)
    faults = sorted(str(f) for f in monitor.faults)
    state = "fault" if faults else ("high" if "upper" in breach else "ok")
    if "lower" in breach:
        state = "low"
    if last is None and not faults:
        state = "waiting"
    location, interval_s = tag
    return {
        "device": rules.device,
        "probe": rules.probe,
        "location": location,
        "interval_s": interval_s,
        "link": link,
        "celsius": num(last[1]) if last else None,
        "age_s": (now_us - last[0]) / 1e6 if last else None,
        "upper_c": rules.upper_c,
        "lower_c": rules.lower_c,
        "state": state,
        "faults": faults,
    }


def devices_json(config: LinesideConfig, adapters: Sequence[DeviceAdapter]) -> list[dict[str, Any]]:
    """Every configured device: the running adapters' links, then the disabled ones."""
    devices = []
    configured = {d.id: d for d in config.devices}
    for adapter in adapters:
        device = configured.get(adapter.device_id)
        devices.append(
            {
                "id": adapter.device_id,
                "kind": device.kind if device else "",
                "role": device.role if device else "",
                "line": device.line if device else "",
                "state": str(adapter.state),
                "last_error": str(getattr(adapter, "last_error", "")),
            }
        )
    for device in config.devices:
        if not device.enabled:
            devices.append(
                {
                    "id": device.id,
                    "kind": device.kind,
                    "role": device.role,
                    "line": device.line,
                    "state": "disabled",
                    "last_error": "",
                }
            )
    return devices


def probe_tags(config: LinesideConfig) -> dict[tuple[str, str], tuple[str, float | None]]:
    """``(device, tag)`` -> where the probe sits and how often a reading is expected.

    The interval is the poll period of a polled tag. A subscribed OPC UA tag has none: the
    server sends a value only when it changes, and while the subscription lives (the device's
    link is up) an unchanged value is the current one, so only the link says it is stale.
    """
    out: dict[tuple[str, str], tuple[str, float | None]] = {}
    for device in config.devices:
        if isinstance(device, OpcUaDevice):
            for group in device.groups:
                interval = group.poll_interval_ms / 1000 if group.mode == "poll" else None
                for tag in group.tags:
                    out[device.id, tag.name] = (tag.location, interval)
        elif isinstance(device, ModbusTcpDevice | ModbusRtuDevice):
            for modbus_tag in device.tags:
                out[device.id, modbus_tag.name] = (
                    modbus_tag.location,
                    device.poll_interval_ms / 1000,
                )
    return out


_PROBE_ORDER = {"fault": 3, "high": 2, "low": 2, "ok": 1, "waiting": 0}


def probe_severity(probe: dict[str, Any]) -> tuple[int, float]:
    """Worst probe first: faults, then breaches, then the warmest."""
    celsius = probe["celsius"]
    return (_PROBE_ORDER.get(probe["state"], 0), celsius if celsius is not None else -1e9)


__all__ = [
    "alert_json",
    "devices_json",
    "labels_json",
    "num",
    "probe_json",
    "probe_severity",
    "probe_tags",
    "run_json",
]
