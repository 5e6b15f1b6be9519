"""``lineside report``: a run's report summary first, as text or as one JSON document.

The order is what a shift manager asks first: the run's figures (packs, kg, giveaway, ℮
batches, products), the alerts still standing (the run's history summarised as counts per
rule; each transition only with ``--all``), then what did not make it: packs the checkweigher
counted but the gateway did not store (gaps in its pack counter, ``missed_packs`` events;
packs shed under intake pressure, ``records_shed`` events), device inputs refused as invalid
(``rejected_inputs``), and the run's records still buffered in the outbox for the warehouse.
The JSON document's keys are in docs/command-output.md.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.report import RunReport, format_report
from gateway.rules_engine import fold_alerts
from gateway.runs import from_us, to_us

REPORT_DOCUMENT_VERSION = 1

ALERTS_SHOWN = 10
"""Standing alerts listed one by one in the text; beyond, counted (all in ``--json``)."""


@dataclass(frozen=True, slots=True)
class RunLosses:
    """What the run's line counted or sent that the report's figures do not hold."""

    missed_packs: int
    """Packs the checkweigher's pack counter counted that the gateway never received."""
    shed_packs: int
    """Packs received but shed under intake pressure (counted, not stored)."""
    rejected_inputs: int
    """Device inputs on the run's line refused as invalid while the run ran."""
    buffered_records: int
    """The run's records still in the outbox, not yet acknowledged by the warehouse."""


@dataclass(frozen=True, slots=True)
class RunAlerts:
    """The run's alerts: each alert's current state, from its transitions."""

    standing: tuple[dict[str, Any], ...]
    """Alerts still active or awaiting acknowledgement, most urgent first."""
    by_rule: dict[str, dict[str, int]]
    """Per rule: alerts raised, still active, and transitions stored."""
    transitions: int


def _window(report: RunReport) -> tuple[int, int]:
    run = report.run
    start = run.actual_start or run.planned_start
    end = run.actual_end
    return (to_us(start) if start else 0, to_us(end) if end else 2**62)


def run_losses(db_path: Path, report: RunReport) -> RunLosses:
    """Count the run's missed, shed and refused inputs and its buffered records."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return run_losses_from(db, report)
    finally:
        db.close()


def run_losses_from(db: sqlite3.Connection, report: RunReport) -> RunLosses:
    """:func:`run_losses` over ``db`` (a store, or a database with its schema)."""
    run = report.run
    start, end = _window(report)
    (missed,) = db.execute(
        "SELECT coalesce(sum(json_extract(detail, '$.missed')), 0) FROM device_events "
        "WHERE kind = 'missed_packs' AND line = ? AND ts_us BETWEEN ? AND ?",
        (run.line, start, end),
    ).fetchone()
    (shed,) = db.execute(
        "SELECT coalesce(sum(json_extract(detail, '$.kinds.packs')), 0) FROM device_events "
        "WHERE kind = 'records_shed' AND line = ? AND ts_us BETWEEN ? AND ?",
        (run.line, start, end),
    ).fetchone()
    (rejected,) = db.execute(
        "SELECT count(*) FROM rejected_inputs WHERE line = ? AND ts_us BETWEEN ? AND ?",
        (run.line, start, end),
    ).fetchone()
    buffered = 0
    for table in ("packs", "temperatures", "label_scans"):
        (n,) = db.execute(
            f"SELECT count(*) FROM outbox o JOIN {table} t ON t.seq = o.seq "  # noqa: S608 (fixed names)
            "WHERE o.stream = ? AND t.run_number = ?",
            (table, run.run_number),
        ).fetchone()
        buffered += int(n)
    return RunLosses(int(missed), int(shed), int(rejected), buffered)


def run_alerts(db_path: Path, report: RunReport) -> RunAlerts:
    """Fold the run's alert transitions (the report's own selection) into alerts."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return run_alerts_from(db, report)
    finally:
        db.close()


def run_alerts_from(db: sqlite3.Connection, report: RunReport) -> RunAlerts:
    """:func:`run_alerts` over ``db`` (a store, or a database with its schema)."""
    run = report.run
    start, end = _window(report)
    rows = db.execute(
        "SELECT ts_us, alert_id, rule, subject, line, severity, state, message, detail "
        "FROM alerts WHERE (subject LIKE ? OR subject LIKE ? "
        "OR (line = ? AND ts_us BETWEEN ? AND ?)) ORDER BY seq",
        (f"%/{run.run_number}/%", f"%/{run.run_number}", run.line, start, end),
    ).fetchall()
    from gateway.alert_listing import urgency  # noqa: PLC0415
    from gateway.status import alert_json  # noqa: PLC0415
    from rules.alert_refs import short_refs  # noqa: PLC0415

    alerts = fold_alerts(rows)
    transitions = Counter(r[2] for r in rows)
    standing = sorted((a for a in alerts if a.active or not a.acknowledged), key=urgency)
    refs = short_refs(a.id for a in standing)
    by_rule: dict[str, dict[str, int]] = {}
    for alert in alerts:
        entry = by_rule.setdefault(
            alert.rule, {"raised": 0, "active": 0, "transitions": transitions[alert.rule]}
        )
        entry["raised"] += 1
        entry["active"] += int(alert.active)
    return RunAlerts(
        standing=tuple(alert_json(a, refs.get(a.id, "")) for a in standing),
        by_rule=dict(sorted(by_rule.items())),
        transitions=len(rows),
    )


def _num(value: float | Decimal | None) -> float | None:
    return None if value is None else float(value)


def report_document(
    report: RunReport, losses: RunLosses, alerts: RunAlerts, *, with_transitions: bool
) -> dict[str, Any]:
    """The ``--json`` document (version 1; docs/command-output.md)."""
    run = report.run
    load = report.alarm_load
    document: dict[str, Any] = {
        "version": REPORT_DOCUMENT_VERSION,
        "run": {
            "run_number": run.run_number,
            "line": run.line,
            "status": str(run.status),
            "description": run.description,
            "batch_codes": list(run.batch_codes),
            "pack_date": run.pack_date.isoformat() if run.pack_date else None,
            "use_by": report.use_by.isoformat() if report.use_by else None,
            "actual_start_us": to_us(run.actual_start) if run.actual_start else None,
            "actual_end_us": to_us(run.actual_end) if run.actual_end else None,
        },
        "figures": {
            "packs": report.packs,
            "kg": round(report.kg, 3),
            "yield_pct": report.yield_pct,
            "giveaway_kg": round(sum(p.giveaway_kg or 0.0 for p in report.products), 3),
            "packs_without_product": report.packs_without_product,
            "uncertain_packs": report.uncertain_packs,
            "emark_batches": len(report.emark_batches),
            "emark_batches_failed": sum(
                b["verdict"] != "pass" for b in report.emark_batches if b.get("verdict")
            ),
        },
        "products": [
            {
                "plu": p.plu,
                "description": p.description,
                "nominal_g": _num(p.nominal_g),
                "catch_weight": p.catch_weight,
                "packs": p.packs,
                "kg": round(p.kg, 3),
                "mean_g": p.mean_g,
                "sd_g": p.sd_g,
                "giveaway_g": p.giveaway_g,
                "giveaway_pct": p.giveaway_pct,
                "giveaway_kg": p.giveaway_kg,
                "below_t1": p.below_t1,
                "below_t2": p.below_t2,
                "target_g": _num(p.target_g),
                "rejected": p.rejected,
            }
            for p in report.products
        ],
        "emark_batches": [dict(b) for b in report.emark_batches],
        "alerts": {
            "standing": list(alerts.standing),
            "standing_total": len(alerts.standing),
            "by_rule": alerts.by_rule,
            "transitions": alerts.transitions,
        },
        "missed": {
            "missed_packs": losses.missed_packs,
            "shed_packs": losses.shed_packs,
            "rejected_inputs": losses.rejected_inputs,
        },
        "buffered_records": losses.buffered_records,
        "alarm_load": None if load is None else load.as_dict(),
    }
    if with_transitions:
        document["alerts"]["transition_list"] = [dict(a) for a in report.alerts]
    return document


def _g(value: float | Decimal | None, places: int = 1) -> str:
    return "-" if value is None else f"{float(value):.{places}f}"


def format_summary(document: dict[str, Any], *, printable: Any = str) -> str:
    """The text layout of a report document (:func:`report_document`, local or from the
    gateway): figures, standing alerts, alerts per rule, missed and buffered."""
    run, figures, alerts = document["run"], document["figures"], document["alerts"]
    standing: list[dict[str, Any]] = alerts["standing"]
    total = int(alerts.get("standing_total", len(standing)))
    out = [
        f"Run {printable(run['run_number'])}  line {printable(run['line'])}  {run['status']}  "
        f"{printable(run['description'])}".rstrip(),
        f"  packs {figures['packs']}   {figures['kg']:.2f} kg   giveaway "
        f"{figures['giveaway_kg']:.3f} kg   yield {_g(figures['yield_pct'])} %   "
        f"use-by {run['use_by'] or '-'}",
        f"  ℮ batches {figures['emark_batches']} ({figures['emark_batches_failed']} not passed)"
        f"   products {len(document['products'])}",
    ]
    for p in document["products"]:
        plu = printable(p["plu"])
        if p["catch_weight"]:
            out.append(
                f"    {plu:<8} catch weight  packs {p['packs']:>6}  {p['kg']:.2f} kg  "
                f"rejects {p['rejected']}"
            )
        else:
            out.append(
                f"    {plu:<8} Qn {_g(p['nominal_g'], 0):>5}  packs {p['packs']:>6}  "
                f"mean {_g(p['mean_g']):>7}  giveaway {_g(p['giveaway_pct'], 2):>6} %  "
                f"<T1 {p['below_t1']}  <T2 {p['below_t2']}  rejects {p['rejected']}"
            )
    if figures["packs_without_product"]:
        out.append(f"  {figures['packs_without_product']} packs not matched to a product")
    if figures["uncertain_packs"]:
        out.append(f"  {figures['uncertain_packs']} packs flagged VALUES_UNCERTAIN")
    active = sum(counts["active"] for counts in alerts["by_rule"].values())
    out += [
        "",
        f"Alerts: {active} active, {total - active} cleared awaiting acknowledgement "
        f"({alerts['transitions']} transitions)",
    ]
    for a in standing[:ALERTS_SHOWN]:
        state = "ACTIVE " if a["active"] else "cleared"
        out.append(
            f"  {printable(a['ref']):<8}{state} {printable(a['severity']):<9}"
            f"{printable(a['rule']):<22}{from_us(a['raised_us']).strftime('%H:%M')}  "
            f"{printable(a['message'])}"
        )
    if total > ALERTS_SHOWN:
        out.append(f"  ... and {total - ALERTS_SHOWN} more (lineside alerts)")
    by_rule: dict[str, dict[str, int]] = alerts["by_rule"]
    if by_rule:
        out.append("  per rule (raised / still active):")
        shown = sorted(by_rule.items(), key=lambda item: (-item[1]["raised"], item[0]))
        for rule, counts in shown[:ALERTS_SHOWN]:
            out.append(f"    {printable(rule):<26}{counts['raised']:>6} / {counts['active']}")
        if len(shown) > ALERTS_SHOWN:
            out.append(f"    ... and {len(shown) - ALERTS_SHOWN} more rules (--json)")
    load = document["alarm_load"]
    if load is not None:
        out.append(
            f"  alarm load on line {printable(run['line'])}: {load['per_10_min']:.2f} raised "
            f"per 10 min, {load['peak_10_min']} at most; in flood {load['flood_pct']:.1f} % "
            "(docs/alarms.md)"
        )
    missed = document["missed"]
    out += [
        "",
        f"Missed: {missed['missed_packs']} packs counted by the checkweigher but not "
        f"received, {missed['shed_packs']} shed under load, {missed['rejected_inputs']} "
        "device inputs refused",
        f"Buffered: {document['buffered_records']} of the run's records not yet in the warehouse",
    ]
    return "\n".join(out)


def format_full(report: RunReport) -> str:
    """``--all``: after the summary, the full report with every ℮ batch and transition."""
    return "\n".join(["", "", "-" * 72, format_report(report)])


SUMMARY_HINT = "\n(every ℮ batch and alert transition: --all; for programs: --json)"


def fit_standing(document: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """The document with as many standing alerts as keep it below ``max_bytes`` of JSON
    (for a control answer); ``alerts.standing_total`` still counts them all."""
    alerts = document["alerts"]
    standing = alerts["standing"]
    without = {**document, "alerts": {**alerts, "standing": []}}
    size = len(json.dumps(without, default=str))
    kept: list[dict[str, Any]] = []
    for alert in standing:
        size += len(json.dumps(alert)) + 2
        if size > max_bytes:
            break
        kept.append(alert)
    return {**document, "alerts": {**alerts, "standing": kept}}
