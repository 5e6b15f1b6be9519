"""Reading what the gateway recorded: ``shelf-life``, ``report`` and ``reconcile``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from gateway import api
from gateway.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    SubCommands,
    add_gateway_target,
    add_output_options,
    gateway_config,
    operator_config,
    print_json,
    printable,
    send_control,
)
from gateway.commands.warehouse_read import add_warehouse_target, report_from_warehouse


def _cmd_shelf_life(args: argparse.Namespace) -> int:
    import sqlite3  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from gateway.core.runs import run_from_json  # noqa: PLC0415
    from gateway.rules_engine import run_context  # noqa: PLC0415
    from rules.shelf_life import nearing_date  # noqa: PLC0415

    config = gateway_config(args.config)
    try:
        db = sqlite3.connect(f"file:{config.store.path}?mode=ro", uri=True, timeout=5)
        payloads = [p for (p,) in db.execute("SELECT payload FROM runs")]
        db.close()
    except sqlite3.Error as exc:
        print(f"lineside shelf-life: cannot read {config.store.path}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    runs = [run_context(run_from_json(json.loads(p)), config.rules) for p in payloads]
    today = datetime.now(UTC).date()
    found = nearing_date(
        runs,
        today,
        args.within_days,
        base_days=config.rules.shelf_life_base_days,
        freeze_day=config.rules.freeze_down_day,
    )
    for item in found:
        state = "EXPIRED" if item.expired else f"{item.days_left} day(s) left"
        freeze = "  FREEZE DOWN DUE" if item.freeze_down_due else ""
        print(
            f"{item.run_number:<16} line {item.line:<6} packed {item.pack_date}  "
            f"use-by {item.use_by}  day {item.day}  {state}{freeze}"
        )
    if not found:
        print(f"nothing within {args.within_days} day(s) of its use-by or due to be frozen down")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from gateway.report import ReportError, build_report  # noqa: PLC0415
    from gateway.report_output import (  # noqa: PLC0415
        SUMMARY_HINT,
        format_full,
        format_summary,
        report_document,
        run_alerts,
        run_losses,
    )

    if args.warehouse:
        return report_from_warehouse(args)
    if args.sqlite is not None or args.postgres_dsn_env or args.gateway:
        raise CommandFailed(
            "lineside report: --sqlite, --postgres-dsn-env and --gateway go with --warehouse",
            EXIT_USAGE,
        )
    if args.socket is not None:
        # From the running gateway: no config, no store access needed (no --all there).
        if args.all:
            raise CommandFailed("lineside report: --all needs --config (it reads the store)")
        document = send_control(args.socket, api.Report.unchecked(run_number=args.run).wire())[
            "report"
        ]
        if args.json:
            print_json(document)
        else:
            print(format_summary(document, printable=printable) + SUMMARY_HINT)
        return EXIT_OK
    store_path = operator_config(args.config).store.path
    try:
        report = build_report(store_path, args.run)
        losses, alerts = run_losses(store_path, report), run_alerts(store_path, report)
    except ReportError as exc:
        print(f"lineside report: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    document = report_document(report, losses, alerts, with_transitions=args.all)
    if args.json:
        print_json(document)
    else:
        text = format_summary(document, printable=printable)
        print(text + (format_full(report) if args.all else SUMMARY_HINT))
    return EXIT_OK


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from gateway.reconcile_output import format_reconcile, reconcile_document  # noqa: PLC0415
    from sync.ingest.warehouse import create_warehouse  # noqa: PLC0415
    from sync.reconcile import Reconciliation, reconcile_counts  # noqa: PLC0415

    config = operator_config(args.config)
    dsn = os.environ.get(args.postgres_dsn_env) if args.postgres_dsn_env else None
    if args.postgres_dsn_env and not dsn:
        raise CommandFailed(f"lineside reconcile: ${args.postgres_dsn_env} is not set", EXIT_USAGE)
    warehouse = create_warehouse(postgres_dsn=dsn, sqlite_path=args.sqlite)

    async def compare() -> Reconciliation:
        await warehouse.open()
        try:
            return await reconcile_counts(config.store.path, warehouse, config.gateway.id)
        finally:
            await warehouse.close()

    result = asyncio.run(compare())
    if args.json:
        document = reconcile_document(result, config.gateway.id)
        print_json(document)
    else:
        print(format_reconcile(result, config.gateway.id))
    if result.differences:
        print(f"{len(result.differences)} bucket(s) differ", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def add_shelf_life(commands: SubCommands) -> None:
    """``lineside shelf-life``."""
    shelf = commands.add_parser(
        "shelf-life", help="product nearing its use-by or due to be frozen down"
    )
    shelf.add_argument("--config", "-c", type=Path, required=True, help="config file")
    shelf.add_argument("--within-days", type=int, default=2, help="how close to the use-by")
    shelf.set_defaults(handler=_cmd_shelf_life)


def add_report(commands: SubCommands) -> None:
    """``lineside report``."""
    report = commands.add_parser("report", help="print the report of a production run")
    report.add_argument("run", help="run number")
    add_gateway_target(report, warehouse=True)
    add_warehouse_target(report)
    add_output_options(report, "also every ℮ batch and every alert transition")
    report.set_defaults(handler=_cmd_report)


def add_reconcile(commands: SubCommands) -> None:
    """``lineside reconcile``."""
    rec = commands.add_parser(
        "reconcile", help="compare this gateway's counts with the warehouse's"
    )
    rec.add_argument("--config", "-c", type=Path, required=True, help="gateway config file")
    rec.add_argument("--postgres-dsn-env", metavar="VAR", help="env var with the warehouse DSN")
    rec.add_argument("--sqlite", type=Path, default=None, help="warehouse SQLite file instead")
    rec.add_argument(
        "--json", action="store_true", help="one JSON document on stdout (docs/command-output.md)"
    )
    rec.set_defaults(handler=_cmd_reconcile)
