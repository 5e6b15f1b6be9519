"""``lineside doctor``: check a live installation and say what to fix.

Each check gives one :class:`Finding` (``ok``, ``warn`` or ``fail``) with, when it is not
ok, the fix in words an engineer at the line can act on:

* **config**: the file loads (strict validation, secrets resolved). Run from a shell, the
  ``{ credential = "NAME" }`` secrets are read from ``/etc/credstore`` (where the unit's
  ``LoadCredential=NAME`` finds them) unless ``$CREDENTIALS_DIRECTORY`` or
  ``--credentials`` says otherwise.
* **store**: the database exists, passes ``PRAGMA quick_check`` on a read-only connection
  (safe beside the running gateway: WAL readers never block the writer), is within its
  size budget, leaves ``headroom_mb`` free on its volume; quarantined files are reported.
* **gateway**: the service answers on its control socket (the live status).
* **devices**: with the gateway running, its own view of each link (state and last
  error). Only when it is not running does the doctor open a TCP connection to each
  device itself: many scanners and Modbus devices accept a single client, and a second
  one would disturb the gateway's.
* **uplink** and **erp**: the gateway's view, and a TCP connection to the broker, the
  ingest or the ERP (these accept many clients). The outbox backlog is reported too.
* **clock**: the kernel's NTP status (``adjtimex``): records are timestamped on this box,
  so an unsynchronised clock puts wrong times in the warehouse and the packer's records.
* **health**: ``/readyz`` answers 200, when ``[health]`` is configured.

The exit status is 0 when nothing failed (warnings allowed), 1 when a check failed and 3
when the config does not load.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import socket
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import httpx

from gateway.config import (
    HealthSection,
    LinesideConfig,
    ModbusRtuDevice,
    ModbusTcpDevice,
    OpcUaDevice,
    ScannerTcpDevice,
    SqlErp,
    load_config,
)
from gateway.config_coverage import coverage_warnings
from gateway.errors import ConfigError

CREDSTORE = Path("/etc/credstore")
"""Where systemd's ``LoadCredential=NAME`` (no path) finds a credential on disk."""

TIME_ERROR = 5
"""``adjtimex(2)``'s answer when the kernel clock is not synchronised (STA_UNSYNC)."""

STATUS_LIMIT_BYTES = 8 * 2**20
"""The status answer on the control socket can be long (recent packs, alerts)."""

BACKLOG_WARN_S = 3600.0
"""An outbox whose oldest record waits longer than this is worth a warning."""

_SQL_PORTS = {"postgresql": 5432, "postgres": 5432, "mssql": 1433, "mysql": 3306}

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check."""

    check: str
    status: Status
    message: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding, and the exit status they add up to."""

    findings: list[Finding]
    config_loaded: bool

    @property
    def exit_code(self) -> int:
        """0 all good (warnings allowed), 1 something failed, 3 the config does not load."""
        if not self.config_loaded:
            return 3
        return 1 if any(f.status == "fail" for f in self.findings) else 0

    def format(self) -> str:
        """The report as lines for a terminal."""
        lines = []
        for finding in self.findings:
            label = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}[finding.status]
            first, *rest = finding.message.splitlines() or [""]
            lines.append(f"{label:<5} {finding.check:<14} {first}")
            lines.extend(f"{'':<20} {line}" for line in rest)
            if finding.fix:
                lines.append(f"{'':<20} fix: {finding.fix}")
        failed = sum(f.status == "fail" for f in self.findings)
        warned = sum(f.status == "warn" for f in self.findings)
        if failed or warned:
            lines.append(f"{failed} failed, {warned} warning(s): see the fixes above")
        else:
            lines.append("everything checked is fine")
        return "\n".join(lines)


async def diagnose(
    config_path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    credentials: Path | None = None,
    timeout_s: float = 3.0,
) -> Report:
    """Run every check against the installation that ``config_path`` describes."""
    config, finding = load_for_doctor(config_path, environ=environ, credentials=credentials)
    if config is None:
        return Report([finding], config_loaded=False)
    findings = [finding]
    # What the rules will not judge (docs/configuration.md, "Coverage warnings").
    findings.extend(
        Finding("coverage", "warn", f"{w.location}: {w.message}") for w in coverage_warnings(config)
    )
    snapshot, reason = await gateway_status(config.control_socket_path, timeout_s)
    findings.extend(await asyncio.to_thread(check_store, config, snapshot))
    if snapshot is None:
        findings.append(
            Finding(
                "gateway",
                "fail",
                f"no gateway answers on {config.control_socket_path}: {reason}",
                "start it: `systemctl start lineside-gateway`; why it stopped: "
                "`journalctl -u lineside-gateway -n 50`",
            )
        )
    else:
        gateway = snapshot["gateway"]
        findings.append(
            Finding(
                "gateway",
                "ok",
                f"running: {gateway['id']} at {gateway['site']}, pid {gateway['pid']}, "
                f"version {gateway['software']}",
            )
        )
    findings.extend(await check_devices(config, snapshot, timeout_s))
    findings.extend(await check_uplink(config, snapshot, timeout_s))
    findings.extend(await check_erp(config, snapshot, timeout_s))
    findings.append(check_clock())
    if config.health is not None and snapshot is not None:
        findings.append(await check_health(config.health, timeout_s))
    return Report(findings, config_loaded=True)


# ---------------------------------------------------------------------------- config


def load_for_doctor(
    path: Path, *, environ: Mapping[str, str] | None = None, credentials: Path | None = None
) -> tuple[LinesideConfig | None, Finding]:
    """Load the config as the service would, with its credentials found on disk."""
    env = dict(os.environ if environ is None else environ)
    if credentials is not None:
        env["CREDENTIALS_DIRECTORY"] = str(credentials)
    elif "CREDENTIALS_DIRECTORY" not in env and CREDSTORE.is_dir():
        env["CREDENTIALS_DIRECTORY"] = str(CREDSTORE)
    try:
        config = load_config(path, environ=env)
    except ConfigError as exc:
        problems = [p.format(exc.path) for p in exc.problems]
        secret_trouble = any(
            "CREDENTIALS_DIRECTORY" in p.reason or "secret file" in p.reason for p in exc.problems
        )
        fix = "correct the keys above (every key is documented in config/example.toml)"
        if secret_trouble:
            fix = (
                "put each secret in /etc/credstore/NAME (root, mode 0600) for the unit's "
                "LoadCredential=NAME, then restart the gateway; from a shell, give "
                "--credentials DIR if the secrets live elsewhere"
            )
        return None, Finding("config", "fail", "\n".join(problems), fix)
    devices = sum(d.enabled for d in config.devices)
    return config, Finding(
        "config",
        "ok",
        f"{path}: valid: gateway {config.gateway.id} at site {config.gateway.site}, "
        f"{len(config.lines)} line(s), {devices} enabled device(s)",
    )


# ---------------------------------------------------------------------------- the gateway


async def gateway_status(path: Path, timeout_s: float) -> tuple[dict[str, Any] | None, str]:
    """The running gateway's status snapshot, or ``None`` and why there is none."""
    try:
        async with asyncio.timeout(timeout_s + 2):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=STATUS_LIMIT_BYTES)
            try:
                writer.write(json.dumps({"command": "status"}).encode() + b"\n")
                await writer.drain()
                answer = json.loads(await reader.readline())
            finally:
                writer.close()
    except TimeoutError:
        return None, "no answer in time"
    except (OSError, ValueError) as exc:
        return None, _describe(exc)
    if not isinstance(answer, dict) or "system" not in answer:
        return None, f"unexpected answer: {str(answer)[:200]}"
    return answer, ""


# ---------------------------------------------------------------------------- the store


def check_store(config: LinesideConfig, snapshot: dict[str, Any] | None) -> list[Finding]:
    """Database present, intact, within budget, with disk headroom."""
    store = config.store
    path = store.path
    if not path.exists():
        return [
            Finding(
                "store",
                "fail",
                f"no database at {path}",
                "the gateway creates it on its first start (`systemctl start "
                "lineside-gateway`); check store.path and that /var/lib/lineside exists",
            )
        ]
    findings = []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            verdict = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
            pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        return [
            Finding(
                "store",
                "fail",
                f"cannot read {path}: {exc}",
                "run the doctor as root or a member of group lineside; a damaged file is "
                "moved to quarantine/ by `systemctl restart lineside-gateway`",
            )
        ]
    size_mb = pages * page_size / 2**20
    if verdict != ["ok"]:
        findings.append(
            Finding(
                "store",
                "fail",
                f"{path} is damaged: {'; '.join(verdict)}",
                "restart the gateway: it moves the damaged file to quarantine/ and records "
                f"on a fresh one; recover rows with `sqlite3 {path} .recover | sqlite3 "
                "recovered.db`",
            )
        )
    elif size_mb > 0.9 * store.max_size_mb:
        findings.append(
            Finding(
                "store",
                "warn",
                f"{path}: {size_mb:.0f} MiB of its {store.max_size_mb} MiB budget: oldest "
                "telemetry is being evicted",
                "raise store.max_size_mb if the disk allows, or get the uplink draining",
            )
        )
    else:
        findings.append(
            Finding("store", "ok", f"{path}: intact, {size_mb:.1f} of {store.max_size_mb} MiB")
        )
    free_mb = shutil.disk_usage(path.parent).free / 2**20
    if free_mb < store.headroom_mb:
        findings.append(
            Finding(
                "disk",
                "fail",
                f"{free_mb:.0f} MiB free beside {path} (headroom_mb = {store.headroom_mb})",
                "free space on that volume (old logs, journal: `journalctl --vacuum-size=`)",
            )
        )
    if snapshot is not None and snapshot["system"]["store"]["state"] != "ok":
        state = snapshot["system"]["store"]
        findings.append(
            Finding(
                "store",
                "fail",
                f"the gateway's store is {state['state']}: {state['pending']} records wait "
                "in memory",
                "free disk space or raise store.max_size_mb; it recovers by itself",
            )
        )
    quarantine = store.quarantine_path
    if quarantine.is_dir() and (damaged := sorted(p.name for p in quarantine.iterdir())):
        findings.append(
            Finding(
                "quarantine",
                "warn",
                f"{len(damaged)} damaged database(s) set aside in {quarantine}: "
                f"{', '.join(damaged[-3:])}",
                f"recover what you can with `sqlite3 {quarantine}/<time>/{path.name} "
                ".recover | sqlite3 recovered.db`, then remove the folder",
            )
        )
    return findings


# ---------------------------------------------------------------------------- devices


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
            if await asyncio.to_thread(_serial_port_usable, port):
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


# ---------------------------------------------------------------------------- uplink, ERP


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


# ---------------------------------------------------------------------------- clock, health


def clock_synchronised() -> bool | None:
    """Whether the kernel clock is NTP-synchronised; ``None`` when it cannot be told."""
    try:
        adjtimex = ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    # A zeroed struct timex (modes = 0) only reads; 512 bytes is more than any ABI's size.
    buffer = ctypes.create_string_buffer(512)
    state = int(adjtimex(buffer))
    if state < 0:
        return None
    return state != TIME_ERROR


def check_clock() -> Finding:
    """Records carry this box's time: it must be synchronised."""
    synced = clock_synchronised()
    if synced is None:
        return Finding("clock", "warn", "cannot read the kernel's clock status on this system")
    if synced:
        return Finding("clock", "ok", "synchronised (kernel NTP status)")
    return Finding(
        "clock",
        "fail",
        "not synchronised: record timestamps, use-by checks and ℮ batches may be wrong",
        "enable time sync (`timedatectl set-ntp true` for systemd-timesyncd, or chrony) "
        "and make sure an NTP server is reachable from the line network",
    )


async def check_health(health: HealthSection, timeout_s: float) -> Finding:
    """``/readyz`` on the configured port."""
    host = "127.0.0.1" if health.host in ("0.0.0.0", "") else health.host  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{health.port}/readyz"
    try:
        async with httpx.AsyncClient(timeout=timeout_s + 5, trust_env=False) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        return Finding(
            "health",
            "fail",
            f"{url} does not answer: {_describe(exc)}",
            "see `journalctl -u lineside-gateway | grep health`: is the port taken?",
        )
    if response.status_code == 200:
        return Finding("health", "ok", f"{url}: ready")
    try:
        checks = response.json().get("checks", {})
    except ValueError:
        checks = {}
    failing = ", ".join(name for name, check in checks.items() if not check.get("ok"))
    return Finding(
        "health",
        "fail",
        f"{url}: {response.status_code}, not ready: {failing or response.text[:200]}",
        "see the findings above for each failing part",
    )


# ---------------------------------------------------------------------------- helpers


async def tcp_probe(host: str, port: int, timeout_s: float) -> str:
    """Open and close one TCP connection; the error as text, or ``""`` when it worked."""
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except socket.gaierror as exc:
        # Its errno is a resolver code (EAI_NONAME is -2), which os.strerror cannot name.
        return f"cannot resolve host {host!r}: {exc.strerror or exc}"
    except OSError as exc:
        return _describe(exc)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ""


def _serial_port_usable(port: Path) -> bool:
    return port.exists() and os.access(port, os.R_OK | os.W_OK)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)  # asyncio's "Connect call failed (...)" says less
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


__all__ = ["Finding", "Report", "diagnose"]
