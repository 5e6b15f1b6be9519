"""``lineside dead-letter``: the records the warehouse refused (the sync quarantine)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import api
from gateway.commands.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    SubCommands,
    add_gateway_target,
    control_socket,
    operator_config,
    printable,
)

MAX_RECORDS = 1000
"""At most this many records a page, as the gateway answers (gateway/control_commands.py)."""


def _seq_args(values: Sequence[str]) -> list[int | list[int]]:
    """``SEQ`` and ``FIRST-LAST`` arguments as the control request's ``seqs``."""
    seqs: list[int | list[int]] = []
    for value in values:
        first, dash, last = value.partition("-")
        try:
            if dash:
                seqs.append([int(first), int(last)])
            else:
                seqs.append(int(value))
        except ValueError:
            raise CommandFailed(
                f"lineside dead-letter: {printable(value)!s} is not a sequence number or a "
                "FIRST-LAST range",
                EXIT_USAGE,
            ) from None
    return seqs


def _when(ts_us: object) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    if not isinstance(ts_us, int) or ts_us <= 0:
        return "-"
    return datetime.fromtimestamp(ts_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


_STORE_ACTIONS = ("list", "show")
"""What ``dead-letter`` can read from a stopped gateway's store; re-queueing writes the
outbox, which only the running gateway's single writer may do
(gateway/store/outbox.py)."""


def _unreachable(args: argparse.Namespace, path: Path, exc: BaseException) -> CommandFailed:
    reason = printable(exc) or type(exc).__name__
    if args.action in _STORE_ACTIONS:
        then = "with --config, list and show read a stopped gateway's store"
    else:
        then = "requeue is done by the running gateway: start it (`lineside run`), then requeue"
    return CommandFailed(
        f"lineside dead-letter {args.action}: cannot reach the gateway at {path}: {reason}; {then}"
    )


def _ask(args: argparse.Namespace, request: api.Request) -> dict[str, Any]:
    """The gateway's answer; for list and show with ``--config`` and no gateway answering
    (it is stopped), the same answer read from its store."""
    from gateway.control import ControlClientError, send_command  # noqa: PLC0415

    path = control_socket(args)
    try:
        answer = asyncio.run(send_command(path, request.wire()))
    except (OSError, TimeoutError, ControlClientError) as exc:
        if args.config is None or args.action not in _STORE_ACTIONS:
            raise _unreachable(args, path, exc) from None
        answer = _from_store(args, operator_config(args.config).store.path)
        print(f"lineside dead-letter: no gateway at {path}; read from its store", file=sys.stderr)
    if not answer.get("ok"):
        raise CommandFailed(f"lineside: refused: {printable(answer.get('error'))}")
    return answer


def _from_store(args: argparse.Namespace, store_path: Path) -> dict[str, Any]:
    """What the gateway would answer, read through a read-only connection."""
    import sqlite3  # noqa: PLC0415

    from gateway.store import outbox  # noqa: PLC0415

    try:
        db = sqlite3.connect(f"{store_path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            if args.action == "list":
                limit = max(1, min(args.limit, MAX_RECORDS))
                total = db.execute(outbox.QUARANTINE_COUNT).fetchone()[0]
                page = db.execute(outbox.QUARANTINE_PAGE, (args.after or 0, limit + 1)).fetchall()
                records = [dataclasses.asdict(outbox.quarantined_entry(r)) for r in page]
                return {
                    "ok": True,
                    "total": total,
                    "records": records[:limit],
                    "more": len(page) > limit,
                }
            row = db.execute(outbox.QUARANTINE_ENTRY, (args.seq,)).fetchone()
            if row is None:
                return {"ok": False, "error": f"record {args.seq} is not in the quarantine"}
            entry = outbox.quarantined_entry(row)
            query = outbox.record_query(entry.stream)
            found = db.execute(query, (args.seq,)).fetchone() if query else None
            data = outbox.record_data(entry.stream, found) if found else None
            return {"ok": True, "record": dataclasses.asdict(entry), "data": data}
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise CommandFailed(
            f"lineside dead-letter {args.action}: no gateway answers and its store cannot be "
            f"read: {store_path}: {printable(exc)}"
        ) from None


def _cmd_list(args: argparse.Namespace) -> int:
    answer = _ask(args, api.DeadLetterList.unchecked(limit=args.limit, after=args.after or 0))
    records = answer.get("records") or []
    for entry in records:
        print(
            f"{entry.get('seq'):>12}  {printable(entry.get('stream')):<16} "
            f"{_when(entry.get('ts_us'))}  {printable(entry.get('reason'))}"
        )
    total = answer.get("total", len(records))
    if not total:
        print("the sync quarantine is empty")
    else:
        more = f"; more after {records[-1].get('seq')} (--after)" if answer.get("more") else ""
        print(f"{total} record(s) in the sync quarantine{more}")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    answer = _ask(args, api.DeadLetterShow.unchecked(seq=args.seq))
    entry = answer.get("record") or {}
    print(f"seq          {entry.get('seq')}")
    print(f"stream       {printable(entry.get('stream'))}")
    print(f"quarantined  {_when(entry.get('ts_us'))}")
    print(f"reason       {printable(entry.get('reason'))}")
    data = answer.get("data")
    shown = (
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
        if data is not None
        else "(gone)"
    )
    print(f"record       {shown}")
    return EXIT_OK


def _cmd_dead_letter(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _cmd_list(args)
    if args.action == "show":
        return _cmd_show(args)
    answer = _ask(
        args,
        api.DeadLetterRequeue.unchecked(
            seqs=_seq_args(args.seqs), reason=args.reason, operator=args.operator
        ),
    )
    print(f"re-queued {answer.get('requeued')} record(s): {printable(answer.get('seqs'))}")
    for why, seqs in (answer.get("not_requeued") or {}).items():
        print(f"not re-queued ({printable(why)}): {printable(seqs)}")
    print(f"{answer.get('left')} record(s) left in the sync quarantine")
    return EXIT_OK


def add_dead_letter(commands: SubCommands) -> None:
    """``lineside dead-letter list|show|requeue``."""
    dead = commands.add_parser(
        "dead-letter",
        help="records the warehouse refused (the sync quarantine): list, show, re-queue",
    )
    dead_actions = dead.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = dead_actions.add_parser("list", help="list the quarantined records")
    add_gateway_target(listing)
    listing.add_argument("--after", type=int, default=0, help="only those after this seq")
    listing.add_argument("--limit", type=int, default=200, help="at most this many (1000)")
    show = dead_actions.add_parser("show", help="one quarantined record, with its data")
    show.add_argument("seq", type=int, help="its sequence number")
    add_gateway_target(show)
    requeue = dead_actions.add_parser(
        "requeue", help="send quarantined records again (recorded with who and why)"
    )
    requeue.add_argument("seqs", nargs="+", metavar="SEQ", help="sequence numbers or FIRST-LAST")
    add_gateway_target(requeue)
    requeue.add_argument("--reason", required=True, help="why they can go now (recorded)")
    requeue.add_argument("--operator", required=True, help="who re-queues them (recorded)")
    dead.set_defaults(handler=_cmd_dead_letter)
