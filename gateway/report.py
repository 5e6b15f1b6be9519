"""The run report: what one production run packed and how it did, straight from the store.

Read through a read-only connection (SQLite WAL lets it run beside the gateway's writer):
packs and kg, giveaway per product, ℮ inspection batches and their verdicts, T1/T2 counts,
yield, temperature breaches, label gaps, and every alert of the run.

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

from adapters.erp.model import ProductionRun, run_from_json
from gateway.records import RecordFlag
from gateway.runs import from_us, to_us
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


_UNCERTAIN = int(RecordFlag.VALUES_UNCERTAIN)


class ReportError(LookupError):
    """The run is not in the store."""


def build_report(db_path: Path, run_number: str) -> RunReport:
    """Collect the report of ``run_number`` from the store at ``db_path``."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT payload FROM runs WHERE run_number = ?", (run_number,)).fetchone()
        if row is None:
            raise ReportError(f"run {run_number!r} is not in {db_path}")
        run = run_from_json(json.loads(row[0]))
        products = []
        assigned = 0
        for product in run.products:
            if product.nominal_g is None:
                continue
            stats = db.execute(
                "SELECT count(*), sum(net_g), sum(net_g * net_g) FROM packs "
                "WHERE run_number = ? AND nominal_g = ? AND accepted IS NOT 0 AND flags & ? = 0",
                (run_number, float(product.nominal_g), _UNCERTAIN),
            ).fetchone()
            count, total, squares = int(stats[0]), stats[1] or 0.0, stats[2] or 0.0
            assigned += count
            qn = float(product.nominal_g)
            mean = total / count if count else None
            sd = (
                math.sqrt(max(squares - total * total / count, 0.0) / (count - 1))
                if count > 1
                else None
            )
            emark = limits(product.nominal_g)
            t1, t2 = db.execute(
                "SELECT sum(net_g < ?), sum(net_g < ?) FROM packs "
                "WHERE run_number = ? AND nominal_g = ? AND accepted IS NOT 0 AND flags & ? = 0",
                (float(emark.t1), float(emark.t2), run_number, qn, _UNCERTAIN),
            ).fetchone()
            products.append(
                ProductLine(
                    plu=product.plu,
                    description=product.description,
                    nominal_g=product.nominal_g,
                    packs=count,
                    kg=total / 1000,
                    mean_g=mean,
                    sd_g=sd,
                    giveaway_g=mean - qn if mean is not None else None,
                    giveaway_pct=(mean - qn) / qn * 100 if mean is not None else None,
                    giveaway_kg=(total - qn * count) / 1000 if count else None,
                    below_t1=int(t1 or 0),
                    below_t2=int(t2 or 0),
                    target_g=(
                        suggest_target(product.nominal_g, Decimal(str(round(sd, 3)))).target_g
                        if sd is not None
                        else None
                    ),
                )
            )
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
        alerts = tuple(
            dict(zip(("ts_us", "rule", "subject", "severity", "state", "message"), r, strict=True))
            for r in db.execute(
                "SELECT ts_us, rule, subject, severity, state, message FROM alerts "
                "WHERE (subject LIKE ? OR subject LIKE ? OR (line = ? AND ts_us BETWEEN ? AND ?)) "
                "ORDER BY seq",
                (f"%/{run_number}/%", f"%/{run_number}", run.line, *window),
            )
        )
    finally:
        db.close()
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
        temperature_breaches=tuple(a for a in alerts if a["rule"].startswith("haccp_")),
        label_gaps=tuple(a for a in alerts if a["rule"] == "label_gap"),
        uncertain_packs=int(uncertain),
    )


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
        f"{'kg given':>10}{'<T1':>5}{'<T2':>5}{'target':>9}",
    ]
    for p in report.products:
        out.append(
            f"  {p.plu:<8}{_g(p.nominal_g, '', 0):>8}{p.packs:>7}{_g(p.mean_g, ''):>9}"
            f"{_g(p.sd_g, '', 2):>7}{_g(p.giveaway_g, ''):>10}{_g(p.giveaway_pct, '', 2):>7}"
            f"{_g(p.giveaway_kg, '', 3):>10}{p.below_t1:>5}{p.below_t2:>5}"
            f"{_g(p.target_g, ''):>9}"
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
    return "\n".join(out)
