"""Reading the central warehouse from the command line: ``lineside report RUN --warehouse``
(the same text and ``--json`` as the gateway's own report) and ``lineside warehouse trace``.

Both read through ``central.reader.WarehouseReader`` (imported inside the command, so the
gateway's commands load nothing of the central side). The target is named as for
``lineside ingest``: ``--postgres-dsn-env VAR`` or ``--sqlite PATH``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    SubCommands,
    print_json,
    printable,
)

if TYPE_CHECKING:
    from central.reader import WarehouseReader
    from central.rows import Trace


def add_warehouse_target(command: argparse.ArgumentParser, *, gateway: bool = True) -> None:
    """``--postgres-dsn-env VAR`` / ``--sqlite PATH``, and ``--gateway`` when a run is named."""
    command.add_argument(
        "--postgres-dsn-env",
        metavar="VAR",
        help="environment variable holding the warehouse's PostgreSQL DSN",
    )
    command.add_argument(
        "--sqlite", type=Path, default=None, metavar="PATH", help="the warehouse's SQLite file"
    )
    if gateway:
        command.add_argument(
            "--gateway", default=None, help="the gateway that recorded the run (when several did)"
        )


def _open(args: argparse.Namespace, command: str) -> WarehouseReader:
    from central.errors import WarehouseReadError  # noqa: PLC0415
    from central.reader import WarehouseReader  # noqa: PLC0415

    if args.postgres_dsn_env:
        target = os.environ.get(args.postgres_dsn_env)
        if not target:
            raise CommandFailed(f"{command}: ${args.postgres_dsn_env} is not set", EXIT_USAGE)
    elif args.sqlite is not None:
        target = str(args.sqlite)
    else:
        raise CommandFailed(
            f"{command}: name the warehouse: --postgres-dsn-env or --sqlite", EXIT_USAGE
        )
    try:
        return WarehouseReader.open(target)
    except WarehouseReadError as exc:
        raise CommandFailed(f"{command}: {printable(exc)}") from None


def report_from_warehouse(args: argparse.Namespace) -> int:
    """``lineside report RUN --warehouse``: the gateway's report, from the warehouse."""
    from central.errors import CentralError  # noqa: PLC0415
    from gateway.report_output import (  # noqa: PLC0415
        SUMMARY_HINT,
        format_full,
        format_summary,
        report_document,
    )

    with _open(args, "lineside report") as reader:
        try:
            parts = reader.run_report_parts(args.run, gateway=args.gateway)
        except CentralError as exc:
            print(f"lineside report: {printable(exc)}", file=sys.stderr)
            return EXIT_FAILURE
    document = report_document(parts.report, parts.losses, parts.alerts, with_transitions=args.all)
    if args.json:
        print_json(document)
    else:
        text = format_summary(document, printable=printable)
        print(text + (format_full(parts.report) if args.all else SUMMARY_HINT))
    return EXIT_OK


def trace_document(trace: Trace) -> dict[str, Any]:
    """The ``--json`` document of a trace (version 1): the Trace's fields."""
    return {"version": 1, **dataclasses.asdict(trace)}


def format_trace(trace: Trace) -> str:
    """A trace as text: per run its batch codes, products, and counts, then the labels."""
    out = [f"{trace.kind} {printable(trace.key)}: {len(trace.runs)} run(s); batch codes "
           f"{', '.join(printable(c) for c in trace.batch_codes) or '-'}"]  # fmt: skip
    for traced in trace.runs:
        run = traced.run
        out.append(
            f"  {printable(run.gateway)} {printable(run.run_number)}  line {printable(run.line)}"
            f"  {printable(run.status)}  products {', '.join(map(printable, traced.products))}"
            f"  packs {len(traced.packs)}  labels {len(traced.labels)}"
            f"  temperatures {len(traced.temperatures)}"
        )
        for label in traced.labels if trace.kind == "serial" else ():
            out.append(
                f"    {label.ts:%Y-%m-%d %H:%M:%S}  GTIN {printable(label.gtin or '-')}"
                f"  batch {printable(label.batch or '-')}  packed {label.pack_date or '-'}"
                f"  use-by {label.use_by or '-'}"
            )
    for label in trace.unmatched_labels:
        out.append(f"  not on a run: {printable(label.gateway)} {label.ts:%Y-%m-%d %H:%M:%S}")
    return "\n".join(out)


def _cmd_trace(args: argparse.Namespace) -> int:
    from central.errors import CentralError  # noqa: PLC0415

    with _open(args, "lineside warehouse trace") as reader:
        try:
            found = (
                reader.trace_batch(args.batch)
                if args.batch is not None
                else reader.trace_serial(args.serial)
            )
        except CentralError as exc:
            print(f"lineside warehouse trace: {printable(exc)}", file=sys.stderr)
            return EXIT_FAILURE
    if args.json:
        print_json(trace_document(found))
    else:
        print(format_trace(found))
    return EXIT_OK


def add_warehouse_read(actions: SubCommands) -> None:
    """``lineside warehouse trace``, added to the ``warehouse`` group's sub-commands."""
    trace = actions.add_parser(
        "trace", help="a batch code to its runs, packs, labels and temperatures, or a serial back"
    )
    key = trace.add_mutually_exclusive_group(required=True)
    key.add_argument("--batch", metavar="CODE", help="a raw-material batch code")
    key.add_argument("--serial", metavar="S", help="a label's GS1 serial (21)")
    add_warehouse_target(trace, gateway=False)
    trace.add_argument(
        "--json", action="store_true", help="one JSON document on stdout (docs/command-output.md)"
    )
    trace.set_defaults(handler=_cmd_trace)
