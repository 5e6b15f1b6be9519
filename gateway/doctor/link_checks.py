"""The doctor's checks of the gateway's links: devices, the uplink, the ERP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gateway.config import (
    LinesideConfig,
    ModbusRtuDevice,
    ModbusTcpDevice,
    OpcUaDevice,
    ScannerTcpDevice,
    SqlErp,
)
from gateway.doctor.findings import Finding
from gateway.doctor.probes import serial_port_usable, tcp_probe

BACKLOG_WARN_S = 3600.0
"""An outbox whose oldest record waits longer than this is worth a warning."""

_SQL_PORTS = {"postgresql": 5432, "postgres": 5432, "mssql": 1433, "mysql": 3306}


def device_address(device: Any) -> tuple[str, int] | None:
    """The TCP address a device is reached at, or ``None`` (a local serial port)."""
    if isinstance(device, OpcUaDevice):
        url = urlparse(device.endpoint)
        return url.hostname or "", url.port or 4840
    if isinstance(device, ModbusTcpDevice | ScannerTcpDevice):
        return device.host, device.port
    if isinstance(device, ModbusRtuDevice) and "://" in device.serial_port:
        url = urlparse(device.serial_port)
        if url.hostname and url.port:
            return url.hostname, url.port
    return None


def _where(device: Any) -> str:
    address = device_address(device)
    return f"{address[0]}:{address[1]}" if address else str(getattr(device, "serial_port", "?"))


async def check_devices(
    config: LinesideConfig, snapshot: dict[str, Any] | None, timeout_s: float
) -> list[Finding]:
    """Each enabled device: the gateway's link state, or a TCP connection of our own."""
    findings = []
    seen = {d["id"]: d for d in snapshot["system"]["devices"]} if snapshot else {}
    for index, device in enumerate(config.devices):
        name = f"device {device.id}"
        where = _where(device)
        fix = (
            f"check that {device.id} at {where} is powered, on the line network and "
            f"reachable from this box (devices[{index}] in the config; the unit's "
            "IPAddressAllow= must include its address)"
        )
        if not device.enabled:
            findings.append(Finding(name, "ok", "disabled in the config"))
            continue
        if snapshot is not None:
            live = seen.get(device.id)
            state = live["state"] if live else "unknown"
            error = live["last_error"] if live else ""
            if state == "up":
                findings.append(Finding(name, "ok", f"connected ({where})"))
            elif state == "degraded":
                findings.append(Finding(name, "warn", f"connected, degraded: {error}", fix))
            else:
                findings.append(Finding(name, "fail", f"{state} ({where}): {error}", fix))
            continue
        address = device_address(device)
        if address is None:
            port = Path(getattr(device, "serial_port", ""))
            if await asyncio.to_thread(serial_port_usable, port):
                findings.append(Finding(name, "ok", f"serial port {port} present"))
            else:
                findings.append(
                    Finding(
                        name,
                        "fail",
                        f"serial port {port} missing or not accessible",
                        "plug the adapter in; give the unit DeviceAllow= and "
                        "SupplementaryGroups=dialout (see systemd/lineside-gateway.service)",
                    )
                )
            continue
        error = await tcp_probe(*address, timeout_s)
        if error:
            findings.append(Finding(name, "fail", f"{where} unreachable: {error}", fix))
        else:
            findings.append(Finding(name, "ok", f"{where} accepts connections"))
    return findings


async def check_uplink(
    config: LinesideConfig, snapshot: dict[str, Any] | None, timeout_s: float
) -> list[Finding]:
    """The broker or ingest is reachable and, with the gateway running, connected."""
    sync = config.sync
    if sync.mqtt is not None:
        address = (sync.mqtt.host, sync.mqtt.port)
        section = "[sync.mqtt]"
    elif sync.https is not None:
        url = urlparse(sync.https.url)
        address = (url.hostname or "", url.port or (443 if url.scheme == "https" else 80))
        section = "[sync.https]"
    else:
        return [
            Finding(
                "uplink",
                "warn",
                "no uplink configured: records stay buffered on this box",
                "configure [sync.mqtt] or [sync.https] (see config/example.toml)",
            )
        ]
    where = f"{address[0]}:{address[1]}"
    fix = (
        f"check the address in {section}, the network and firewall between this box and "
        f"{where} (and the unit's IPAddressAllow=), and that the broker/ingest runs"
    )
    findings = []
    error = await tcp_probe(*address, timeout_s)
    if error:
        findings.append(Finding("uplink", "fail", f"{where} unreachable: {error}", fix))
    elif snapshot is None:
        findings.append(Finding("uplink", "ok", f"{where} accepts connections"))
    else:
        uplink = snapshot["system"]["uplink"] or {}
        state, last = uplink.get("state", "unknown"), uplink.get("last_error", "")
        if state == "up" or (section == "[sync.https]" and state == "connecting"):
            findings.append(Finding("uplink", "ok", f"{where}: {state}"))
        elif state == "degraded":
            findings.append(
                Finding(
                    "uplink",
                    "warn",
                    f"{where}: connected, but the warehouse is not acknowledging: {last}",
                    "check that the central `lineside ingest` runs and reaches its database",
                )
            )
        else:
            hint = " (credentials refused?)" if "refused" in last or "401" in last else ""
            findings.append(Finding("uplink", "fail", f"{where}: {state}{hint}: {last}", fix))
    if snapshot is not None:
        outbox = snapshot["system"]["outbox"]
        age = outbox["oldest_age_s"] or 0.0
        if age > BACKLOG_WARN_S:
            findings.append(
                Finding(
                    "outbox",
                    "warn",
                    f"{outbox['depth']} records wait for the warehouse, the oldest for "
                    f"{age / 3600:.1f} h",
                    "get the uplink connected; nothing is lost while the store has room",
                )
            )
        else:
            findings.append(Finding("outbox", "ok", f"{outbox['depth']} records waiting"))
    return findings


async def check_erp(
    config: LinesideConfig, snapshot: dict[str, Any] | None, timeout_s: float
) -> list[Finding]:
    """The ERP answers (the gateway's view) or at least accepts a TCP connection."""
    erp = config.erp
    if erp is None:
        return []
    url = urlparse(erp.url)
    scheme = url.scheme.split("+", 1)[0]
    default = _SQL_PORTS.get(scheme, 0) if isinstance(erp, SqlErp) else None
    port = url.port or default or (443 if scheme == "https" else 80)
    where = f"{url.hostname}:{port}"
    fix = f"check [erp] url and that {where} is reachable from this box"
    if snapshot is not None and snapshot["system"]["erp"] is not None:
        live = snapshot["system"]["erp"]
        staleness = live["staleness_s"]
        if live["state"] == "up" and not live["provisional"]:
            return [Finding("erp", "ok", f"{where}: last good poll {staleness:.0f} s ago")]
        age = "never" if staleness is None else f"{staleness:.0f} s ago"
        return [
            Finding(
                "erp",
                "fail",
                f"{where}: {live['state']}, last good poll {age}; runs are provisional: "
                f"{live['last_error']}",
                fix,
            )
        ]
    error = await tcp_probe(url.hostname or "", port, timeout_s)
    if error:
        return [Finding("erp", "fail", f"{where} unreachable: {error}", fix)]
    return [Finding("erp", "ok", f"{where} accepts connections")]


__all__ = ["BACKLOG_WARN_S", "check_devices", "check_erp", "check_uplink", "device_address"]
