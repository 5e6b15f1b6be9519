"""``python -m bench.fleet_gateways``: load a real ingest with a fleet of simulated gateways.

Prints one line a second (records produced, delivered, still in the outboxes, batches resent)
and a summary with the generator's own CPU time, threads and descriptors (docs/fleet-load.md).
Over HTTPS, ``--ingest-tokens FILE`` mints a token per simulated gateway and writes their
hashes to FILE, the ingest's ``--gateway-tokens`` file (it reloads it when it changes). Over
MQTT, ``--credentials DIR`` gives each gateway its own broker user and ack key, for a broker
running the shipped ACL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.fleet_credentials import fleet_credentials, fleet_tokens, write_ack_keys
from bench.fleet_gateways import Fleet, FleetSpec
from sync.broker_auth import write_password_file
from sync.ingest.auth import hash_token, write_tokens


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.fleet_gateways", description=__doc__)
    p.add_argument("--gateways", type=int, default=20)
    p.add_argument("--sites", type=int, default=1)
    p.add_argument("--rate", type=float, default=20.0, help="records/s per gateway; 0: flat out")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of producing")
    p.add_argument("--records", type=int, help="records per gateway (default: rate x duration)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--broker", type=_host_port, metavar="HOST:PORT", help="MQTT transport")
    target.add_argument("--ingest-url", metavar="URL", help="HTTPS transport: .../v1/ingest")
    p.add_argument("--ca-file", type=Path, help="CA of the broker's or the ingest's certificate")
    p.add_argument("--ingest-tokens", type=Path, metavar="FILE", help="write the ingest's tokens")
    p.add_argument(
        "--credentials",
        type=Path,
        metavar="DIR",
        help="MQTT: a broker user (the gateway id) and an ack key per gateway, written to "
        "DIR/gateways.passwd (mosquitto password_file lines) and DIR/ack-keys (--ack-keys)",
    )
    p.add_argument("--batch-records", type=int, default=500)
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument("--directory", type=Path, help="where the stores go (default: a temp dir)")
    p.add_argument("--prefix", default="fleet", help="gateway ids are PREFIX-gw0001...")
    return p


def spec_from(args: argparse.Namespace) -> FleetSpec:
    rate = args.rate
    common = {
        "gateways": args.gateways,
        "sites": args.sites,
        "records_per_s": rate,
        "batch_records": args.batch_records,
        "ca_file": args.ca_file,
        "prefix": args.prefix,
    }
    if args.broker is not None:
        host, port = args.broker
        spec = FleetSpec(broker_host=host, broker_port=port, **common)
        if args.credentials is None:
            return spec
        spec = fleet_credentials(spec)
        write_password_file(args.credentials / "gateways.passwd", spec.mqtt_passwords)
        write_ack_keys(args.credentials / "ack-keys", spec.ack_keys)
        return spec
    spec = FleetSpec(transport="https", ingest_url=args.ingest_url, **common)
    if args.ingest_tokens is None:
        return spec
    tokens = fleet_tokens(spec)
    write_tokens(args.ingest_tokens, {gw: hash_token(t) for gw, t in tokens.items()})
    return FleetSpec(transport="https", ingest_url=args.ingest_url, tokens=tokens, **common)


async def run(spec: FleetSpec, directory: Path, count: int, drain_timeout_s: float) -> int:
    opening = time.monotonic()
    async with Fleet(spec, directory) as fleet:
        started = time.monotonic()
        cpu_started = _cpu_s()
        print(f"{spec.gateways} gateways started in {started - opening:.1f} s", flush=True)
        producing = asyncio.create_task(fleet.produce(count), name="fleet.produce")
        while not producing.done():
            await asyncio.sleep(1.0)
            await _report(fleet, started)
        await producing
        produced_s = time.monotonic() - started
        cpu_s = _cpu_s() - cpu_started
        drained = False
        deadline = time.monotonic() + drain_timeout_s
        while not drained and time.monotonic() < deadline:
            drained = await fleet.wait_drained(timeout_s=1.0)
            await _report(fleet, started)
        footprint = Footprint.now()
        cpu_total_s = _cpu_s() - cpu_started
        drained_s = time.monotonic() - started
        stopping = time.monotonic()
    stopped_s = time.monotonic() - stopping
    delivered = fleet.delivered()
    print(
        f"produced {fleet.produced()} records in {produced_s:.1f} s "
        f"({fleet.produced() / produced_s:.0f} records/s), "
        f"{'drained' if drained else 'NOT drained'} after {drained_s:.1f} s; "
        f"generator CPU {cpu_s:.1f} s while producing, {cpu_total_s:.1f} s until drained "
        f"({1e6 * cpu_total_s / max(1, delivered):.0f} us per record delivered); "
        f"{footprint}; stopped in {stopped_s:.1f} s",
        flush=True,
    )
    return 0 if drained else 1


async def _report(fleet: Fleet, started: float) -> None:
    print(
        f"t={time.monotonic() - started:6.1f}s produced={fleet.produced()} "
        f"delivered={fleet.delivered()} backlog={await fleet.outbox_depth()} "
        f"resent={fleet.resent()}",
        flush=True,
    )


@dataclass(frozen=True, slots=True)
class Footprint:
    """This process's threads, open descriptors and peak memory."""

    threads: int
    descriptors: int
    peak_rss_mb: float

    @classmethod
    def now(cls) -> Footprint:
        return cls(
            threads=threading.active_count(),
            descriptors=len(os.listdir("/proc/self/fd")),
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )

    def __str__(self) -> str:
        return (
            f"{self.threads} threads, {self.descriptors} open descriptors, "
            f"peak RSS {self.peak_rss_mb:.0f} MiB"
        )


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spec = spec_from(args)
    with contextlib.ExitStack() as stack:
        directory = args.directory or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        with contextlib.suppress(KeyboardInterrupt):
            count = args.records or max(1, round(spec.records_per_s * args.duration))
            return asyncio.run(run(spec, directory, count, args.drain_timeout))
    return 130
