"""``python -m bench.fleet_scale``: warehouse records/s with 1, 2, 3 ingest instances, for 20 and
200 simulated gateways, in one run (also the ``fleet`` phase of ``make bench``).

For each number of gateways, a backlog is committed once to their real stores while they
cannot reach a broker (:mod:`bench.fleet_driver` ``fill``), then, for each number of ingest
instances, a copy of those stores drains into a fresh PostgreSQL database through a mosquitto
spawned for the run and ``k`` real ``lineside ingest`` processes sharing one subscription
(:mod:`bench.fleet_ingest`). The rate is what the warehouse saw: records over the span from
its first to its last commit. CPU time is read from ``/proc`` for every party over the drain:
the ingest instances, the PostgreSQL backends serving them and the server's WAL writer,
checkpointer and background writer, mosquitto, and the simulated gateways' process. The bare
reference inserts the same rows with bare psycopg (:mod:`bench.fleet_bare`). Results:
``fleet-latest.{json,md}`` (:mod:`bench.fleet_report`); docs/scale-out.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import fleet_pg, phases
from bench.common import CLOCK_TICKS, BenchError, JsonPeer, cpu_seconds, wait_until
from bench.fleet_bare import insert_again
from bench.fleet_ingest import POOL_SIZE, IngestGroup
from bench.fleet_report import analyse, markdown
from bench.phases import Phase, broker_pid, run_json
from tests.support.mosquitto import Mosquitto

RESULTS = Path(__file__).resolve().parent / "results"
BROKER_CONFIG = "max_queued_messages 100000\nmax_inflight_messages 100"
"""The broker queues for the share group while its instances are busy: mosquitto's default
queue of 1,000 messages per client would drop QoS 1 batches of a 200-gateway backlog (each
gateway has 4 in flight)."""


@dataclass(frozen=True)
class FleetPlan:
    """What one run measures (from :class:`bench.phases.Sizes`: :func:`plan_of`)."""

    gateway_counts: tuple[int, ...]
    instance_counts: tuple[int, ...]
    records: int
    """The backlog of each drain, spread evenly over the gateways."""
    batch_records: int
    """The uplinks' batch size (the gateway's default is 500)."""
    window: int = 4
    """Batches in flight per gateway (the gateway's default)."""
    pool_size: int = POOL_SIZE
    """PostgreSQL connections per ingest instance."""
    drain_timeout_s: float = 300.0
    ack_timeout_s: float = 300.0
    """The uplinks' ack timeout. The gateway's is 10 s (doubling to 120 s): in a drain every
    gateway has its whole window in flight at once, and a batch that waits longer than
    that in the broker's queue is sent again, a duplicate that costs the ingest as much as
    a new one. This measures what the instances can store, so nothing is resent here;
    docs/scale-out.md says what resends do to a catch-up."""


def _log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] fleet: {message}", file=sys.stderr, flush=True)


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = CLOCK_TICKS
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def _driver(mode: str, plan: FleetPlan, gateways: int, stores: Path, *extra: str) -> list[str]:
    """The arguments of ``python -m bench.fleet_driver MODE ...``."""
    return [
        "bench.fleet_driver", mode, "--gateways", str(gateways), "--directory", str(stores),
        "--batch-records", str(plan.batch_records), "--window", str(plan.window),
        "--ack-timeout", str(plan.ack_timeout_s), *extra,
    ]  # fmt: skip


def _fill(plan: FleetPlan, gateways: int, folder: Path) -> dict[str, Any]:
    """Commit the backlog to ``gateways`` stores under ``folder``."""
    per_gateway = plan.records // gateways
    args = _driver("fill", plan, gateways, folder / "stores", "--records", str(per_gateway))
    result = run_json(args, log=folder / "fill.log")
    if int(result["queued"]) != per_gateway * gateways:
        raise BenchError(f"the backlog was not all queued: {result}")
    return result


def _drain(
    plan: FleetPlan, gateways: int, instances: int, backlog: Path, folder: Path
) -> dict[str, Any]:
    """One drain: a fresh broker and database, ``instances`` ingest processes, a copy of the
    backlog. A broker of its own: the ingest sessions of an earlier drain persist (that is
    their job) and would keep taking their share of the batches while nobody consumes them."""
    folder.mkdir(parents=True)
    shutil.copytree(backlog / "stores", folder / "stores")
    total = plan.records // gateways * gateways
    with (
        Mosquitto(folder / "broker", extra_config=BROKER_CONFIG) as broker,
        fleet_pg.fresh_database() as dsn,
    ):
        args = _driver(
            "drain", plan, gateways, folder / "stores", "--broker-port", str(broker.port)
        )
        with (
            IngestGroup(instances, broker=broker, dsn=dsn, folder=folder) as ingest,
            JsonPeer(args, log=folder / "fleet.log") as fleet,
        ):
            timed = _timed(plan, total, fleet, ingest, dsn, broker)
        window = fleet_pg.commit_window(dsn)
        drained = {
            "gateways": gateways,
            "instances": instances,
            "backlog": total,
            "stored": window.records,
            "duplicate_keys": fleet_pg.duplicate_keys(dsn),
            "records_per_s": window.per_s,
            "commit_span_s": window.seconds,
            "transactions": window.transactions,
            **timed,
            "bytes_on_disk": fleet_pg.bytes_on_disk(dsn) - timed["empty_schema_bytes"],
        }
        if instances == plan.instance_counts[0]:
            drained["bare"] = [
                asdict(
                    insert_again(dsn, batch_size=plan.batch_records, connections=k * plan.pool_size)
                )
                for k in plan.instance_counts
            ]
    return drained


def _timed(
    plan: FleetPlan,
    total: int,
    fleet: JsonPeer,
    ingest: IngestGroup,
    dsn: str,
    broker: Mosquitto,
) -> dict[str, Any]:
    """Start the uplinks, wait until the warehouse acknowledged all ``total`` records, stop
    them; the wall time, every party's CPU, the WAL written, the gateways' counts."""
    empty_bytes = fleet_pg.bytes_on_disk(dsn)
    wal_before = fleet_pg.wal_position(dsn)
    before = _cpu(ingest, dsn, broker, fleet.pid)
    started = time.monotonic()
    fleet.call(cmd="go")

    def acknowledged() -> bool:
        return int(fleet.call(cmd="progress")["delivered"]) >= total

    wait_until(
        acknowledged,
        timeout=plan.drain_timeout_s,
        what=f"the backlog to drain into {len(ingest.instances)} ingest instance(s)",
        interval=0.25,
    )
    seconds = time.monotonic() - started
    after = _cpu(ingest, dsn, broker, fleet.pid)
    wal_after = fleet_pg.wal_position(dsn)
    finish = fleet.call(cmd="finish", timeout=120)
    shares = ingest.records()
    return {
        "pool_size": plan.pool_size,
        "left_in_outboxes": int(finish["depth"]),
        "acknowledged": int(finish["delivered"]),
        "batches_resent": int(finish["resent"]),
        "wall_s": seconds,
        "cpu_s": {k: after[k] - before[k] for k in after if k != "instances"},
        "instance_cpu_s": [
            a - b for a, b in zip(after["instances"], before["instances"], strict=True)
        ],
        "wal_bytes": wal_after - wal_before,
        "empty_schema_bytes": empty_bytes,
        "instance_batches": [int(s["batches"]) for s in shares],
        "instance_duplicates": [int(s["duplicates"]) for s in shares],
    }


def _cpu(ingest: IngestGroup, dsn: str, broker: Mosquitto, fleet_pid: int) -> dict[str, Any]:
    """Every party's CPU seconds so far (PostgreSQL's: its processes serving this database,
    and its WAL writer, checkpointer and background writer)."""
    server = fleet_pg.ServerCpu.sample(dsn)
    busy, total = _machine_busy()
    instances = ingest.cpu_seconds()
    return {
        "instances": instances,
        "ingest": sum(instances),
        "postgres_backends": sum(server.backends.values()),
        "postgres_server": sum(server.server.values()),
        "broker": cpu_seconds(broker_pid(broker)),
        "generator": cpu_seconds(fleet_pid),
        "machine_busy": busy,
        "machine_total": total,
    }


def measure(plan: FleetPlan, work: Path) -> dict[str, Any]:
    """Every drain of the plan, the bare references, the analysis; JSON-ready."""
    drains: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    for gateways in plan.gateway_counts:
        backlog = work / f"backlog-{gateways}"
        backlog.mkdir()
        _log(f"{gateways} gateways: committing a backlog of {plan.records:,} records")
        filled = _fill(plan, gateways, backlog)
        _log(f"backlog committed in {filled['seconds']:.1f} s")
        for instances in plan.instance_counts:
            _log(f"{gateways} gateways → {instances} ingest instance(s)")
            folder = work / f"drain-{gateways}-{instances}"
            drains.append(_drain(plan, gateways, instances, backlog, folder))
            _log(f"{drains[-1]['records_per_s']:,.0f} records/s")
        shutil.rmtree(backlog)
    with fleet_pg.fresh_database() as dsn:
        settings = fleet_pg.server_settings(dsn)
    load = {"before": load_before, "after": os.getloadavg()[0]}
    return analyse({"plan": asdict(plan), "postgres": settings, "load": load, "drains": drains})


def plan_of(sizes: phases.Sizes) -> FleetPlan:
    """The plan of the ``fleet_*`` sizes (``make bench``'s; the smoke test's with QUICK)."""
    return FleetPlan(
        gateway_counts=tuple(int(n) for n in sizes.fleet_gateways.split(",")),
        instance_counts=tuple(int(n) for n in sizes.fleet_instances.split(",")),
        records=sizes.fleet_records,
        batch_records=sizes.fleet_batch_records,
    )


def as_phase(results: dict[str, Any]) -> Phase:
    """The fleet figures as a ``make bench`` phase (:mod:`bench.report` makes the rows)."""
    phase = Phase()
    for d in results["drains"]:
        key = f"gw{d['gateways']}_i{d['instances']}"
        phase.gateway[f"{key}_records_per_s"] = d["records_per_s"]
        phase.gateway[f"{key}_scaling"] = d["scaling"]
        phase.gateway[f"{key}_ingest_cpu_us"] = d["cpu_us_per_record"]["ingest"]
        phase.gateway[f"{key}_postgres_cpu_us"] = (
            d["cpu_us_per_record"]["postgres_backends"] + d["cpu_us_per_record"]["postgres_server"]
        )
        phase.bare[f"{key}_records_per_s"] = d["bare_records_per_s"]
        phase.counts[f"{key}_backlog"] = d["backlog"]
        phase.counts[f"{key}_stored"] = d["stored"]
        phase.counts[f"{key}_duplicate_keys"] = d["duplicate_keys"]
        phase.counts[f"{key}_left_in_outboxes"] = d["left_in_outboxes"]
        phase.notes.append(
            f"{d['gateways']} gateways, {d['instances']} instance(s): limit: {d['limit']}"
        )
    plan = results["plan"]
    phase.notes.insert(
        0,
        f"a backlog of {plan['records']:,} records per drain in the gateways' real stores, "
        "drained through mosquitto and k `lineside ingest` processes (one share group) into "
        "a fresh PostgreSQL database; bare: psycopg inserting the same rows with the ingest's "
        "statement from k connections; details: `python -m bench.fleet_scale` "
        "(bench/results/fleet-latest.md)",
    )
    return phase


def phase(sizes: phases.Sizes, work: Path) -> Phase:
    """``make bench``'s ``fleet`` phase."""
    folder = work / "fleet"
    folder.mkdir()
    return as_phase(measure(plan_of(sizes), folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--records", type=int, help="backlog per drain")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    plan = plan_of(phases.QUICK if args.quick else phases.Sizes())
    if args.records:
        plan = replace(plan, records=args.records)
    # A SIGTERM ends the run like Ctrl-C: every instance, broker and database is cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="lineside-fleet-"))
    began = time.monotonic()
    try:
        results = measure(plan, work)
    finally:
        if args.keep:
            _log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["run_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["wall_s"] = time.monotonic() - began
    results["quick"] = args.quick
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet-latest.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "fleet-latest.md").write_text(markdown(results))
    _log(f"results in {args.out / 'fleet-latest.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
