"""The scale benchmark's figures and its ``warehouse-latest.md`` (docs/benchmarks.md quotes it)."""

from __future__ import annotations

import re
from typing import Any

from bench.wh_scale_measure import OpResult, summary

GOAL_MS = 200.0
"""The issue's goal: a per-run report and a trace query each under 200 ms at 10 M packs."""
TITLES = {
    "run_report": "reader.run_report(run)",
    "trace_batch": "reader.trace_batch(batch code)",
    "trace_serial": "reader.trace_serial(serial)",
}


def figures(ops: list[OpResult]) -> dict[str, Any]:
    """Per operation: first/warm/bare medians and p95s, the ratio, the goal, the plans."""
    operations: dict[str, Any] = {}
    for op in ops:
        first, warm, bare = summary(op.first_ms), summary(op.warm_ms), summary(op.bare_ms)
        findings = sorted({f for e in op.explains for f in e["findings"]})
        operations[op.name] = {
            "items": op.items,
            "first_ms": first,
            "warm_ms": warm,
            "bare_ms": bare,
            "ratio": warm["median"] / bare["median"] if bare["median"] else None,
            "goal": f"p95 < {GOAL_MS:.0f} ms (first call)",
            "met": first["p95"] < GOAL_MS,
            "statements": max(op.statements),
            "bare_rows_median": sorted(op.rows)[len(op.rows) // 2],
            "found": op.found,
            "wanted": op.wanted,
            "correct": op.found == op.wanted,
            "explain": op.explains,
            "explain_findings": findings,
            "explain_ok": bool(op.explains) and not findings,
        }
    return {
        "operations": operations,
        "goals": {name: o["met"] for name, o in operations.items()},
        "explain_ok": all(o["explain_ok"] for o in operations.values()),
    }


def _ms(value: float) -> str:
    return f"{value:,.1f} ms"


def _table(results: dict[str, Any]) -> list[str]:
    out = [
        "| Operation | First call median | First call p95 | Warm median | Bare psycopg median "
        "| Ratio (warm / bare) | Statements | Goal | Met |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, o in results["operations"].items():
        ratio = "—" if o["ratio"] is None else f"{o['ratio']:.2f}×"
        met = "yes" if o["met"] else "**no**"
        out.append(
            f"| {TITLES.get(name, name)} | {_ms(o['first_ms']['median'])} | "
            f"{_ms(o['first_ms']['p95'])} | {_ms(o['warm_ms']['median'])} | "
            f"{_ms(o['bare_ms']['median'])} | {ratio} | {o['statements']} | {o['goal']} | {met} |"
        )
    return out


def _explains(results: dict[str, Any]) -> list[str]:
    out = []
    for name, o in results["operations"].items():
        verdict = "no finding" if o["explain_ok"] else "; ".join(o["explain_findings"])
        out += ["", f"### {TITLES.get(name, name)}: {verdict}", ""]
        out += [
            "| # | Statement | Execution | Buffers hit / read | Access |",
            "|---:|---|---:|---:|---|",
        ]
        for n, e in enumerate(o["explain"], 1):
            scans = _scans(e["scans"])
            sql = e["sql"] if len(e["sql"]) <= 140 else e["sql"][:137] + "…"
            out.append(
                f"| {n} | `{sql}` | {e['execution_ms']:.2f} ms | "
                f"{e['shared_hit']:,} / {e['shared_read']:,} | {scans} |"
            )
    return out


def _scans(scans: list[str]) -> str:
    """Partitions' scans folded: 'Index Scan on packs_2026xx (×6)'."""
    folded: dict[str, int] = {}
    for scan in scans:
        words = scan.split()
        key = " ".join(_fold(w) for w in words)
        folded[key] = folded.get(key, 0) + 1
    return "; ".join(k + (f" (×{n})" if n > 1 else "") for k, n in folded.items())


def _fold(word: str) -> str:
    return re.sub(r"_(20\d{4}|default)(?=_|$)", "_*", word)


def _correct(results: dict[str, Any]) -> bool:
    return all(o["correct"] for o in results["operations"].values())


def markdown(results: dict[str, Any]) -> str:
    plan, machine = results["plan"], results["machine"]
    load = results["load_s"]
    load_line = (
        "The database of an earlier run with the same plan was reused (no load time)."
        if results["reused"]
        else f"Load time {results['load_total_s']:,.0f} s: "
        + ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:,.0f} s" for k, v in load.items())
        + "."
    )
    tables = ", ".join(
        f"{name} {t['rows']:,} rows ({t['bytes'] / 2**20:,.0f} MiB)"
        for name, t in results["tables"].items()
    )
    lines = [
        "# Warehouse at scale",
        "",
        f"Run {results['run_at']} ({results['wall_s']:,.0f} s). Machine: {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB, Python {machine['python']}, psycopg {machine['psycopg']}, "
        f"{machine['postgresql']}; settings "
        + ", ".join(f"{k} {v}" for k, v in machine["settings"].items())
        + f"; load average before measuring {machine['load_average']:.2f}.",
        "",
        f"{plan['packs']:,} packs over {plan['days']} days ({', '.join(plan['months'])}), "
        f"{plan['lines']} lines (2 sites × 2 gateways × 2 lines), {plan['runs']:,} runs of "
        f"{plan['packs_per_run']:,} packs (one in {plan['late_every']:,} given its product "
        "later by its label), one label scan per pack, "
        f"{plan['temperatures']:,} temperature readings. Tables: {tables}.",
        "",
        load_line,
        "",
        f"Each operation timed over {results['reps']} different items (after "
        f"{results['warmup']} not counted). *First call*: the reader's call on an item not "
        "read before in this run; *warm*: the same call again; *bare psycopg*: the statements "
        "the reader sent, with the same parameters, on a bare psycopg connection, rows fetched "
        "and nothing else (after the first call, so over the same cached pages as *warm*).",
        "",
        *_table(results),
        "",
        "Every item's answer was checked against what was loaded: "
        + ("all correct." if _correct(results) else "**mismatches** (see the JSON)."),
        "",
        "## EXPLAIN (ANALYZE, BUFFERS) of each statement (first item)",
        "",
        "Checked: no Seq Scan of a table or partition of more than 10,000 rows, no access to "
        "`records`. Overall: " + ("no finding." if results["explain_ok"] else "**findings**."),
        *_explains(results),
        "",
    ]
    return "\n".join(lines)
