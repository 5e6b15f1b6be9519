"""The results table: each gateway figure beside the bare library's, their ratio, the goal.

:func:`rows` derives the table from the phases' figures; :func:`markdown` renders
``latest.md`` (docs/benchmarks.md quotes its table).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

Results = dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    key: str
    figure: str
    unit: str
    gateway: float | None
    bare: float | None
    ratio: float | None
    goal: str
    met: bool | None
    """None where the issue sets no goal for the figure."""
    note: str = ""


def _ratio(gateway: float | None, bare: float | None) -> float | None:
    if gateway is None or bare is None or not bare or math.isnan(gateway) or math.isnan(bare):
        return None
    return gateway / bare


def _get(results: Results, phase: str, side: str, key: str) -> float | None:
    value = results.get("phases", {}).get(phase, {}).get(side, {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _row(
    key: str,
    figure: str,
    unit: str,
    gateway: float | None,
    bare: float | None,
    goal: str = "",
    met: Callable[[float, float | None], bool] | None = None,
    note: str = "",
) -> Row:
    ratio = _ratio(gateway, bare)
    verdict = None
    if met is not None and gateway is not None and not math.isnan(gateway):
        verdict = met(gateway, ratio)
    return Row(key, figure, unit, gateway, bare, ratio, goal, verdict, note)


def rows(results: Results) -> list[Row]:
    """The table's rows for the phases that ran."""
    phases = results.get("phases", {})
    out: list[Row] = []

    def g(phase: str, key: str) -> float | None:
        return _get(results, phase, "gateway", key)

    def b(phase: str, key: str) -> float | None:
        return _get(results, phase, "bare", key)

    if "ingest" in phases and "error" not in phases["ingest"]:
        offered = g("ingest", "offered_per_s")
        out.append(
            _row(
                "ingest.readings_per_s",
                "1. OPC UA readings/s end to end (decoded, validated, joined, stored, rules, "
                "queued for sync)",
                "/s",
                g("ingest", "readings_per_s"),
                b("ingest", "notifications_per_s"),
                "≥ 10,000/s",
                lambda v, _r: v >= 10_000,
                f"offered {offered:,.0f}/s" if offered else "",
            )
        )
        out.append(
            _row(
                "ingest.cpu_us_per_reading",
                "1. CPU per reading",
                "µs",
                g("ingest", "cpu_us_per_reading"),
                b("ingest", "cpu_us_per_notification"),
                "≤ 2× bare",
                lambda _v, r: r is not None and r <= 2.0,
            )
        )
        plain = g("ingest", "cpu_us_per_reading")
        runs = g("ingest", "history_runs")
        out.append(
            _row(
                "ingest.history_cpu_us_per_reading",
                f"1. CPU per reading, the store holding {runs or 0:,.0f} finished runs "
                "(months of ERP history)",
                "µs",
                g("ingest", "history_cpu_us_per_reading"),
                b("ingest", "cpu_us_per_notification"),
                "≤ 1.15× the figure without history",
                lambda v, _r: plain is not None and v <= 1.15 * plain,
            )
        )
        out.append(
            _row(
                "ingest.history_rss_mb",
                "1. RSS of that gateway at the end of its window (every stored run is kept in "
                "memory)",
                "MiB",
                g("ingest", "history_rss_mb"),
                None,
                "≤ 80 MB",
                lambda v, _r: v <= 80,
            )
        )
    if "modbus" in phases and "error" not in phases["modbus"]:
        offered = g("modbus", "offered_per_s")
        out.append(
            _row(
                "modbus.tags_per_s",
                "2. Modbus tags/s polled and stored",
                "/s",
                g("modbus", "tags_per_s"),
                b("modbus", "tags_per_s"),
                note=f"same poll grid, offered {offered:,.0f}/s" if offered else "",
            )
        )
        out.append(
            _row(
                "modbus.cpu_us_per_tag",
                "2. CPU per Modbus tag",
                "µs",
                g("modbus", "cpu_us_per_tag"),
                b("modbus", "cpu_us_per_tag"),
            )
        )
    if "store" in phases and "error" not in phases["store"]:
        out.append(
            _row(
                "store.rows_per_s",
                "3. Store rows/s (record + outbox row, group commit)",
                "/s",
                g("store", "rows_per_s"),
                b("store", "rows_per_s"),
                "≥ 50 % of bare",
                lambda _v, r: r is not None and r >= 0.5,
                "bare: executemany of the same rows and outbox rows, WAL, synchronous=FULL",
            )
        )
        out.append(
            _row(
                "store.rows_per_s_vs_table_only",
                "3. Store rows/s vs bare record table only",
                "/s",
                g("store", "rows_per_s"),
                b("store", "table_only_rows_per_s"),
                note="bare without the outbox row (context, no goal)",
            )
        )
    if "drain" in phases and "error" not in phases["drain"]:
        for uplink, label, note in (
            ("mqtt", "MQTT", "default settings; bare: paho QoS 1, one record per message"),
            ("https", "HTTPS", "default settings"),
            (
                "mqtt_fixed",
                "MQTT",
                "before the delivery pace: fixed 500 records, 256 KiB, window 4",
            ),
            ("https_fixed", "HTTPS", "before the delivery pace: fixed 500 records, 256 KiB"),
        ):
            goal = not uplink.endswith("_fixed")
            out.append(
                _row(
                    f"drain.{uplink}_records_per_s",
                    f"4. Backlog drain over {label}, records/s until all acknowledged",
                    "/s",
                    g("drain", f"{uplink}_records_per_s"),
                    b("drain", "messages_per_s"),
                    "≥ 50,000/s and ≥ 4× bare" if goal else "",
                    (lambda v, r: v >= 50_000 and r is not None and r >= 4.0) if goal else None,
                    note,
                )
            )
    if "latency" in phases and "error" not in phases["latency"]:
        publishing = g("latency", "publishing_ms") or 0.0
        out.append(
            _row(
                "latency.p50_ms",
                "5. Alert latency p50, below-T2 pack to andon subscriber",
                "ms",
                g("latency", "p50_ms"),
                b("latency", "p50_ms"),
                note=f"publishing interval {publishing:.0f} ms; bare: asyncua → paho relay",
            )
        )
        out.append(
            _row(
                "latency.p99_ms",
                "5. Alert latency p99",
                "ms",
                g("latency", "p99_ms"),
                b("latency", "p99_ms"),
                f"≤ {publishing + 50:.0f} ms (interval + 50)",
                lambda v, _r: v <= publishing + 50,
            )
        )
        seconds = g("latency", "memory_seconds") or 0.0
        ready = g("latency", "rss_ready_mb")
        warmup = g("latency", "memory_warmup_s") or 0.0
        out.append(
            _row(
                "memory.rss_start_mb",
                "6. RSS after start",
                "MiB",
                g("latency", "rss_start_mb"),
                _get(results, "startup", "bare", "rss_mb"),
                "≤ 80 MB",
                lambda v, _r: v <= 80,
                f"{warmup:.0f} s after the first stored reading; at READY "
                f"{ready or 0:.1f} MiB; bare: an interpreter with the same libraries imported",
            )
        )
        out.append(
            _row(
                "memory.rss_end_mb",
                f"6. RSS after {seconds:.0f} s at "
                f"{g('latency', 'readings_per_s') or 0:,.0f} readings/s",
                "MiB",
                g("latency", "rss_end_mb"),
                None,
                "≤ 80 MB",
                lambda v, _r: v <= 80,
            )
        )
        growth = g("latency", "rss_growth_mb")
        slope = g("latency", "rss_growth_per_10min_mb")
        out.append(
            _row(
                "memory.rss_growth_mb",
                f"6. RSS growth over {seconds:.0f} s",
                "MiB",
                growth,
                None,
                "< 1 MB over 10 minutes",
                lambda v, _r: v < 1 and (seconds >= 600 or (slope is not None and slope < 1)),
                f"trend of the second half: {slope:+.2f} MiB per 10 min"
                if slope is not None and not math.isnan(slope)
                else "",
            )
        )
    if "startup" in phases and "error" not in phases["startup"]:
        out.append(
            _row(
                "startup.ready_s",
                "7. Start-up: process start to READY=1",
                "s",
                g("startup", "ready_s"),
                b("startup", "process_s"),
                "≤ 2 s",
                lambda v, _r: v <= 2.0,
                "bare: interpreter start + the same library imports",
            )
        )
    if "fleet" in phases and "error" not in phases["fleet"]:
        out += _fleet_rows(phases["fleet"])
    if "delivery" in phases and "error" not in phases["delivery"]:
        out += _delivery_rows(phases["delivery"])
    return out


FLAT_OUTBOX = 0.02
"""The outbox counts as flat when it grows by at most this share of the offered rate."""


def _flat(growth: float | None, offered: float | None) -> Callable[[float, float | None], bool]:
    def met(_value: float, _ratio: float | None) -> bool:
        return growth is not None and offered is not None and growth <= FLAT_OUTBOX * offered

    return met


def _delivery_rows(phase: dict[str, Any]) -> list[Row]:
    """End to end at the first rate (CPU per delivered record, gateway vs the bare relay, and
    the ingest's), then sustained delivery at every rate (outbox flat or growing)."""
    out: list[Row] = []
    figures: dict[str, Any] = phase.get("gateway", {})
    bare: dict[str, float] = phase.get("bare", {})
    rates: list[int] = figures.get("rates", [])
    if not rates:
        return out
    first = rates[0]
    override = figures.get("sync")
    settings = f"batch_records, batch_bytes, window = {override}" if override else "the defaults"
    out.append(
        _row(
            "delivery.gateway_cpu_us",
            f"9. End to end, {first:,} OPC UA changes/s → MQTT → ingest → warehouse: gateway "
            "CPU per delivered record",
            "µs",
            figures.get(f"gateway_cpu_us_per_record_{first}"),
            bare.get("cpu_us_per_record"),
            "≤ 40 µs or ≤ 0.45× bare",
            lambda v, r: v <= 40.0 or (r is not None and r <= 0.45),
            "bare: asyncua → paho relay, one QoS 1 message per change, nothing stored",
        )
    )
    out.append(
        _row(
            "delivery.ingest_cpu_us",
            f"9. End to end, {first:,}/s: ingest CPU per record",
            "µs",
            figures.get(f"ingest_cpu_us_per_record_{first}"),
            None,
            "≤ 10 µs",
            lambda v, _r: v <= 10.0,
            "the ingest's MQTT consumer committing to SQLite",
        )
    )
    for rate in rates:
        offered = figures.get(f"offered_per_s_{rate}")
        growth = figures.get(f"outbox_growth_per_s_{rate}")
        note = (
            f"offered {_number(offered, '/s')}, stored "
            f"{_number(figures.get(f'stored_per_s_{rate}'), '/s')}, outbox "
            f"{'+' if (growth or 0) >= 0 else ''}{_number(growth, '/s')}; gateway "
            f"{figures.get(f'gateway_cpu_pct_{rate}', math.nan):.0f} % of a core, ingest "
            f"{figures.get(f'ingest_cpu_pct_{rate}', math.nan):.0f} %; gateway CPU "
            f"{_number(figures.get(f'gateway_cpu_us_per_record_{rate}'), 'µs')} per record"
        )
        out.append(
            _row(
                f"delivery.sustained_{rate}",
                f"9. Sustained delivery on {settings}, {rate:,} records/s asked of the "
                "server: records/s committed by the warehouse",
                "/s",
                figures.get(f"delivered_per_s_{rate}"),
                None,
                "outbox flat",
                _flat(growth, offered),
                note,
            )
        )
    return out


def _fleet_rows(phase: dict[str, Any]) -> list[Row]:
    """Per drain: records/s vs bare psycopg, the scaling factor, the ingest's CPU per record."""
    out: list[Row] = []
    figures: dict[str, float] = phase.get("gateway", {})
    bare: dict[str, float] = phase.get("bare", {})
    keys = [k.removesuffix("_records_per_s") for k in figures if k.endswith("_records_per_s")]
    for key in keys:
        gateways, instances = key.removeprefix("gw").split("_i")
        where = f"{gateways} gateways, {instances} ingest instance(s)"
        out.append(
            _row(
                f"fleet.{key}_records_per_s",
                f"8. Fleet drain into PostgreSQL, records/s, {where}",
                "/s",
                figures[f"{key}_records_per_s"],
                bare.get(f"{key}_records_per_s"),
                note="bare: psycopg, the same rows and statement, as many connections as the "
                "instances' pools",
            )
        )
        if instances != "1":
            out.append(
                _row(
                    f"fleet.{key}_scaling",
                    f"8. Fleet scaling factor, rate with {instances} instances / with 1, "
                    f"{gateways} gateways",
                    "×",
                    figures[f"{key}_scaling"],
                    None,
                )
            )
        out.append(
            _row(
                f"fleet.{key}_ingest_cpu_us",
                f"8. Ingest CPU per stored record, {where}",
                "µs",
                figures[f"{key}_ingest_cpu_us"],
                None,
                note=f"PostgreSQL: {figures[f'{key}_postgres_cpu_us']:,.1f} µs per record",
            )
        )
    return out


def _number(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "—"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit in ("µs", "ms"):
        return f"{value:,.1f} {unit}"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if unit == "KiB":
        return f"{value:,.0f} KiB"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "×":
        return f"{value:.2f}×"
    return f"{value:,.2f}"


def table(results: Results) -> str:
    """The markdown table of every row."""
    lines = [
        "| Figure | Gateway | Bare library | Ratio | Goal | Met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in results.get("rows", []):
        ratio = f"{row['ratio']:.2f}×" if row["ratio"] is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
        figure = row["figure"] + (f" ({row['note']})" if row["note"] else "")
        lines.append(
            f"| {figure} | {_number(row['gateway'], row['unit'])} | "
            f"{_number(row['bare'], row['unit'])} | {ratio} | {row['goal'] or '—'} | {met} |"
        )
    return "\n".join(lines)


def machine_line(results: Results) -> str:
    """One line naming the machine and software the figures come from."""
    m = results.get("machine", {})
    libs = ", ".join(f"{k} {v}" for k, v in m.get("libraries", {}).items())
    return (
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gib', 0):.0f} GiB, "
        f"Linux {m.get('kernel', '?')}, Python {m.get('python', '?')}, "
        f"SQLite {m.get('sqlite', '?')}, {m.get('mosquitto', '?')}; {libs}"
    )


def markdown(results: Results) -> str:
    """``latest.md``: the table, the machine, notes, counts, and optimisations."""
    load = results.get("load", {})
    out = [
        "# Lineside benchmarks",
        "",
        f"Run {results.get('started', '?')} ({results.get('duration_s', 0):.0f} s, "
        f"{'quick smoke sizes' if results.get('quick') else 'default sizes'}). "
        f"Machine: {machine_line(results)}.",
        "",
        f"Load average (1 min) before the run {load.get('before', [0])[0]:.2f}, after "
        f"{load.get('after', [0])[0]:.2f}. {load.get('note', '')}".rstrip(),
        "",
        "Each gateway figure is measured in the same run as the bare-library figure beside "
        "it; ratio = gateway / bare.",
        "",
        table(results),
        "",
        "## Phases",
        "",
    ]
    for name, phase in results.get("phases", {}).items():
        if "error" in phase:
            out.append(f"* **{name}**: failed: {phase['error']}")
            continue
        counts = ", ".join(f"{k} {v:,}" for k, v in phase.get("counts", {}).items())
        notes = "; ".join(phase.get("notes", []))
        out.append(
            f"* **{name}** ({phase.get('seconds', 0):.0f} s): "
            + "; ".join(x for x in (notes, f"counts: {counts}" if counts else "") if x)
        )
    optimisations = results.get("optimisations", [])
    if optimisations:
        out += ["", "## Profiled and fixed", ""]
        for item in optimisations:
            out += [f"### {item['title']}", "", f"Profile: {item['profile']}", "", "Fixed:", ""]
            out += [f"* {fix}" for fix in item["fixes"]]
            out += ["", f"Before → after ({item['method']}):", ""]
            for m in item["measurements"]:
                out.append(
                    f"* {m['figure']}: {_number(m['before'], m['unit'])} → "
                    f"{_number(m['after'], m['unit'])}"
                    + (f" ({m['note']})" if m.get("note") else "")
                )
            if item.get("remaining"):
                out += ["", f"Still: {item['remaining']}"]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def as_json(row: Row) -> dict[str, Any]:
    """A row as stored in ``latest.json``."""
    return asdict(row)
