"""``lineside simulate``: run the three device simulators in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from adapters.simulators import SimulatorSettings, run_simulators
from adapters.simulators.scenario import ScenarioName

__all__ = ["run_simulate"]

_EXIT_OK = 0
_EXIT_USAGE = 2


def _report(addresses: dict[str, str]) -> None:
    # One "simulator <name> <address>" line each: scripts (and the end-to-end test) read them.
    for name, address in addresses.items():
        sys.stdout.write(f"simulator {name} {address}\n")
    sys.stdout.write("simulators running; Ctrl-C to stop\n")
    sys.stdout.flush()


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""SIGTERM (systemd, scripts) and SIGINT (Ctrl-C, or `kill -INT` to simulators started in the
background with SIGINT ignored, as a shell's `&` does) stop the simulators, as they stop the
gateway and the demo."""


async def _run_until_terminated(settings: SimulatorSettings) -> None:
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - always inside asyncio.run
        raise RuntimeError("must run inside a task")
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, task.cancel)
    try:
        await run_simulators(settings, on_started=_report)
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def run_simulate(args: argparse.Namespace) -> int:
    """Run the simulators from parsed ``lineside simulate`` arguments; returns an exit code.

    Reads ``host``, ``opcua_port``, ``modbus_port``, ``scanner_port``, ``scenario``, ``seed``
    and ``speed`` from ``args``; the addresses are printed once everything listens.
    """
    try:
        settings = SimulatorSettings(
            seed=args.seed,
            scenario=ScenarioName(args.scenario),
            speed=args.speed,
            host=args.host,
            opcua_port=args.opcua_port,
            modbus_port=args.modbus_port,
            scanner_port=args.scanner_port,
            erp_port=args.erp_port,
        )
    except ValueError as exc:
        sys.stderr.write(f"lineside simulate: {exc}\n")
        return _EXIT_USAGE
    # A stop signal cancels the task above (Ctrl-C before the loop runs: KeyboardInterrupt).
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(_run_until_terminated(settings))
    return _EXIT_OK
