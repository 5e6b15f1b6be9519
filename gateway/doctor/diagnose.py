"""``lineside doctor``: run every check and load the config as the service would."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config import LinesideConfig, load_config
from gateway.config.coverage import coverage_warnings
from gateway.core.errors import ConfigError
from gateway.doctor.findings import Finding, Report
from gateway.doctor.host_checks import check_clock, check_health
from gateway.doctor.link_checks import check_devices, check_erp, check_uplink
from gateway.doctor.probes import describe_error
from gateway.doctor.store_check import check_store

CREDSTORE = Path("/etc/credstore")
"""Where systemd's ``LoadCredential=NAME`` (no path) finds a credential on disk."""

STATUS_LIMIT_BYTES = 8 * 2**20
"""The status answer on the control socket can be long (recent packs, alerts)."""


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


def credentials_environ(
    environ: Mapping[str, str] | None = None, credentials: Path | None = None
) -> dict[str, str]:
    """The environment to load the config with from a shell: ``credentials``, else
    ``$CREDENTIALS_DIRECTORY``, else /etc/credstore (where the unit's credentials live)."""
    env = dict(os.environ if environ is None else environ)
    if credentials is not None:
        env["CREDENTIALS_DIRECTORY"] = str(credentials)
    elif "CREDENTIALS_DIRECTORY" not in env and CREDSTORE.is_dir():
        env["CREDENTIALS_DIRECTORY"] = str(CREDSTORE)
    return env


def load_for_doctor(
    path: Path, *, environ: Mapping[str, str] | None = None, credentials: Path | None = None
) -> tuple[LinesideConfig | None, Finding]:
    """Load the config as the service would, with its credentials found on disk."""
    try:
        config = load_config(path, environ=credentials_environ(environ, credentials))
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
        return None, describe_error(exc)
    if not isinstance(answer, dict) or "system" not in answer:
        return None, f"unexpected answer: {str(answer)[:200]}"
    return answer, ""


__all__ = ["CREDSTORE", "diagnose", "gateway_status", "load_for_doctor"]
