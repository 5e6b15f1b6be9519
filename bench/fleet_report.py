"""The fleet bench's figures: per drain, CPU per record and per party, the scaling factors, the
bare reference, which resource runs out first; and ``fleet-latest.md``.

Pure: it reads the drains :mod:`bench.fleet_scale` measured and derives the rest.
"""

from __future__ import annotations

import math
import os
from typing import Any

Results = dict[str, Any]
PARTIES = ("ingest", "postgres_backends", "postgres_server", "broker", "generator")
LABELS = {
    "ingest": "ingest instances",
    "postgres_backends": "PostgreSQL backends",
    "postgres_server": "PostgreSQL WAL writer, checkpointer, bgwriter",
    "broker": "mosquitto",
    "generator": "simulated gateways",
}
SATURATED_MACHINE = 0.85
"""Busy share of every core above which the machine's CPU is what runs out."""
SATURATED_PROCESS = 0.85
"""Share of one core above which a (mostly single-threaded) process is the limit."""


def _div(a: float, b: float) -> float:
    return a / b if b else math.nan


def _bare_per_s(drains: list[dict[str, Any]], gateways: int, connections: int) -> float:
    for drain in drains:
        if drain["gateways"] == gateways:
            for bare in drain.get("bare", []):
                if bare["connections"] == connections:
                    return _div(bare["rows"], bare["seconds"])
    return math.nan


def _limit(drain: dict[str, Any], cores: int) -> str:
    """Which resource ran out first in this drain, in words."""
    use = drain["cpu_pct"]
    busiest = max(PARTIES, key=lambda p: use[p])
    ours = sum(use[p] for p in PARTIES) / (100 * cores)
    machine = use["machine"] / (100 * cores)
    if machine >= SATURATED_MACHINE:
        shared = "" if ours >= SATURATED_MACHINE else f", {ours:.0%} of it this run's"
        return (
            f"the machine's CPU ({machine:.0%} of {cores} cores busy{shared}; the largest "
            f"share: {LABELS[busiest]}, {use[busiest]:.0f} % of a core)"
        )
    per_instance = max(drain["instance_cpu_pct"]) if drain["instance_cpu_pct"] else 0.0
    if per_instance >= 100 * SATURATED_PROCESS:
        return f"one ingest instance's CPU ({per_instance:.0f} % of a core)"
    for party in ("broker", "generator"):
        if use[party] >= 100 * SATURATED_PROCESS:
            return f"{LABELS[party]} ({use[party]:.0f} % of a core)"
    return (
        f"neither CPU nor a single process ({machine:.0%} of the machine busy): waiting, on "
        f"the commits ({drain['commits_per_s']:,.0f}/s, each one WAL flush) and round trips"
    )


def analyse(results: Results) -> Results:
    """Add the derived figures to each drain, and the scaling table."""
    cores = os.cpu_count() or 1
    drains: list[dict[str, Any]] = results["drains"]
    results["cores"] = cores
    for drain in drains:
        seconds = drain["wall_s"]
        stored = drain["stored"] or 1
        cpu = drain["cpu_s"]
        drain["cpu_us_per_record"] = {p: cpu[p] * 1e6 / stored for p in PARTIES}
        drain["cpu_pct"] = {p: cpu[p] * 100 / seconds for p in PARTIES}
        drain["cpu_pct"]["machine"] = cpu["machine_busy"] * 100 / seconds
        drain["instance_cpu_pct"] = [c * 100 / seconds for c in drain["instance_cpu_s"]]
        drain["commits_per_s"] = _div(drain["transactions"], drain["commit_span_s"])
        connections = drain["instances"] * drain["pool_size"]
        drain["bare_records_per_s"] = _bare_per_s(drains, drain["gateways"], connections)
        drain["ratio_to_bare"] = _div(drain["records_per_s"], drain["bare_records_per_s"])
        drain["limit"] = _limit(drain, cores)
    for drain in drains:
        one = next(d for d in drains if d["gateways"] == drain["gateways"] and d["instances"] == 1)
        drain["scaling"] = _div(drain["records_per_s"], one["records_per_s"])
    largest = max(drains, key=lambda d: d["stored"])
    results["bytes_per_million_records"] = _div(largest["bytes_on_disk"], largest["stored"]) * 1e6
    return results


def _n(value: float, digits: int = 0) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def table(results: Results) -> list[str]:
    """The drains as a markdown table."""
    lines = [
        "| Gateways | Ingest instances | Records/s (warehouse) | Scaling vs 1 instance "
        "| Bare psycopg, as many connections | Ratio | Ingest CPU µs/record "
        "| PostgreSQL CPU µs/record | Broker µs/record | Gateways µs/record | Machine busy "
        "| Limit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    cores = results.get("cores", 1)
    for d in results["drains"]:
        us = d["cpu_us_per_record"]
        lines.append(
            f"| {d['gateways']} | {d['instances']} | {_n(d['records_per_s'])} "
            f"| {_n(d['scaling'], 2)}× | {_n(d['bare_records_per_s'])} "
            f"| {_n(d['ratio_to_bare'], 2)}× | {_n(us['ingest'], 1)} "
            f"| {_n(us['postgres_backends'] + us['postgres_server'], 1)} "
            f"| {_n(us['broker'], 1)} | {_n(us['generator'], 1)} "
            f"| {d['cpu_pct']['machine'] / cores:.0f} % | {d['limit']} |"
        )
    return lines


def markdown(results: Results) -> str:
    """``fleet-latest.md``."""
    plan = results["plan"]
    pg = results.get("postgres", {})
    load = results.get("load", {})
    out = [
        "# Lineside fleet benchmark",
        "",
        f"Run {results.get('run_at', '?')} ({results.get('wall_s', 0):.0f} s, "
        f"{'quick smoke sizes' if results.get('quick') else 'default sizes'}) on "
        f"{results.get('cores', '?')} cores; PostgreSQL {pg.get('server_version', '?')} "
        f"(synchronous_commit {pg.get('synchronous_commit', '?')}, "
        f"wal_sync_method {pg.get('wal_sync_method', '?')}, shared_buffers "
        f"{pg.get('shared_buffers', '?')}), local; mosquitto spawned for each drain.",
        "",
        f"Load average (1 min) before the run {load.get('before', 0):.2f}, after "
        f'{load.get("after", 0):.2f}: the machine is shared, so "machine busy" counts other '
        "work too; the ratios, both sides measured in the same run, are the point.",
        "",
        f"Each drain: a backlog of {plan['records']:,} records spread over the gateways' real "
        f"stores (batches of {plan['batch_records']}, {plan['window']} in flight per gateway) "
        "drains through one mosquitto and k `lineside ingest` processes sharing one "
        "subscription into a fresh PostgreSQL database. Records/s: the warehouse's records "
        "over the span from its first to its last commit. CPU: user + system of each party "
        "over the drain, per stored record. Bare: the same rows inserted again with the "
        "ingest's INSERT ... unnest statement, one transaction per batch, from as many "
        f"connections as the instances' pools hold ({plan['pool_size']} each; bare psycopg, "
        "no MQTT, no facts, no acks).",
        "",
        *table(results),
        "",
        "## Per drain",
        "",
    ]
    for d in results["drains"]:
        pct = ", ".join(f"{LABELS[p]} {d['cpu_pct'][p]:.0f} %" for p in PARTIES)
        per = ", ".join(
            f"{c:.0f} % CPU, {b:,} batches, {r:,} duplicate records"
            for c, b, r in zip(
                d["instance_cpu_pct"], d["instance_batches"], d["instance_duplicates"], strict=True
            )
        )
        out.append(
            f"* **{d['gateways']} gateways, {d['instances']} instance(s)**: "
            f"{d['stored']:,} of {d['backlog']:,} records stored, "
            f"{d['duplicate_keys']} stored twice, {d['left_in_outboxes']} left in the "
            f"outboxes, {d['batches_resent']} batches resent; drain {d['wall_s']:.1f} s "
            f"(commits over {d['commit_span_s']:.1f} s), {d['transactions']:,} transactions "
            f"({d['commits_per_s']:,.0f}/s), WAL {d['wal_bytes'] / 2**20:,.0f} MiB "
            f"(whole server); CPU (share of one core): {pct}; "
            f"per instance: {per}; machine busy {d['cpu_pct']['machine']:.0f} % "
            "(all processes, other work included)."
        )
    out += [
        "",
        f"Disk: {results['bytes_per_million_records'] / 2**20:,.0f} MiB per million records "
        "(every warehouse table with its indexes and TOAST, `records` plus the typed facts, "
        "after the largest drain, less the empty schema's).",
    ]
    return "\n".join(out) + "\n"


__all__ = ["analyse", "markdown", "table"]
