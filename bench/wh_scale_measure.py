"""Timing the warehouse reader at scale, beside bare psycopg, and checking its query plans.

For each operation (``run_report``, ``trace_batch``, ``trace_serial``) and each of
``reps`` different items (runs, batch codes, serials picked with a fixed seed):

1. the reader's call, timed (*first*: the item's rows have not been read yet in this run);
   every statement it sends is recorded (a :class:`RecordingDb` under the real reader);
2. the same statements with the same parameters on a bare psycopg connection (same
   session settings), rows fetched and nothing else done: the *bare* figure;
3. the reader's call again (*warm*: the same pages cached as for the bare replay).

The ratio is warm / bare (both over cached pages); the goal is judged on the first call.
For the first item of each operation every recorded statement is run under
``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``; the check walks each plan: no ``Seq Scan`` of
a large table or partition (more than :data:`LARGE_ROWS` rows by the planner's statistics),
and no access to ``records``.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.wh_scale_plan import Plan
from central.db import SESSION_OPTIONS, Db
from central.reader import WarehouseReader

LARGE_ROWS = 10_000
"""A relation with more rows than this is 'large': a sequential scan of it is a finding."""
SEED = 20261205


class RecordingDb(Db):
    """The reader's own connection, recording each statement it sends (PostgreSQL form)."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.sent: list[tuple[str, list[Any]]] = []

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.sent.append((sql.replace("?", "%s"), list(params)))
        return super().rows(sql, params)


@dataclass
class OpResult:
    """One operation's figures (milliseconds) and plan findings."""

    name: str
    items: list[str] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    warm_ms: list[float] = field(default_factory=list)
    bare_ms: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    """Rows the bare replay fetched (every statement's)."""
    found: list[int] = field(default_factory=list)
    """What the reader found (packs or labels); ``wanted`` is what the plan loaded."""
    wanted: list[int] = field(default_factory=list)
    explains: list[dict[str, Any]] = field(default_factory=list)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank, so p95 of 25 values is the 24th)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p95": percentile(values, 95),
        "min": min(values),
        "max": max(values),
    }


def samples(plan: Plan, reps: int, warmup: int) -> dict[str, list[str]]:
    """Different runs, batch codes and serials for each repetition (fixed seed)."""
    rng = random.Random(SEED)
    runs = [r for r in plan.runs if r.packs > 0]
    count = reps + warmup
    picked_runs = rng.sample(runs, min(count, len(runs)))
    codes = rng.sample(plan.batch_codes(), min(count, len(plan.batch_codes())))
    packs = rng.sample(range(plan.packs), min(count, plan.packs))
    return {
        "run_report": [r.run_number for r in picked_runs],
        "trace_batch": codes,
        "trace_serial": [plan.serial(i) for i in packs],
    }


def _call(reader: WarehouseReader, op: str, key: str) -> int:
    """Run one reader operation; what it found: the report's packs, the trace's packs (by
    batch) or labels (by serial), compared with the plan's by :func:`expected`."""
    if op == "run_report":
        return reader.run_report(key).packs
    if op == "trace_batch":
        return sum(len(r.packs) for r in reader.trace_batch(key).runs)
    return sum(len(r.labels) for r in reader.trace_serial(key).runs)


def expected(plan: Plan, op: str, key: str) -> int:
    """What :func:`_call` must find for ``key``, from the plan."""
    if op == "run_report":
        # The report counts accepted packs: the loader rejects pack i when
        # (i * 7919) % 1000 < 10 (its net weight is then 1.4 g or more below nominal).
        run = next(r for r in plan.runs if r.run_number == key)
        packs = range(run.first_pack, run.first_pack + run.packs)
        return sum(1 for i in packs if (i * 7919) % 1000 >= 10)
    if op == "trace_batch":
        return sum(r.packs for r in plan.runs if r.batch_code == key)
    return 1


def _bare(conn: psycopg.Connection[tuple[Any, ...]], sent: Sequence[tuple[str, list[Any]]]) -> int:
    rows = 0
    for sql, params in sent:
        rows += len(conn.execute(sql, params).fetchall())
    return rows


def _timed(fn: Callable[[], int]) -> tuple[float, int]:
    began = time.perf_counter()
    out = fn()
    return (time.perf_counter() - began) * 1000, out


def measure(
    dsn: str, plan: Plan, reps: int, warmup: int, log: Callable[[str], None]
) -> list[OpResult]:
    picked = samples(plan, reps, warmup)
    db = RecordingDb(dsn)
    reader = WarehouseReader(db)
    # The reader's own session settings (read-only, UTC).
    bare = psycopg.connect(dsn, autocommit=True, options=SESSION_OPTIONS)
    results = []
    try:
        for op, keys in picked.items():
            result = OpResult(op)
            for n, key in enumerate(keys):
                db.sent.clear()
                first, count = _timed(lambda op=op, key=key: _call(reader, op, key))
                sent = list(db.sent)
                bare_ms, bare_rows = _timed(lambda sent=sent: _bare(bare, sent))
                warm, _ = _timed(lambda op=op, key=key: _call(reader, op, key))
                if n < warmup:
                    continue
                result.items.append(key)
                result.first_ms.append(first)
                result.warm_ms.append(warm)
                result.bare_ms.append(bare_ms)
                result.statements.append(len(sent))
                result.rows.append(bare_rows)
                result.found.append(count)
                result.wanted.append(expected(plan, op, key))
                if len(result.items) == 1:
                    result.explains = [explain(bare, q, p) for q, p in sent]
            log(
                f"{op}: first median {statistics.median(result.first_ms):.1f} ms, warm "
                f"{statistics.median(result.warm_ms):.1f} ms, bare "
                f"{statistics.median(result.bare_ms):.1f} ms over {len(result.items)} items"
            )
            results.append(result)
    finally:
        reader.close()
        bare.close()
    return results


# --------------------------------------------------------------------------------------
# EXPLAIN


def explain(
    conn: psycopg.Connection[tuple[Any, ...]], sql: str, params: list[Any]
) -> dict[str, Any]:
    """The statement's EXPLAIN (ANALYZE, BUFFERS) and the check's findings."""
    cur = psycopg.ClientCursor(conn)
    text = cur.mogrify(sql, params)
    found = cur.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {text}").fetchone()
    tree = found[0][0] if found else {}
    lines = cur.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) {text}").fetchall()
    nodes = list(_nodes(tree.get("Plan", {})))
    sizes = _row_estimates(conn, {n["Relation Name"] for n in nodes if "Relation Name" in n})
    findings = []
    for node in nodes:
        relation = node.get("Relation Name")
        if relation is None:
            continue
        if relation == "records" or relation.startswith("records_"):
            findings.append(f"{node['Node Type']} on records")
        if node["Node Type"] == "Seq Scan" and sizes.get(relation, 0) > LARGE_ROWS:
            findings.append(f"Seq Scan on {relation} ({sizes[relation]:,.0f} rows)")
    scans = sorted(
        {
            f"{n['Node Type']} on {n['Relation Name']}"
            + (f" using {n['Index Name']}" if "Index Name" in n else "")
            for n in nodes
            if "Relation Name" in n
        }
    )
    return {
        "sql": " ".join(sql.split()),
        "params": [str(p) for p in params],
        "execution_ms": float(tree.get("Execution Time", 0.0)),
        "planning_ms": float(tree.get("Planning Time", 0.0)),
        "shared_hit": int(tree.get("Plan", {}).get("Shared Hit Blocks", 0)),
        "shared_read": int(tree.get("Plan", {}).get("Shared Read Blocks", 0)),
        "scans": scans,
        "findings": findings,
        "plan_text": "\n".join(str(row[0]) for row in lines),
    }


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _row_estimates(conn: psycopg.Connection[tuple[Any, ...]], names: set[str]) -> dict[str, float]:
    if not names:
        return {}
    found = conn.execute(
        "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s) "
        "AND relnamespace = to_regnamespace(current_schema())",
        (sorted(names),),
    ).fetchall()
    return {str(name): float(tuples) for name, tuples in found}
