"""The ``lineside`` command line: the parser, assembled from the command modules in
:mod:`gateway.commands`, and :func:`main`, the console script."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gateway import __version__, modbus_probe, opcua_browse
from gateway.commands import (
    dead_letter,
    erp,
    ingest,
    operator,
    reports,
    service,
    simulation,
    warehouse,
    warehouse_read,
)
from gateway.commands.common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    tolerant_stdio,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandFailed",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="lineside",
        description="Lineside: edge gateway for fish and food packing lines.",
    )
    parser.add_argument("--version", action="version", version=f"lineside {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # In the order `lineside --help` lists them.
    service.add_run(commands)
    service.add_check_config(commands)
    service.add_doctor(commands)
    simulation.add_simulate(commands)
    simulation.add_demo(commands)
    operator.add_run_actions(commands)
    erp.add_erp_sync(commands)
    erp.add_erp_check(commands)
    operator.add_alerts(commands)
    operator.add_ack_and_shelve(commands)
    operator.add_line_mode(commands)
    dead_letter.add_dead_letter(commands)
    reports.add_shelf_life(commands)
    reports.add_report(commands)
    reports.add_reconcile(commands)
    operator.add_tui(commands)
    ingest.add_ingest(commands)
    ingest.add_ingest_token(commands)
    warehouse_read.add_warehouse_read(warehouse.add_warehouse(commands))
    modbus_probe.add_parser(commands)
    opcua_browse.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lineside`` console script."""
    tolerant_stdio()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except CommandFailed as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `lineside report ... | head`: the reader has gone, say nothing
        # Python would report the failed flush of stdout at exit; point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_FAILURE
    return code


if __name__ == "__main__":
    sys.exit(main())
