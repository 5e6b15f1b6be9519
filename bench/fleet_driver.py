"""The fleet bench's simulated gateways, in a process of their own (its CPU is theirs).

Two modes, both on :class:`bench.fleet_gateways.Fleet` (real stores, outboxes and uplinks):

* ``fill --gateways N --records R --directory D``: every gateway commits ``R`` records to its
  store while its uplink has no broker to reach (a port nothing listens on), so everything
  stays in the outboxes: a backlog, as after an outage. Prints one JSON line and exits.
* ``drain --gateways N --directory D --broker-port P``: a JSON-line peer
  (:class:`bench.common.JsonPeer`). Commands: ``go`` (open the stores, start the uplinks:
  the backlog drains), ``progress`` (records acknowledged and batches resent so far, cheap:
  in-memory counters), ``finish`` (count what is left in the outboxes, stop the uplinks and
  close the stores).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import free_port
from bench.fleet_gateways import Fleet, FleetSpec

PREFIX = "bench"


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _spec(args: argparse.Namespace, broker_port: int) -> FleetSpec:
    return FleetSpec(
        gateways=args.gateways,
        sites=max(1, args.gateways // 10),
        broker_port=broker_port,
        batch_records=args.batch_records,
        window=args.window,
        ack_timeout_s=args.ack_timeout,
        ack_timeout_max_s=max(args.ack_timeout, 120.0),
        prefix=PREFIX,
    )


async def fill(args: argparse.Namespace) -> dict[str, Any]:
    """Commit the backlog to every store; the uplinks find no broker meanwhile."""
    started = time.monotonic()
    async with Fleet(_spec(args, free_port()), args.directory) as fleet:
        await fleet.produce(args.records)
        produced = fleet.produced()
        depth = await fleet.outbox_depth()
    return {"produced": produced, "queued": depth, "seconds": time.monotonic() - started}


async def drain(args: argparse.Namespace) -> None:
    """Answer ``go``, ``progress`` and ``finish`` until stdin closes."""
    spec = _spec(args, args.broker_port)
    fleet: Fleet | None = None
    _say({"ready": True})
    async with contextlib.AsyncExitStack() as stack:
        while line := await asyncio.to_thread(sys.stdin.readline):
            command = json.loads(line).get("cmd")
            if command == "go" and fleet is None:
                fleet = await stack.enter_async_context(Fleet(spec, args.directory))
                _say({"gateways": len(fleet.gateways)})
            elif command == "progress" and fleet is not None:
                _say({"delivered": fleet.delivered(), "resent": fleet.resent()})
            elif command == "finish" and fleet is not None:
                depth = await fleet.outbox_depth()
                delivered, resent = fleet.delivered(), fleet.resent()
                await stack.aclose()
                fleet = None
                _say({"depth": depth, "delivered": delivered, "resent": resent})
            else:
                _say({"error": f"unexpected command {command!r}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_driver", description=__doc__)
    parser.add_argument("mode", choices=["fill", "drain"])
    parser.add_argument("--gateways", type=int, required=True)
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--records", type=int, default=0, help="per gateway (fill)")
    parser.add_argument("--broker-port", type=int, default=0, help="the broker (drain)")
    parser.add_argument("--batch-records", type=int, default=500)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--ack-timeout", type=float, default=10.0, help="seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.mode == "fill":
        _say(asyncio.run(fill(args)))
    else:
        asyncio.run(drain(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
