"""Device simulators for the demo and the integration tests.

* :class:`OpcUaSimulator` -- checkweigher CW1 (OPC 40200-style nodes), probes P1/P2 and the
  label scanner node SC1 over OPC UA.
* :class:`ModbusSimulator` -- four temperature transmitters, a float probe and the scale
  indicator of checkweigher CW2 over Modbus TCP (register map in its module docstring).
* :class:`ScannerSimulator` -- a fixed label scanner pushing CR LF terminated GS1 reads of
  CW1's labels over TCP.

All three play the same seedable :mod:`~adapters.simulators.scenario`, so with the same
settings they tell one consistent story. :func:`run_simulators` runs them together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date
from typing import TypedDict

from adapters.erp.simulator import ErpSimulator
from adapters.simulators._driver import check_speed, local_today
from adapters.simulators.modbus_server import ModbusSimulator
from adapters.simulators.opcua_server import OpcUaSimulator
from adapters.simulators.scanner_server import ScannerSimulator
from adapters.simulators.scenario import LineSpec, ScenarioEngine, ScenarioName

__all__ = [
    "ModbusSimulator",
    "OpcUaSimulator",
    "ScannerSimulator",
    "ScenarioEngine",
    "ScenarioName",
    "SimulatorSettings",
    "run_simulators",
]


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """How to run the three simulators together.

    Ports of 0 pick a free ephemeral port each. ``pack_date`` defaults to today (local date).
    """

    seed: int = 1
    scenario: ScenarioName = ScenarioName.DEMO
    speed: float = 1.0
    host: str = "127.0.0.1"
    opcua_port: int = 0
    modbus_port: int = 0
    scanner_port: int = 0
    erp_port: int = 0
    pack_rate_hz: float = 1.0
    pack_date: date | None = None

    def __post_init__(self) -> None:
        # Accept the scenario's string value too, as read from a CLI or config file.
        object.__setattr__(self, "scenario", ScenarioName(self.scenario))
        check_speed(self.speed)
        for name in ("opcua_port", "modbus_port", "scanner_port", "erp_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ValueError(f"{name} must be 0..65535, got {port}")


class _SharedScenario(TypedDict):
    """The constructor arguments the three device simulators share in :func:`run_simulators`."""

    host: str
    seed: int
    scenario: ScenarioName
    speed: float
    pack_rate_hz: float
    line: LineSpec
    epoch: float


async def run_simulators(
    settings: SimulatorSettings,
    *,
    on_started: Callable[[dict[str, str]], None] | None = None,
) -> None:
    """Run the OPC UA, Modbus and scanner simulators until cancelled.

    They share one scenario timeline. Once all three listen, ``on_started`` receives their
    addresses, e.g. ``{"opcua": "opc.tcp://127.0.0.1:48400/lineside",
    "modbus": "127.0.0.1:50200", "scanner": "127.0.0.1:50300"}``.
    """
    s = settings
    # One timeline and one line for all three, so they tell the same story.
    shared = _SharedScenario(
        host=s.host,
        seed=s.seed,
        scenario=s.scenario,
        speed=s.speed,
        pack_rate_hz=s.pack_rate_hz,
        line=LineSpec(pack_date=s.pack_date or local_today()),
        epoch=asyncio.get_running_loop().time(),
    )
    opcua = OpcUaSimulator(port=s.opcua_port, **shared)
    modbus = ModbusSimulator(port=s.modbus_port, **shared)
    scanner = ScannerSimulator(port=s.scanner_port, **shared)
    erp = ErpSimulator(host=s.host, port=s.erp_port)
    async with AsyncExitStack() as stack:
        for simulator in (opcua, modbus, scanner, erp):
            await stack.enter_async_context(simulator)
        if on_started is not None:
            on_started(
                {
                    "opcua": opcua.endpoint,
                    "modbus": modbus.address,
                    "scanner": scanner.address,
                    "erp": erp.url,
                }
            )
        await asyncio.Event().wait()  # until cancelled; the exit stack stops all three
