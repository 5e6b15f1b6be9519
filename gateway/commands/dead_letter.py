"""``lineside dead-letter``: the records the warehouse refused (the sync quarantine)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from gateway import api
from gateway.commands.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    SubCommands,
    add_gateway_target,
    control_socket,
    printable,
    send_control,
)


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


def _cmd_dead_letter(args: argparse.Namespace) -> int:
    path = control_socket(args)
    if args.action == "list":
        request = api.DeadLetterList.unchecked(limit=args.limit, after=args.after or 0)
        answer = send_control(path, request.wire())
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
    if args.action == "show":
        answer = send_control(path, api.DeadLetterShow.unchecked(seq=args.seq).wire())
        entry = answer.get("record") or {}
        print(f"seq          {entry.get('seq')}")
        print(f"stream       {printable(entry.get('stream'))}")
        print(f"quarantined  {_when(entry.get('ts_us'))}")
        print(f"reason       {printable(entry.get('reason'))}")
        data = answer.get("data")
        shown = json.dumps(data, indent=2, sort_keys=True) if data is not None else "(gone)"
        print(f"record       {shown}")
        return EXIT_OK
    answer = send_control(
        path,
        api.DeadLetterRequeue.unchecked(
            seqs=_seq_args(args.seqs), reason=args.reason, operator=args.operator
        ).wire(),
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
