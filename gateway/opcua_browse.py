"""``lineside browse opc.tcp://HOST:PORT``: list a server's variables (node id, path, data
type, EngineeringUnits), recognise OPC 40200 weighing devices and print the ``[[devices]]``
fragment to paste (docs/devices.md, "browse")."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway.core.errors import ConfigError, DeviceError

__all__ = ["add_parser", "run_browse"]


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _complain(text: str) -> None:
    sys.stderr.write(f"lineside browse: {text}\n")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The sub-command's arguments."""
    browse = commands.add_parser(
        "browse",
        help="list an OPC UA server's variables and print a config fragment for its devices",
    )
    browse.add_argument("endpoint", nargs="?", help="opc.tcp://host:port/path")
    browse.add_argument("--depth", type=int, default=6, help="levels below Objects (default 6)")
    browse.add_argument(
        "--max-nodes", type=int, default=2000, help="stop after this many nodes (default 2000)"
    )
    browse.add_argument("--timeout", type=float, default=5.0, help="per request, s (default 5)")
    browse.add_argument("--line", default="L1", help="line id for the fragment (default L1)")
    browse.add_argument("--json", action="store_true", help="print JSON instead of text")
    browse.add_argument(
        "--config",
        "-c",
        type=Path,
        help="take the endpoint, security and login of --device from this config",
    )
    browse.add_argument("--device", help="the OPC UA device of --config to browse")
    browse.set_defaults(handler=run_browse)


def run_browse(args: argparse.Namespace) -> int:
    """Browse, print; 1 when the server could not be browsed, 2/3 for bad arguments/config."""
    from adapters.opcua.browse import browse_server  # noqa: PLC0415 - asyncua only when used
    from adapters.opcua.browse_fragment import (  # noqa: PLC0415
        browse_json,
        find_devices,
        format_fragments,
        format_listing,
    )
    from gateway.config import OpcUaDevice, load_config  # noqa: PLC0415
    from gateway.doctor.diagnose import credentials_environ  # noqa: PLC0415

    device = None
    if args.config is not None:
        try:  # the device's login is a secret: found where `lineside doctor` finds it
            config = load_config(args.config, environ=credentials_environ())
        except ConfigError as exc:
            _complain(str(exc))
            return 3
        found = [d for d in config.devices if d.id == args.device]
        if not found or not isinstance(found[0], OpcUaDevice):
            _complain(f"{args.config} has no OPC UA device {args.device!r} (give --device)")
            return 2
        device = found[0]
    endpoint = args.endpoint or (device.endpoint if device is not None else None)
    if not endpoint or not endpoint.startswith("opc.tcp://"):
        _complain("give an endpoint opc.tcp://host:port/path (or --config and --device)")
        return 2
    if args.depth < 1 or args.max_nodes < 1:
        _complain("--depth and --max-nodes must be at least 1")
        return 2
    try:
        result = asyncio.run(
            browse_server(
                endpoint,
                depth=args.depth,
                max_nodes=args.max_nodes,
                timeout_s=args.timeout,
                device=device,
            )
        )
    except DeviceError as exc:
        _complain(str(exc))
        return 1
    devices = find_devices(result.nodes)
    if args.json:
        _say(browse_json(result.nodes, devices, endpoint, args.line, truncated=result.truncated))
        return 0
    _say(format_listing(result.nodes, truncated=result.truncated))
    if devices:
        _say("\n# ---- paste after the [[lines]] of your config (docs/devices.md) ----\n")
        _say(format_fragments(devices, endpoint, args.line))
    else:
        _say("\nNo checkweigher, label scanner or temperature was recognised by name or type.")
    return 0
