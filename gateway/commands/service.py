"""Installing and running the gateway: ``run``, ``check-config`` and ``doctor``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from gateway.commands.common import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_USAGE,
    SubCommands,
)
from gateway.core.errors import ConfigError


def _cmd_run(args: argparse.Namespace) -> int:
    from gateway.run_failures import run_and_report  # noqa: PLC0415

    return run_and_report(args.config, log_level=args.log_level)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.config import json_schema, load_config  # noqa: PLC0415

    if args.schema:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
        return EXIT_OK
    if args.path is None:
        print("lineside check-config: give a config file (or --schema)", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(exc.path), file=sys.stderr)
        print(f"{exc.path}: {len(exc.problems)} problem(s); not valid", file=sys.stderr)
        return EXIT_CONFIG
    from gateway.config.coverage import coverage_warnings  # noqa: PLC0415

    # Not fatal: the config is valid, but some rules will not see what they judge.
    for warning in coverage_warnings(config):
        print(warning.format(str(args.path)), file=sys.stderr)
    kinds: dict[str, int] = {}
    for device in config.devices:
        kinds[device.kind] = kinds.get(device.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no devices"
    print(
        f"{args.path}: valid: gateway {config.gateway.id} at site {config.gateway.site}, "
        f"{len(config.lines)} line(s), {len(config.devices)} device(s) ({summary}), "
        f"store {config.store.path}"
    )
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from gateway.doctor import diagnose  # noqa: PLC0415

    report = asyncio.run(
        diagnose(args.config, credentials=args.credentials, timeout_s=args.timeout)
    )
    print(report.format())
    return report.exit_code


def add_run(commands: SubCommands) -> None:
    """``lineside run``."""
    run = commands.add_parser("run", help="run the gateway service")
    run.add_argument("--config", "-c", type=Path, required=True, help="config file (TOML)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.set_defaults(handler=_cmd_run)


def add_check_config(commands: SubCommands) -> None:
    """``lineside check-config``."""
    check = commands.add_parser(
        "check-config", help="validate a config file and print every problem with its key path"
    )
    check.add_argument("path", type=Path, nargs="?", help="config file (TOML)")
    check.add_argument("--schema", action="store_true", help="print the config JSON Schema")
    check.set_defaults(handler=_cmd_check_config)


def add_doctor(commands: SubCommands) -> None:
    """``lineside doctor``."""
    doctor = commands.add_parser(
        "doctor",
        help="check a live installation (config, store, devices, uplink, clock) and say "
        "what to fix",
    )
    doctor.add_argument("--config", "-c", type=Path, required=True, help="config file (TOML)")
    doctor.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="folder of the config's { credential = NAME } secrets "
        "(default: $CREDENTIALS_DIRECTORY, else /etc/credstore)",
    )
    doctor.add_argument(
        "--timeout", type=float, default=3.0, help="seconds allowed for each network check"
    )
    doctor.set_defaults(handler=_cmd_doctor)
