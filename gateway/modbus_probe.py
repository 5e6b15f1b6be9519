"""``lineside modbus-probe HOST[:PORT]``: read registers once and show them decoded every
way, so the engineer can pick the type and word order that read right
(docs/devices.md, "modbus-probe")."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from gateway.core.codecs.register_views import format_views, tag_fragment, views_as_json
from gateway.core.codecs.registers import DataType, Table, WordOrder
from gateway.core.errors import DeviceError

__all__ = ["add_parser", "parse_target", "run_modbus_probe"]

_DEFAULT_PORT = 502  # MBAP: the registered Modbus/TCP port


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _complain(text: str) -> None:
    sys.stderr.write(f"lineside modbus-probe: {text}\n")


def parse_target(text: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):
        return text.strip("[]"), _DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: the port must be a number 1..65535")
    return host.strip("[]"), int(port)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The sub-command's arguments."""
    probe = commands.add_parser(
        "modbus-probe",
        help="read Modbus registers once and print them as every type in every word order",
    )
    probe.add_argument("target", metavar="HOST[:PORT]", help="device or gateway (port 502)")
    probe.add_argument("--unit", type=int, default=1, help="unit (slave) id (default 1)")
    probe.add_argument("--address", type=int, required=True, help="0-based register address")
    probe.add_argument("--count", type=int, default=2, help="registers to read (default 2)")
    table = probe.add_mutually_exclusive_group()
    table.add_argument("--holding", action="store_true", help="holding registers (default)")
    table.add_argument("--input", action="store_true", help="input registers")
    probe.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    probe.add_argument("--json", action="store_true", help="print JSON instead of a table")
    probe.add_argument(
        "--type", choices=[str(t) for t in DataType], help="the type that reads right"
    )
    probe.add_argument(
        "--order", choices=[str(o) for o in WordOrder], default="ABCD", help="its word order"
    )
    probe.add_argument("--name", default="value", help="tag name for the printed fragment")
    probe.set_defaults(handler=run_modbus_probe)


def run_modbus_probe(args: argparse.Namespace) -> int:
    """Read, print every view (and the picked tag's config); 1 when the read failed."""
    try:
        host, port = parse_target(args.target)
    except ValueError as exc:
        _complain(str(exc))
        return 2
    table = Table.INPUT if args.input else Table.HOLDING
    # pymodbus logs its own "Failed to connect" lines; the one line below says it all.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    from adapters.modbus.probe import read_block  # noqa: PLC0415 - pymodbus only when used

    try:
        words = asyncio.run(
            read_block(
                host,
                port,
                unit=args.unit,
                table=table,
                address=args.address,
                count=args.count,
                timeout_s=args.timeout,
            )
        )
    except (DeviceError, ValueError) as exc:
        _complain(str(exc))
        return 1
    if args.json:
        _say(views_as_json(table, args.address, words))
        return 0
    _say(format_views(table, args.address, words))
    if args.type is not None:
        _say("\n# in the tags = [...] of a [[devices]] of kind modbus_tcp:")
        _say(
            tag_fragment(args.name, table, args.address, DataType(args.type), WordOrder(args.order))
        )
    else:
        _say("\nPick the line that shows the device's value; --type and --order print its tag.")
    return 0
