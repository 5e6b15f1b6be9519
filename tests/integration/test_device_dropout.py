"""Every device of a line gone for 60 s (issue 17): the real simulators behind fault proxies
that reset every connection, the gateway on ``config/demo.toml``. Each device down longer than
its time raises ``device_down`` (the line's andon amber, not green), the operator finds them
in ``lineside alerts`` by short reference and acknowledges one by it and the rest by rule and
line, and every alert clears when its device is back."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.simulators import SimulatorSettings, run_simulators
from adapters.simulators.scenario import ScenarioName
from gateway.config import load_config
from gateway.service import run_gateway
from gateway.status import GatewayStatus
from tests.support.faultproxy import FaultProxy
from tests.support.paths import REPO
from tests.support.sim_site import demo_config_text
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

DOWN_S = 60
DEVICES = {"cw1": "major", "probes-opcua": "major", "tt-modbus": "major", "scanner1": "warning"}


def device_down(db_path: Path) -> list[tuple[str, str, str]]:
    """``(device, state, severity)`` of every device_down transition, in order."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT subject, state, severity FROM alerts WHERE rule = 'device_down' ORDER BY seq"
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def with_state(db_path: Path, state: str) -> set[str]:
    return {device for device, s, _ in device_down(db_path) if s == state}


async def lineside(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


@contextlib.asynccontextmanager
async def proxied_site(tmp_path: Path) -> AsyncIterator[tuple[list[FaultProxy], Path, Path]]:
    """The simulators, a fault proxy in front of each, and the config pointing at them."""
    addresses: dict[str, str] = {}
    started = asyncio.Event()

    def on_started(found: dict[str, str]) -> None:
        addresses.update(found)
        started.set()

    settings = SimulatorSettings(speed=1.0, scenario=ScenarioName.NORMAL)
    simulators = asyncio.create_task(run_simulators(settings, on_started=on_started))
    try:
        await asyncio.wait_for(started.wait(), 30)
        opcua_port = int(addresses["opcua"].rsplit(":", 1)[1].split("/")[0])
        ports = [opcua_port] + [int(addresses[k].rsplit(":", 1)[1]) for k in ("modbus", "scanner")]
        async with contextlib.AsyncExitStack() as stack:
            proxies = [await stack.enter_async_context(FaultProxy(p)) for p in ports]
            through = {
                "opcua": addresses["opcua"].replace(f":{opcua_port}/", f":{proxies[0].port}/"),
                "modbus": f"127.0.0.1:{proxies[1].port}",
                "scanner": f"127.0.0.1:{proxies[2].port}",
                "erp": addresses["erp"],
            }
            db_path = tmp_path / "site.db"
            config_path = tmp_path / "site.toml"
            config_path.write_text(
                demo_config_text(through, db_path, debounce_s=60, device_down_s=5).replace(
                    # Back within a couple of seconds of the route: the clear is quick too.
                    "down_alert_after_s = 5",
                    "down_alert_after_s = 5\nreconnect_max_s = 2.0",
                )
            )
            yield proxies, db_path, config_path
    finally:
        simulators.cancel()
        await asyncio.gather(simulators, return_exceptions=True)


async def test_a_line_without_its_devices_for_a_minute_raises_and_clears_device_down(
    tmp_path: Path,
) -> None:
    async with proxied_site(tmp_path) as (proxies, db_path, config_path):
        config = load_config(config_path)
        ready: asyncio.Future[GatewayStatus] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        gateway = asyncio.create_task(run_gateway(config, stop=stop, on_status=ready.set_result))
        try:
            status = await asyncio.wait_for(asyncio.shield(ready), 30)
            await wait_for(
                lambda: all(str(d.state) == "up" for d in status.devices), 30, "devices up"
            )
            assert status.engine.andon("L1") == "green"

            for proxy in proxies:
                # Every connection reset, and each new one: the line is gone. (The scanner's
                # link comes up and drops again at once: still down, rules/devices.py.)
                proxy.reset()
            down_since = asyncio.get_running_loop().time()
            await wait_for(lambda: with_state(db_path, "raised") == set(DEVICES), 20, "raised")
            raised = {d: sev for d, s, sev in device_down(db_path) if s == "raised"}
            assert raised == DEVICES, "MAJOR but for the scanner"
            snapshot = await status.snapshot()
            [line] = [x for x in snapshot["lines"] if x["id"] == "L1"]
            assert line["andon"] == "amber", "a line with every device down is not green"
            assert line["alarm_load"]["raised"] >= 4
            assert line["alarm_load"]["flood_periods"] == 0

            # The operator lists them with their refs, acknowledges one by its ref...
            listing = await lineside("alerts", "-c", str(config_path), "--rule", "device_down")
            refs = {
                a["subject"]: a["ref"]
                for a in snapshot["alerts"]["active"]
                if a["rule"] == "device_down"
            }
            assert set(refs) == set(DEVICES)
            for ref in refs.values():
                assert len(ref) == 6
                assert ref in listing
            answer = await lineside(
                "ack", refs["scanner1"], "-c", str(config_path), "--operator", "Ann"
            )
            assert answer.strip() == "1 alert(s) acknowledged by Ann"
            # ... and the rest of the line's by rule and line, in one go.
            answer = await lineside(
                "ack",
                "--rule",
                "device_down",
                "--line",
                "L1",
                "-c",
                str(config_path),
                "--operator",
                "Ann",
                "--comment",
                "switch in the cabinet rebooting",
            )
            assert answer.strip() == "3 alert(s) acknowledged by Ann"
            assert status.engine.andon("L1") == "amber", "acknowledged, still down"

            left = DOWN_S - (asyncio.get_running_loop().time() - down_since)
            await asyncio.sleep(max(left, 0))
            assert with_state(db_path, "cleared") == set(), "still down after a minute"
            for proxy in proxies:
                proxy.pass_through()
            await wait_for(lambda: with_state(db_path, "cleared") == set(DEVICES), 30, "cleared")
            assert not [a for a in status.engine.book.active() if a.rule == "device_down"]
        finally:
            stop.set()
            await asyncio.wait_for(gateway, 20)
    transitions = device_down(db_path)
    for device in DEVICES:
        states = [s for d, s, _ in transitions if d == device]
        assert states == ["raised", "acknowledged", "cleared"], transitions
