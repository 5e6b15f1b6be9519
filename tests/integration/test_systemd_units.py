"""The systemd units in systemd/: hardening score, `systemd-analyze verify`, the service
contract of the gateway unit, and the watchdog pings of a running gateway.

`systemd-analyze` ships with Debian's `systemd` package; these tests need it and fail (they
do not skip) without it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.cli import build_parser
from gateway.sdnotify import Notifier
from tests.support.configs import minimal_config_text
from tests.support.paths import REPO
from tests.support.running_gateway import gateway_in_process
from tests.support.waiting import wait_for

UNITS = REPO / "systemd"
GATEWAY_UNIT = UNITS / "lineside-gateway.service"
INSTALLED_BINARY = "/opt/lineside/bin/lineside"
MAX_EXPOSURE = 1.5


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze") or (
        "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
    )
    if tool is None:
        pytest.fail(
            "systemd-analyze is missing: install Debian's systemd package "
            "(apt-get install systemd) to check the units"
        )
    return tool


def directives(unit: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order (keys may repeat)."""
    found, section = [], ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def values(unit: Path, key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in directives(unit) if s == section and k == key]


def test_gateway_unit_exposure_is_at_most_1_5(tmp_path: Path) -> None:
    unit = tmp_path / GATEWAY_UNIT.name
    shutil.copy(GATEWAY_UNIT, unit)
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for lineside-gateway\.service: (\d+\.\d+)", output)
    assert match, output
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{output}"
    # The same limit through the tool's own gate (its threshold is the score x 10).
    gate = subprocess.run(
        [
            systemd_analyze(),
            "security",
            "--offline=true",
            f"--threshold={int(MAX_EXPOSURE * 10)}",
            str(unit),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert gate.returncode == 0, gate.stdout + gate.stderr


def test_every_unit_verifies_without_errors(tmp_path: Path) -> None:
    # verify checks that each command exists: point the units at this checkout's lineside
    # (this interpreter running gateway.cli, wherever the checkout and its environment are)
    # instead of the installed /opt/lineside one, nothing else changed.
    lineside = tmp_path / "bin" / "lineside"
    lineside.parent.mkdir()
    lineside.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gateway.cli "$@"\n')
    lineside.chmod(0o755)
    assert (
        subprocess.run([lineside, "--help"], capture_output=True, cwd=REPO, check=False).returncode
        == 0
    )
    units = sorted(UNITS.glob("*.service"))
    assert {u.name for u in units} == {
        "lineside-gateway.service",
        "lineside-ingest.service",
        "lineside-ingest@.service",
        "lineside-tui.service",
    }
    for unit in units:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_BINARY, str(lineside)))
    result = subprocess.run(
        [systemd_analyze(), "verify", *(str(tmp_path / u.name) for u in units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == "", "no warnings either"


def test_gateway_unit_is_a_watched_restarting_notify_service() -> None:
    unit = GATEWAY_UNIT
    assert values(unit, "Type") == ["notify"]
    [watchdog] = values(unit, "WatchdogSec")
    assert watchdog.endswith("s")
    assert int(watchdog[:-1]) >= 10
    assert values(unit, "Restart") == ["on-failure"]
    assert values(unit, "StartLimitIntervalSec", "Unit")
    assert values(unit, "StartLimitBurst", "Unit")
    assert values(unit, "RestartPreventExitStatus") == ["3"], "invalid config: no restart loop"
    # RestartPreventExitStatus= acts on the main process only: a config check in
    # ExecStartPre= failing with 3 was restarted anyway. `lineside run` checks it and exits 3.
    assert values(unit, "ExecStartPre") == []
    [start] = values(unit, "ExecStart")
    assert shlex.split(start)[1:] == ["run", "--config", "/etc/lineside/lineside.toml"]
    assert values(unit, "StateDirectory") == ["lineside"]
    assert values(unit, "ConfigurationDirectory") == ["lineside"]
    [user] = values(unit, "User")
    assert user not in ("", "root")
    assert values(unit, "NoNewPrivileges") == ["yes"]


def test_the_units_load_every_credential_the_example_config_names() -> None:
    # Commented lines of config/example.toml included: they show the names to use.
    text = (REPO / "config" / "example.toml").read_text()
    named = set(re.findall(r'\w+\s*=\s*\{\s*credential\s*=\s*"([^"]+)"', text))
    assert named, "the example names its credentials"
    assert named <= set(values(GATEWAY_UNIT, "LoadCredential"))
    # The TUI reads only the control socket: it is given no secrets at all.
    assert values(UNITS / "lineside-tui.service", "LoadCredential") == []
    # Names only (no path): systemd finds them in /etc/credstore and skips missing ones.
    assert all(":" not in name for name in values(GATEWAY_UNIT, "LoadCredential"))


def test_every_command_in_the_units_is_a_valid_lineside_command() -> None:
    parser = build_parser()
    commands = []
    for unit in sorted(UNITS.glob("*.service")):
        env = dict(v.split("=", 1) for v in values(unit, "Environment"))
        for key in ("ExecStartPre", "ExecStart"):
            for line in values(unit, key):
                expanded = line.replace("%i", "1")  # a template's instance name
                for name, value in env.items():
                    expanded = expanded.replace(f"${{{name}}}", value)
                argv = shlex.split(expanded)
                assert argv[0] == INSTALLED_BINARY
                args = parser.parse_args(argv[1:])
                commands.append((unit.name, args.command))
    assert ("lineside-gateway.service", "run") in commands
    assert ("lineside-ingest.service", "ingest") in commands
    assert ("lineside-ingest@.service", "ingest") in commands
    tui = values(UNITS / "lineside-tui.service", "ExecStart")
    assert [shlex.split(line)[1:] for line in tui] == [
        ["tui", "--socket", "/var/lib/lineside/control.sock"]
    ]


def test_ingest_template_instances_share_a_group_each_with_its_own_identity() -> None:
    template = UNITS / "lineside-ingest@.service"
    [start] = values(template, "ExecStart")
    start = start.replace("%i", "2").replace("${LINESIDE_MQTT_PORT}", "1883")
    args = build_parser().parse_args(shlex.split(start)[1:])
    assert args.share_group == "lineside"
    # Client id and broker login alike, per instance: the shipped ACL's lineside-ingest-N.
    assert args.client_id == args.mqtt_username == "lineside-ingest-2"
    assert args.http_port == 8082
    assert "lineside-ingest-2" in (REPO / "config" / "mosquitto" / "acl").read_text()
    assert values(template, "LoadCredential") == [
        "pgpass",
        "mqtt-password:/etc/credstore/mqtt-password-%i",
        "gateway-tokens",
    ]
    assert values(template, "StateDirectory") == ["lineside-ingest-%i"]
    # The rest of the service is the single ingest's: the same restarts and hardening.
    single = UNITS / "lineside-ingest.service"
    skip = {"ExecStart", "LoadCredential", "StateDirectory", "WorkingDirectory"}
    assert [d for d in directives(template) if d[0] == "Service" and d[1] not in skip] == [
        d for d in directives(single) if d[0] == "Service" and d[1] not in skip
    ]


async def test_watchdog_pings_of_a_running_gateway_stop_while_its_loop_is_blocked(
    tmp_path: Path,
) -> None:
    notify = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.setblocking(False)
    # WatchdogSec=100ms: pings every 50 ms from the gateway's own watchdog task.
    notifier = Notifier({"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "100000"})
    received: list[str] = []

    def drain() -> list[str]:
        messages = []
        while True:
            try:
                messages.append(listener.recv(4096).decode())
            except BlockingIOError:
                received.extend(messages)
                return messages

    config = tmp_path / "gw.toml"
    config.write_text(minimal_config_text(tmp_path / "wd.db"))
    try:
        async with gateway_in_process(config, notifier=notifier):
            await wait_for(lambda: bool(drain()) and received.count("WATCHDOG=1") >= 3)
            assert any(m.startswith("READY=1") for m in received)
            drain()
            # A stuck computation on the event loop: no ping can be sent meanwhile.
            deadline = time.monotonic() + 0.4
            while time.monotonic() < deadline:
                pass
            during = drain()
            before_resume = received.count("WATCHDOG=1")
            await wait_for(lambda: bool(drain()) and received.count("WATCHDOG=1") > before_resume)
        drain()
    finally:
        listener.close()
    assert during == [], "no WATCHDOG=1 while the loop was blocked (8 intervals)"
    assert "STOPPING=1" in received
