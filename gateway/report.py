"""The run report: what one production run packed and how it did, straight from the store.

Read through a read-only connection (SQLite WAL lets it run beside the gateway's writer):
packs and kg, giveaway per product, ℮ inspection batches and their verdicts, T1/T2 counts,
yield, temperature breaches, label gaps, every alert of the run, and the run's line's alarm
load (ISA-18.2 figures, :func:`rules.alarm_rates.alarm_load` over the stored raises: the same
function a warehouse query can run over any span; docs/alarms.md §3).

Packs flagged VALUES_UNCERTAIN (values that could not be tied to their pack counter) count in
the run's packs, kg and yield, and are shown as a number of their own; they are left out of
each product's mean, sd, giveaway and T1/T2 counts, as the rules leave them out of ℮.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.core.errors import CommandLineError
from gateway.core.records import RecordFlag
from gateway.core.runs import Product, ProductionRun, run_from_json
from gateway.rules_engine import fold_alerts
from gateway.runs import from_us, to_us
from rules import ids
from rules.alarm_rates import AlarmLoad, alarm_load, raises_from_rows
from rules.emark import limits
from rules.giveaway import suggest_target
from rules.shelf_life import expected_use_by


@dataclass(frozen=True, slots=True)
class ProductLine:
    """One product of the run: packs and giveaway."""

    plu: str
    description: str
    nominal_g: Decimal | None
    packs: int
    kg: float
    mean_g: float | None
    sd_g: float | None
    giveaway_g: float | None
    giveaway_pct: float | None
    giveaway_kg: float | None
    below_t1: int
    below_t2: int
    target_g: Decimal | None = None
    """Suggested checkweigher target (rules.giveaway.suggest_target) from the observed sd."""
    min_g: float | None = None
    max_g: float | None = None
    rejected: int = 0
    """Packs the checkweigher rejected (not in the figures above: they never left the line)."""
    catch_weight: bool = False
    """A catch-weight product: no Qn, no ℮ limits, no giveaway; its own weight statistics."""

    @property
    def reject_pct(self) -> float | None:
        """Rejected packs as a share of all packs weighed for this product."""
        weighed = self.packs + self.rejected
        return self.rejected / weighed * 100 if weighed else None


@dataclass(frozen=True, slots=True)
class RunReport:
    """Everything the report shows about one run."""

    run: ProductionRun
    packs: int
    kg: float
    packs_without_product: int
    products: tuple[ProductLine, ...]
    emark_batches: tuple[dict[str, Any], ...]
    yield_pct: float | None
    use_by: date | None
    alerts: tuple[dict[str, Any], ...]
    temperature_breaches: tuple[dict[str, Any], ...] = field(default=())
    label_gaps: tuple[dict[str, Any], ...] = field(default=())
    uncertain_packs: int = 0
    """Packs flagged VALUES_UNCERTAIN: in ``packs`` and ``kg``, not in the products' figures."""
    alarm_load: AlarmLoad | None = None
    """The line's alarm load while the run ran (to its end, or to its last record)."""


_UNCERTAIN = int(RecordFlag.VALUES_UNCERTAIN)

_EXCLUDED = int(RecordFlag.VALUES_UNCERTAIN | RecordFlag.PRODUCT_UNKNOWN)

_RUN_PACKS = (
    # The product of each pack: decided when it was stored (packs.plu), or later by its
    # label (a pack_product event naming the pack by device and time).
    # ts CAST: an INTEGER column, so late_key serves (device, ts) = the pack's ts_us; a
    # column without affinity would serve device alone (every event of the device per pack).
    "CREATE TEMP TABLE late AS SELECT device, "
    "CAST(json_extract(detail, '$.pack_ts_us') AS INTEGER) AS ts, "
    "json_extract(detail, '$.plu') AS plu FROM device_events WHERE kind = 'pack_product' "
    "AND json_extract(detail, '$.run_number') = ?",
    "CREATE INDEX temp.late_key ON late (device, ts)",
    # A pack stored before products were decided per pack (schema 2) or without the rules
    # (a store written by a tool) falls back to the one fixed-weight product with its Qn.
    "CREATE TEMP TABLE by_qn (qn REAL PRIMARY KEY, plu TEXT NOT NULL)",
    "CREATE TEMP TABLE run_packs AS SELECT p.net_g, p.accepted, p.flags, "
    "coalesce(p.plu, l.plu, CASE WHEN p.product_source IS NULL AND p.flags & ? = 0 "
    "THEN q.plu END) AS plu FROM packs p LEFT JOIN late l "
    "ON l.device = p.device AND l.ts = p.ts_us LEFT JOIN by_qn q ON q.qn = p.nominal_g "
    "WHERE p.run_number = ?",
)


def _product_line(db: sqlite3.Connection, product: Product) -> ProductLine:
    """One product's figures from the run's packs (accepted, tied to their values)."""
    count, total, squares, low, high = db.execute(
        "SELECT count(*), coalesce(sum(net_g), 0), coalesce(sum(net_g * net_g), 0), "
        "min(net_g), max(net_g) FROM run_packs "
        "WHERE plu = ? AND accepted IS NOT 0 AND flags & ? = 0",
        (product.plu, _EXCLUDED),
    ).fetchone()
    (rejected,) = db.execute(
        "SELECT count(*) FROM run_packs WHERE plu = ? AND accepted = 0 AND flags & ? = 0",
        (product.plu, _EXCLUDED),
    ).fetchone()
    count = int(count)
    mean = total / count if count else None
    sd = math.sqrt(max(squares - total * total / count, 0.0) / (count - 1)) if count > 1 else None
    common: dict[str, Any] = {
        "plu": product.plu,
        "description": product.description,
        "nominal_g": product.nominal_g,
        "packs": count,
        "kg": total / 1000,
        "mean_g": mean,
        "sd_g": sd,
        "min_g": low,
        "max_g": high,
        "rejected": int(rejected),
        "catch_weight": product.catch_weight or product.nominal_g is None,
    }
    if product.nominal_g is None or product.catch_weight:
        return ProductLine(
            **common,
            giveaway_g=None,
            giveaway_pct=None,
            giveaway_kg=None,
            below_t1=0,
            below_t2=0,
        )
    qn = float(product.nominal_g)
    emark = limits(product.nominal_g)
    t1, t2 = db.execute(
        "SELECT coalesce(sum(net_g < ?), 0), coalesce(sum(net_g < ?), 0) FROM run_packs "
        "WHERE plu = ? AND accepted IS NOT 0 AND flags & ? = 0",
        (float(emark.t1), float(emark.t2), product.plu, _EXCLUDED),
    ).fetchone()
    return ProductLine(
        **common,
        giveaway_g=mean - qn if mean is not None else None,
        giveaway_pct=(mean - qn) / qn * 100 if mean is not None else None,
        giveaway_kg=(total - qn * count) / 1000 if count else None,
        below_t1=int(t1),
        below_t2=int(t2),
        target_g=(
            suggest_target(product.nominal_g, Decimal(str(round(sd, 3)))).target_g
            if sd is not None
            else None
        ),
    )


class ReportError(CommandLineError, LookupError):
    """The run is not in the store."""


def build_report(db_path: Path, run_number: str) -> RunReport:
    """Collect the report of ``run_number`` from the store at ``db_path``."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return build_report_from(db, run_number, where=str(db_path))
    finally:
        db.close()


def build_report_from(
    db: sqlite3.Connection, run_number: str, *, where: str = "the store"
) -> RunReport:
    """Collect the report of ``run_number`` over ``db``: a store, or any SQLite database with
    the store's schema (gateway/store/schema.py) holding the run's rows, such as the copy the
    warehouse reader makes, so both give the same report. Creates TEMP tables on ``db``."""
    row = db.execute("SELECT payload FROM runs WHERE run_number = ?", (run_number,)).fetchone()
    if row is None:
        raise ReportError(f"run {run_number!r} is not in {where}")
    run = run_from_json(json.loads(row[0]))
    for name in ("late", "by_qn", "run_packs"):
        db.execute(f"DROP TABLE IF EXISTS temp.{name}")
    db.execute(_RUN_PACKS[0], (run_number,))
    db.execute(_RUN_PACKS[1])
    db.execute(_RUN_PACKS[2])
    fixed = [
        (float(p.nominal_g), p.plu)
        for p in run.products
        if p.nominal_g is not None and not p.catch_weight
    ]
    qns = [qn for qn, _plu in fixed]
    db.executemany(
        "INSERT INTO by_qn (qn, plu) VALUES (?, ?)",
        [(qn, plu) for qn, plu in fixed if qns.count(qn) == 1],
    )
    db.execute(_RUN_PACKS[3], (int(RecordFlag.PRODUCT_UNKNOWN), run_number))
    products = []
    assigned = 0
    for product in run.products:
        line = _product_line(db, product)
        assigned += line.packs
        products.append(line)
    packs, grams, uncertain = db.execute(
        "SELECT count(*), coalesce(sum(net_g), 0), coalesce(sum(flags & ? != 0), 0) "
        "FROM packs WHERE run_number = ? AND accepted IS NOT 0",
        (_UNCERTAIN, run_number),
    ).fetchone()
    batches = tuple(
        dict(
            zip(
                (
                    "plu",
                    "start_us",
                    "end_us",
                    "n",
                    "mean_g",
                    "sd_g",
                    "below_t1",
                    "below_t2",
                    "verdict",
                    "reasons",
                ),
                r,
                strict=True,
            )
        )
        for r in db.execute(
            "SELECT plu, start_us, end_us, n, mean_g, sd_g, below_t1, below_t2, verdict, "
            "reasons FROM emark_batches WHERE run_number = ? ORDER BY start_us",
            (run_number,),
        )
    )
    start = run.actual_start or run.planned_start
    end = run.actual_end
    window = (to_us(start) if start else 0, to_us(end) if end else 2**62)
    load = _alarm_load(db, run.line, run_number, window)
    alerts = tuple(
        dict(zip(("ts_us", "rule", "subject", "severity", "state", "message"), r, strict=True))
        for r in db.execute(
            "SELECT ts_us, rule, subject, severity, state, message FROM alerts "
            "WHERE (subject LIKE ? OR subject LIKE ? OR (line = ? AND ts_us BETWEEN ? AND ?)) "
            "ORDER BY seq",
            (f"%/{run_number}/%", f"%/{run_number}", run.line, *window),
        )
    )
    raw = float(run.raw_material_kg) if run.raw_material_kg else None
    use_by = (
        expected_use_by(run.pack_date, run.shelf_life_adjust) if run.pack_date is not None else None
    )
    return RunReport(
        run=run,
        packs=int(packs),
        kg=float(grams) / 1000,
        packs_without_product=int(packs) - int(uncertain) - assigned,
        products=tuple(products),
        emark_batches=batches,
        yield_pct=float(grams) / 1000 / raw * 100 if raw else None,
        use_by=use_by,
        alerts=alerts,
        temperature_breaches=tuple(a for a in alerts if a["rule"] in ids.HACCP_RULES),
        label_gaps=tuple(a for a in alerts if a["rule"] == ids.LABEL_GAP),
        uncertain_packs=int(uncertain),
        alarm_load=load,
    )


def _alarm_load(
    db: sqlite3.Connection, line: str, run_number: str, window: tuple[int, int]
) -> AlarmLoad | None:
    """The line's alarm load over the run (to its end, else to its last pack or alert)."""
    start, end = window
    if end >= 2**62:
        (last,) = db.execute(
            "SELECT max(t) FROM (SELECT max(ts_us) AS t FROM packs WHERE run_number = ? "
            "UNION ALL SELECT max(ts_us) FROM alerts WHERE line = ? AND ts_us >= ?)",
            (run_number, line, start),
        ).fetchone()
        if last is None:
            return None
        end = int(last) + 1
    if end <= start:
        return None
    rows = db.execute(
        "SELECT ts_us, line, rule, state FROM alerts "
        "WHERE line = ? AND state = 'raised' AND ts_us >= ? AND ts_us < ?",
        (line, start, end),
    ).fetchall()
    active = [
        (a.raised_us, a.line)
        for a in fold_alerts(
            db.execute(
                "SELECT ts_us, alert_id, rule, subject, line, severity, state, message, detail "
                "FROM alerts WHERE line = ? AND alert_id IN (SELECT alert_id FROM alerts "
                "WHERE line = ? AND state = 'raised' AND ts_us < ?) AND ts_us < ? ORDER BY seq",
                (line, line, end, end),
            )
        )
        if a.active
    ]
    report = alarm_load(raises_from_rows(rows), start_us=start, end_us=end, active=active)
    return report.total


def _rejects(line: ProductLine) -> str:
    share = line.reject_pct
    return "-" if share is None else f"{line.rejected} {share:.1f}%"


def _g(value: float | Decimal | None, unit: str = " g", places: int = 1) -> str:
    return "-" if value is None else f"{float(value):.{places}f}{unit}"


def format_report(report: RunReport) -> str:
    """The report as text for a terminal or a printer."""
    run = report.run
    out = [
        f"Run {run.run_number}  line {run.line}  {run.status}",
        f"  {run.description}",
        f"  batch codes: {', '.join(run.batch_codes) or '-'}   species: {run.species or '-'}"
        f"   product type: {run.product_type or '-'}",
        f"  pack date: {run.pack_date or '-'}   shelf life +{run.shelf_life_adjust}"
        f"   expected use-by: {report.use_by or '-'}",
        f"  packs: {report.packs}   packed: {report.kg:.2f} kg   raw material: "
        f"{_g(run.raw_material_kg, ' kg', 0)}   yield: {_g(report.yield_pct, ' %')}",
        "",
        "Products (fixed weight)",
        f"  {'PLU':<8}{'Qn':>8}{'packs':>7}{'mean':>9}{'sd':>7}{'giveaway':>10}{'%':>7}"
        f"{'kg given':>10}{'<T1':>5}{'<T2':>5}{'target':>9}{'rejects':>9}",
    ]
    for p in report.products:
        if p.catch_weight:
            continue
        out.append(
            f"  {p.plu:<8}{_g(p.nominal_g, '', 0):>8}{p.packs:>7}{_g(p.mean_g, ''):>9}"
            f"{_g(p.sd_g, '', 2):>7}{_g(p.giveaway_g, ''):>10}{_g(p.giveaway_pct, '', 2):>7}"
            f"{_g(p.giveaway_kg, '', 3):>10}{p.below_t1:>5}{p.below_t2:>5}"
            f"{_g(p.target_g, ''):>9}{_rejects(p):>9}"
        )
    catch = [p for p in report.products if p.catch_weight]
    if catch:
        out += [
            "",
            "Products (catch weight: each pack sold at its own weight, no ℮ rules)",
            f"  {'PLU':<8}{'packs':>7}{'kg':>10}{'mean':>9}{'sd':>7}{'min':>9}{'max':>9}"
            f"{'rejects':>9}",
        ]
        for p in catch:
            out.append(
                f"  {p.plu:<8}{p.packs:>7}{p.kg:>10.3f}{_g(p.mean_g, ''):>9}"
                f"{_g(p.sd_g, '', 2):>7}{_g(p.min_g, ''):>9}{_g(p.max_g, ''):>9}"
                f"{_rejects(p):>9}"
            )
    if report.packs_without_product:
        out.append(f"  ({report.packs_without_product} packs not matched to a product)")
    if report.uncertain_packs:
        out.append(
            f"  ({report.uncertain_packs} packs with values not tied to their pack, flagged "
            "VALUES_UNCERTAIN: not in the figures above nor in the ℮ batches)"
        )
    out += ["", "℮ inspection batches (SI 2006/659 packer's record)"]
    for b in report.emark_batches:
        start = from_us(b["start_us"]).strftime("%H:%M")
        end = from_us(b["end_us"]).strftime("%H:%M")
        out.append(
            f"  {b['plu']:<8}{start}-{end}  n {b['n']:>5}  mean {b['mean_g']:>8}  sd {b['sd_g']:>6}"
            f"  <T1 {b['below_t1']:>3}  <T2 {b['below_t2']:>3}  {b['verdict'].upper()}"
        )
    if not report.emark_batches:
        out.append("  none closed yet")
    out += [
        "",
        f"Temperature breaches: {sum(a['state'] == 'raised' for a in report.temperature_breaches)}"
        f"   label gaps: {sum(a['state'] == 'raised' for a in report.label_gaps)}",
        "",
        "Alerts",
    ]
    for a in report.alerts:
        when = from_us(a["ts_us"]).strftime("%H:%M:%S")
        out.append(f"  {when} {a['severity']:<8} {a['state']:<12} {a['rule']:<24} {a['message']}")
    if not report.alerts:
        out.append("  none")
    load = report.alarm_load
    if load is not None:
        top = ", ".join(f"{rule} {n}" for rule, n in load.top_rules[:3]) or "-"
        out += [
            "",
            f"Alarm load on line {run.line} (ISA-18.2; a flood is more than 10 raised in 10 min)",
            f"  raised {load.raised} in {load.periods} ten-minute periods: "
            f"{load.per_10_min:.2f} per 10 min on average, {load.peak_10_min} at most; "
            f"in flood {load.flood_periods} ({load.flood_pct:.1f} %); stale {load.stale}",
            f"  most frequent: {top}",
        ]
    return "\n".join(out)
