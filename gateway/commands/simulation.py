"""Simulated devices and the demo: ``simulate`` and ``demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.commands.common import (
    SubCommands,
)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from adapters.simulators.cli import run_simulate  # noqa: PLC0415
    from gateway.logs import configure_logging  # noqa: PLC0415

    configure_logging(level=args.log_level or "info")
    return run_simulate(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo  # noqa: PLC0415

    return run_demo(args)


def add_simulate(commands: SubCommands) -> None:
    """``lineside simulate``."""
    simulate = commands.add_parser(
        "simulate", help="run simulated checkweighers, probes and a label scanner"
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address to listen on")
    simulate.add_argument("--opcua-port", type=int, default=48400)
    simulate.add_argument("--modbus-port", type=int, default=50200)
    simulate.add_argument("--scanner-port", type=int, default=50300)
    simulate.add_argument("--erp-port", type=int, default=48500)
    simulate.add_argument(
        "--scenario",
        default="demo",
        help="normal, underweight_drift, temperature_excursion, label_gap, dropout or demo",
    )
    simulate.add_argument("--seed", type=int, default=1, help="random seed (same seed, same run)")
    simulate.add_argument(
        "--speed", type=float, default=1.0, help="time factor (2 = twice as fast)"
    )
    simulate.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    simulate.set_defaults(handler=_cmd_simulate)


def add_demo(commands: SubCommands) -> None:
    """``lineside demo``."""
    demo = commands.add_parser(
        "demo", help="simulated devices, the gateway and a live view, all on this machine"
    )
    demo.add_argument(
        "--config",
        type=Path,
        default=None,
        help="demo config (default: config/demo.toml here, else the one shipped in the package)",
    )
    demo.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the demo keeps its store and log (default for the shipped config: "
        "./lineside-demo)",
    )
    demo.add_argument("--seconds", type=float, default=None, help="stop after this long")
    demo.add_argument(
        "--headless",
        action="store_true",
        help="no TUI: print a status line a second instead (also when not on a terminal)",
    )
    demo.add_argument(
        "--keep-store",
        action="store_true",
        help="keep the last demo's store and warehouse (by default each demo starts afresh)",
    )
    # The back end that `lineside demo` starts for its TUI: it stops when its stdin closes.
    demo.add_argument("--backend", action="store_true", help=argparse.SUPPRESS)
    demo.set_defaults(handler=_cmd_demo)
