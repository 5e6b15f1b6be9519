"""``python -m bench.warehouse_scale --packs 10000000``: the warehouse's read side at scale.

Loads a fresh PostgreSQL database with N packs and their label scans, temperatures, runs,
℮ batches and alerts (:mod:`bench.wh_scale_load`, the plan in :mod:`bench.wh_scale_plan`),
then times ``WarehouseReader.run_report``, ``trace_batch`` and ``trace_serial`` beside bare
psycopg running the same statements, with EXPLAIN (ANALYZE, BUFFERS) of each statement
(:mod:`bench.wh_scale_measure`). Writes ``warehouse-latest.{md,json}``
(:mod:`bench.wh_scale_report`); docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import wh_scale_load as load
from bench.wh_scale_measure import measure
from bench.wh_scale_plan import make_plan
from bench.wh_scale_report import figures, markdown

RESULTS = Path(__file__).resolve().parent / "results"


def _log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.warehouse_scale", description=__doc__)
    parser.add_argument("--packs", type=int, default=10_000_000, help="packs to load")
    parser.add_argument("--days", type=int, default=183, help="days the packs span")
    parser.add_argument("--runs-per-day", type=int, default=3, help="runs per line per day")
    parser.add_argument(
        "--late-every",
        type=int,
        default=100,
        help="one pack in this many gets its product from its label later (default 100)",
    )
    parser.add_argument("--reps", type=int, default=25, help="items timed per operation (≥ 20)")
    parser.add_argument("--warmup", type=int, default=3, help="items run first, not counted")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--database", default="lineside_warehouse_scale")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the database left by an earlier run with the same plan (no reload)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser.parse_args(argv)


def _machine(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        server = conn.execute("SHOW server_version").fetchone()
        settings = {
            name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
            for name in ("shared_buffers", "work_mem", "effective_cache_size", "jit")
        }
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": os.cpu_count() or 1,
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "postgresql": str(server[0]) if server else "",
        "settings": settings,
        "load_average": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    plan = make_plan(
        args.packs, days=args.days, runs_per_day=args.runs_per_day, late_every=args.late_every
    )
    dsn = load.dsn_of(args.host, args.port, args.database)
    comment = load.plan_comment(plan)
    began = time.perf_counter()
    reused = args.reuse and load.database_comment(args.host, args.port, args.database) == comment
    steps: dict[str, float] = {}
    if reused:
        _log(f"reusing {args.database} ({comment})")
    else:
        _log(f"loading {plan.packs:,} packs into {args.database}: {len(plan.runs):,} runs, "
             f"{plan.packs_per_run:,} packs each, {len(plan.months)} months")  # fmt: skip
        load.create_database(args.host, args.port, args.database, comment)
        steps = load.load(dsn, plan, _log)
        _log(f"loaded in {sum(steps.values()):.0f} s")
    try:
        sizes = load.table_sizes(dsn)
        machine = _machine(dsn)
        ops = measure(dsn, plan, args.reps, args.warmup, _log)
    finally:
        if not args.keep:
            load.drop_database(args.host, args.port, args.database)
    results = {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": time.perf_counter() - began,
        "plan": {
            "packs": plan.packs,
            "days": plan.days,
            "runs_per_day": plan.runs_per_day,
            "late_every": plan.late_every,
            "lines": len(plan.lines),
            "runs": len(plan.runs),
            "packs_per_run": plan.packs_per_run,
            "months": [f"{y:04d}-{m:02d}" for y, m in plan.months],
            "temperatures": plan.temperatures,
        },
        "reused": reused,
        "load_s": steps,
        "load_total_s": sum(steps.values()),
        "tables": sizes,
        "machine": machine,
        "reps": args.reps,
        "warmup": args.warmup,
        **figures(ops),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "warehouse-latest.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "warehouse-latest.md").write_text(markdown(results))
    _log(f"results in {args.out / 'warehouse-latest.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
