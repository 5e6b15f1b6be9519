"""The ERP link: ``erp-sync`` and ``erp-check``."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.commands.common import (
    EXIT_CONFIG,
    CommandFailed,
    SubCommands,
    printable,
)
from gateway.core.errors import ConfigError


def _cmd_erp_sync(args: argparse.Namespace) -> int:
    from gateway.erp_sync import run_erp_sync_once  # noqa: PLC0415
    from gateway.logs import configure_logging  # noqa: PLC0415

    configure_logging(level="info")
    try:
        return run_erp_sync_once(args.config, full=args.full)
    except ConfigError as exc:  # its problems, one a line, as check-config prints them
        raise CommandFailed(str(exc), EXIT_CONFIG) from None


def _cmd_erp_check(args: argparse.Namespace) -> int:
    from gateway.erp_check import run_erp_check  # noqa: PLC0415

    text, code = run_erp_check(
        args.url,
        token_file=args.token_file,
        as_json=args.json,
        timezone=args.timezone,
        ca_file=args.ca_file,
        timeout_s=args.timeout,
    )
    # The findings quote what the ERP sent: escape sequences are shown, never passed on.
    print("\n".join(printable(line) for line in text.splitlines()))
    return code


def add_erp_sync(commands: SubCommands) -> None:
    """``lineside erp-sync``."""
    erp = commands.add_parser(
        "erp-sync", help="poll the ERP once into the store (stop the gateway first)"
    )
    erp.add_argument("--config", "-c", type=Path, required=True, help="config file")
    erp.add_argument("--full", action="store_true", help="ignore the watermark: reload all runs")
    erp.set_defaults(handler=_cmd_erp_sync)


def add_erp_check(commands: SubCommands) -> None:
    """``lineside erp-check``."""
    erp_check = commands.add_parser(
        "erp-check", help="fetch one page from an ERP endpoint and check it against the contract"
    )
    erp_check.add_argument("url", help="the ERP's run endpoint, e.g. https://erp/api/runs")
    erp_check.add_argument("--token-file", type=Path, help="file holding the bearer token")
    erp_check.add_argument("--ca-file", type=Path, help="CA bundle for the ERP's certificate")
    erp_check.add_argument("--timezone", default="Europe/London", help="the ERP's time zone")
    erp_check.add_argument(
        "--timeout", type=float, default=60.0, help="seconds for the whole answer (default 60)"
    )
    erp_check.add_argument("--json", action="store_true", help="print the findings as JSON")
    erp_check.set_defaults(handler=_cmd_erp_check)
