"""``make bench`` / ``python -m bench``: run the phases, write ``latest.json`` and ``latest.md``.

Phases (each in :mod:`bench.phases`, each with its own peers and gateway processes):

1. ``ingest``: OPC UA readings/s end to end and CPU per reading, vs a bare asyncua client.
2. ``modbus``: Modbus tags/s polled and stored, vs bare pymodbus reads on the same grid.
3. ``store``: rows/s through the store path, vs bare sqlite3 ``executemany`` in WAL.
4. ``drain``: a buffered backlog to the warehouse over MQTT and HTTPS, vs bare paho QoS 1.
5. + 6. ``latency``: below-T2 pack to andon p50/p99, and RSS over the run, under load.
7. ``startup``: process start to READY=1.
8. ``fleet``: warehouse records/s with 1, 2, 3 ingest instances for 20 and 200 simulated
   gateways, vs bare psycopg (:mod:`bench.fleet_scale`).
9. ``delivery``: end to end (OPC UA → gateway → MQTT → ingest → warehouse), CPU per
   delivered record vs a bare asyncua → paho relay, and sustained delivery at 5,000, 10,000
   and 14,000 records/s on the default settings (:mod:`bench.delivery`).

Options: ``--quick`` (tiny sizes, the test suite's smoke run), ``--only ingest,store``,
``--set memory_s=600`` (any :class:`bench.phases.Sizes` field), ``--out DIR`` (default
``bench/results``), ``--keep`` (leave the work folder with every log and database).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import delivery, fleet_scale, phases, report
from bench.common import REPO

RESULTS = REPO / "bench" / "results"
OPTIMISATIONS = REPO / "bench" / "optimisations.json"
"""Before/after figures of what profiling found and what was fixed (kept by hand)."""

PHASES: dict[str, Callable[[phases.Sizes, Path], phases.Phase]] = {
    "ingest": phases.ingest,
    "modbus": phases.modbus,
    "store": phases.store,
    "drain": phases.drain,
    "latency": phases.latency_memory,
    "startup": phases.startup,
    "fleet": fleet_scale.phase,
    "delivery": delivery.phase,
}
LIBRARIES = ("asyncua", "pymodbus", "paho-mqtt", "aiosqlite", "httpx", "uvicorn", "pydantic")
BUSY_LOAD = 0.5
"""A 1-minute load average above this before the run means someone else was using the CPU."""


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    try:
        mosquitto = subprocess.run(
            ["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True, check=False, timeout=5
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        mosquitto = "mosquitto ?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_kib / 1024 / 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "mosquitto": mosquitto.replace("version ", ""),
        "libraries": {name: importlib.metadata.version(name) for name in LIBRARIES},
    }


def _sizes(base: phases.Sizes, settings: list[str]) -> phases.Sizes:
    fields = {f.name: f for f in dataclasses.fields(base)}
    changes: dict[str, Any] = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in fields:
            raise SystemExit(f"unknown size {name!r}; one of {', '.join(fields)}")
        kind = type(getattr(base, name))
        changes[name] = kind(value)
    return dataclasses.replace(base, **changes)


def run(sizes: phases.Sizes, selected: list[str], work: Path, *, quick: bool) -> dict[str, Any]:
    """Run the selected phases and return the results (rows included)."""
    started = time.monotonic()
    results: dict[str, Any] = {
        "version": 1,
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "machine": machine(),
        "sizes": dataclasses.asdict(sizes),
        "load": {"before": list(os.getloadavg())},
        "phases": {},
    }
    for name in selected:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        phase_started = time.monotonic()
        try:
            outcome: dict[str, Any] = PHASES[name](sizes, work).as_dict()
        except Exception as exc:  # one failed phase must not hide the others' figures
            traceback.print_exc()
            outcome = {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
        outcome["seconds"] = time.monotonic() - phase_started
        results["phases"][name] = outcome
        print(f"bench: {name} done in {outcome['seconds']:.0f} s", file=sys.stderr, flush=True)
    results["duration_s"] = time.monotonic() - started
    results["load"]["after"] = list(os.getloadavg())
    if results["load"]["before"][0] > BUSY_LOAD:
        results["load"]["note"] = (
            "The machine was not idle when the run started (other work, or an earlier "
            "run's load still decaying): absolute figures may be lower than on a quiet box; "
            "the ratios, both sides measured in the same run, are the point."
        )
    results["rows"] = [report.as_json(row) for row in report.rows(results)]
    results["goals"] = {row["key"]: row["met"] for row in results["rows"] if row["met"] is not None}
    if OPTIMISATIONS.exists() and not quick:  # a smoke run's figures compare with nothing
        results["optimisations"] = json.loads(OPTIMISATIONS.read_text())
    return results


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, write the results; 1 if a phase failed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", default="", help=f"comma-separated: {', '.join(PHASES)}")
    parser.add_argument("--set", action="append", default=[], metavar="SIZE=VALUE")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    selected = [p for p in args.only.split(",") if p] or list(PHASES)
    unknown = [p for p in selected if p not in PHASES]
    if unknown:
        parser.error(f"unknown phase(s) {unknown}; choose from {list(PHASES)}")
    sizes = _sizes(phases.QUICK if args.quick else phases.Sizes(), args.set)
    work = Path(tempfile.mkdtemp(prefix="lineside-bench-", dir=args.workdir))
    try:
        results = run(sizes, selected, work, quick=args.quick)
    finally:
        if args.keep:
            print(f"bench: work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "latest.md").write_text(report.markdown(results))
    print(report.table(results))
    failed = [name for name, phase in results["phases"].items() if "error" in phase]
    if failed:
        print(f"bench: failed phases: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
