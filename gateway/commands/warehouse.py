"""``lineside warehouse``: the central warehouse's own chores (``backfill``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.commands.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    SubCommands,
    print_json,
    printable,
)

if TYPE_CHECKING:
    from sync.ingest.backfill import BackfillSummary


def _progress(summary: BackfillSummary) -> None:
    print(
        f"lineside warehouse backfill: {summary.records} records read,"
        f" {summary.facts} facts added, {summary.unfit} without a fact",
        file=sys.stderr,
        flush=True,
    )


async def _backfill(dsn: str | None, sqlite: Path | None, chunk: int) -> BackfillSummary:
    from sync.ingest.warehouse import create_warehouse  # noqa: PLC0415

    warehouse = create_warehouse(postgres_dsn=dsn, sqlite_path=sqlite)
    # open() upgrades the schema to the newest revision first.
    async with warehouse:
        return await warehouse.backfill(chunk=chunk, progress=_progress)


def _cmd_backfill(args: argparse.Namespace) -> int:
    from sync.ingest.warehouse import WarehouseError  # noqa: PLC0415

    dsn = os.environ.get(args.postgres_dsn_env) if args.postgres_dsn_env else None
    if args.postgres_dsn_env and not dsn:
        raise CommandFailed(
            f"lineside warehouse backfill: ${args.postgres_dsn_env} is not set", EXIT_USAGE
        )
    if args.chunk < 1:
        raise CommandFailed("lineside warehouse backfill: --chunk must be at least 1", EXIT_USAGE)
    try:
        summary = asyncio.run(_backfill(dsn, None if dsn else args.sqlite, args.chunk))
    except WarehouseError as exc:
        raise CommandFailed(f"lineside warehouse backfill: {printable(exc)}") from None
    if args.json:
        print_json({"version": 1, **dataclasses.asdict(summary)})
    else:
        streams = ", ".join(f"{n} {s}" for s, n in sorted(summary.by_stream.items())) or "none"
        print(
            f"{summary.records} records read in {summary.chunks} chunk(s);"
            f" facts added: {summary.facts} ({streams}); without a fact: {summary.unfit}"
        )
    return EXIT_OK


def add_warehouse(commands: SubCommands) -> SubCommands:
    """``lineside warehouse``; its actions, to which other command modules add theirs (each
    action sets its own ``handler``: argparse applies an action's defaults after the
    group's)."""
    warehouse = commands.add_parser("warehouse", help="the central warehouse's schema and data")
    actions = warehouse.add_subparsers(dest="action", required=True)
    add_backfill(actions)
    warehouse.set_defaults(handler=_cmd_warehouse)
    return actions


def add_backfill(actions: SubCommands) -> None:
    """``lineside warehouse backfill``."""
    backfill = actions.add_parser(
        "backfill",
        help="upgrade the schema, then derive every missing typed row from the stored records"
        " (idempotent, resumable)",
    )
    target = backfill.add_mutually_exclusive_group()
    target.add_argument(
        "--postgres-dsn-env",
        metavar="VAR",
        help="environment variable holding the PostgreSQL DSN (default: a SQLite file)",
    )
    target.add_argument(
        "--sqlite",
        type=Path,
        default=Path("var/ingest.db"),
        help="warehouse file without PostgreSQL (as lineside ingest --sqlite)",
    )
    backfill.add_argument(
        "--chunk",
        type=int,
        default=5000,
        metavar="N",
        help="records per transaction (default 5000)",
    )
    backfill.add_argument(
        "--json", action="store_true", help="one JSON document on stdout (docs/command-output.md)"
    )
    backfill.set_defaults(handler=_cmd_backfill)


def _cmd_warehouse(args: argparse.Namespace) -> int:
    # Reached only for an action that set no handler of its own.
    raise CommandFailed(f"lineside warehouse: no handler for {args.action!r}", EXIT_USAGE)
