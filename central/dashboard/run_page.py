"""The run page: KPI cards, weight histograms, temperatures, compliance and alerts.

Every figure comes from the reader (docs/dashboard.md): the KPI cards from
``run_summary`` (built from the gateway's own run report, so they equal ``lineside report``),
the histograms from ``pack_weights``, the temperatures from ``temperature_series``, the
checks from ``compliance`` and the alerts and label gaps from ``run_report``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from central.dashboard import charts
from central.dashboard.pages import Page
from central.dashboard.render import svg_uri
from central.reader import WarehouseReader
from central.rows import ProductWeights, TemperatureSeries


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart on the page: its caption and its ``data:`` URI."""

    caption: str
    uri: str


def run_page(reader: WarehouseReader, gateway: str, run_number: str) -> Page:
    """Everything about one run of one gateway."""
    summary = reader.run_summary(run_number, gateway=gateway)
    report = reader.run_report(run_number, gateway=gateway)
    weights = reader.pack_weights(run_number, gateway=gateway)
    series = reader.temperature_series(run_number, gateway=gateway)
    return Page(
        "run.html",
        {
            "title": f"Run {run_number}",
            "summary": summary,
            "run": report.run,
            "report": report,
            "histograms": [_histogram(product) for product in weights.products],
            "temperatures": [temperature_chart(one) for one in series],
            "checks": reader.compliance(run_number, gateway=gateway),
            "alerts": [_alert(a) for a in report.alerts],
            "label_gaps": [_alert(a) for a in report.label_gaps],
        },
    )


def _histogram(product: ProductWeights) -> Chart:
    label = f"PLU {product.plu} {product.description}".strip()
    limits = charts.Limits(
        qn_g=None if product.nominal_g is None else float(product.nominal_g),
        t1_g=None if product.t1_g is None else float(product.t1_g),
        t2_g=None if product.t2_g is None else float(product.t2_g),
    )
    svg = charts.weight_histogram(f"Net weights, {label}", product.net_g, limits)
    return Chart(label, svg_uri(svg))


def temperature_chart(series: TemperatureSeries) -> Chart:
    """One probe's readings against its limits, its breaches shaded."""
    # The limits come with the series, from its HACCP alerts' detail (never their message).
    low, high = series.lower_limit_c, series.upper_limit_c
    end = series.points[-1].ts if series.points else None
    spans = [charts.Interval(b.start, b.end or end or b.start) for b in series.breaches]
    where = f" ({series.location})" if series.location else ""
    caption = f"Probe {series.probe}{where}, line {series.line}"
    svg = charts.temperature_chart(
        f"Temperature, {caption}",
        [(p.ts, p.celsius) for p in series.points],
        low_c=low,
        high_c=high,
        breaches=spans,
    )
    return Chart(caption, svg_uri(svg))


def _alert(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An alert of the run report with its time as a datetime (the report keeps µs)."""
    ts_us = alert.get("ts_us")
    at = datetime.fromtimestamp(ts_us / 1_000_000, UTC) if isinstance(ts_us, int) else None
    return {**alert, "at": at}


__all__ = ["Chart", "run_page", "temperature_chart"]
