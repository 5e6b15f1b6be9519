"""The demo site for tests: the real simulators and the gateway on ``config/demo.toml``.

The simulators listen on ephemeral loopback ports and play a scenario ``speed`` times faster
than life; the gateway gets a temporary store and, optionally, an MQTT uplink.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from adapters.simulators import SimulatorSettings, run_simulators
from adapters.simulators.scenario import ScenarioName
from gateway.config import LinesideConfig, load_config
from gateway.service import run_gateway
from gateway.status import GatewayStatus
from tests.support.paths import REPO


@dataclass
class Site:
    """A running simulated site."""

    config: LinesideConfig
    config_path: Path
    db_path: Path
    status: GatewayStatus
    gateway: asyncio.Task[None]


def demo_config_text(
    addresses: dict[str, str],
    db_path: Path,
    *,
    debounce_s: int,
    device_down_s: float | None = None,
) -> str:
    """``config/demo.toml`` pointed at the simulators' ports and a temporary store
    (``device_down_s``: the devices' ``down_alert_after_s`` instead of the demo's)."""
    text = (REPO / "config" / "demo.toml").read_text()
    if device_down_s is not None:
        text = text.replace("down_alert_after_s = 10", f"down_alert_after_s = {device_down_s}")
    return (
        text.replace("opc.tcp://127.0.0.1:48400/lineside", addresses["opcua"])
        .replace("port = 50200", f"port = {addresses['modbus'].rsplit(':', 1)[1]}")
        .replace("port = 50300", f"port = {addresses['scanner'].rsplit(':', 1)[1]}")
        .replace("http://127.0.0.1:48500/api/runs", addresses["erp"])
        .replace('path = "../var/demo/lineside.db"', f'path = "{db_path}"')
        .replace("debounce_s = 60 ", f"debounce_s = {debounce_s} ")
        .replace("poll_interval_s = 5", "poll_interval_s = 2")
    )


class SiteHandle:
    """The simulators are running; the gateway starts with :meth:`start` (or already has)."""

    def __init__(self, config_path: Path, db_path: Path) -> None:
        self.config_path = config_path
        self.db_path = db_path
        self.stop = asyncio.Event()
        self.ready: asyncio.Future[Site] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.simulators: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the gateway; :attr:`ready` resolves when it runs."""
        config = load_config(self.config_path)

        def on_status(status: GatewayStatus) -> None:
            assert self.task is not None
            self.ready.set_result(Site(config, self.config_path, self.db_path, status, self.task))

        self.task = asyncio.create_task(run_gateway(config, stop=self.stop, on_status=on_status))

    async def restart(self) -> Site:
        """Stop the gateway cleanly and start a new one on the same store."""
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 20)
        self.stop = asyncio.Event()
        self.ready = asyncio.get_running_loop().create_future()
        self.start()
        return await self.site()

    async def site(self, timeout: float = 30) -> Site:
        """The running site (waits for the gateway to be ready)."""
        return await asyncio.wait_for(asyncio.shield(self.ready), timeout)


@contextlib.asynccontextmanager
async def simulated_site(
    tmp_path: Path,
    *,
    speed: float,
    scenario: ScenarioName = ScenarioName.DEMO,
    debounce_s: int = 3,
    extra_config: str = "",
    start_gateway: bool = True,
    device_down_s: float | None = None,
) -> AsyncIterator[SiteHandle]:
    """Run the simulators and (unless ``start_gateway`` is false) the gateway."""
    addresses: dict[str, str] = {}
    started = asyncio.Event()

    def on_started(found: dict[str, str]) -> None:
        addresses.update(found)
        started.set()

    simulators = asyncio.create_task(
        run_simulators(SimulatorSettings(speed=speed, scenario=scenario), on_started=on_started)
    )
    handle = None
    try:
        await asyncio.wait_for(started.wait(), 30)
        db_path = tmp_path / "site.db"
        config_path = tmp_path / "site.toml"
        config_path.write_text(
            demo_config_text(addresses, db_path, debounce_s=debounce_s, device_down_s=device_down_s)
            + extra_config
        )
        handle = SiteHandle(config_path, db_path)
        handle.simulators = simulators
        if start_gateway:
            handle.start()
        yield handle
    finally:
        if handle is not None:
            handle.stop.set()
            if handle.task is not None:
                await asyncio.wait_for(handle.task, 20)
        simulators.cancel()
        await asyncio.gather(simulators, return_exceptions=True)
