"""The fleet, site, line and trace pages: what each asks the reader, as template context.

Each function takes an open reader and returns a :class:`Page`; it does no I/O of its own
and reads no clock (the fleet's ``now`` is passed in). docs/dashboard.md lists, figure by
figure, which reader method each comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from central.dashboard import charts
from central.dashboard.render import svg_uri
from central.errors import NotFound
from central.reader import WarehouseReader
from central.rows import GiveawayRow

LINE_RUNS = 20
"""Runs listed on a line page, newest first; each costs one run summary."""
SITE_RUNS = 50
"""Runs listed on a site page."""
TRACE_KEY_MAX = 128
"""Longest batch code or serial searched (a GS1 batch is 20 characters, a serial 20)."""


@dataclass(frozen=True, slots=True)
class Page:
    """A page to render: its template, its context and its HTTP status."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)
    status: int = 200


def fleet_page(reader: WarehouseReader, *, now: datetime) -> Page:
    """Every site and gateway: last contact, sync lag, backlog, alert load, active alerts."""
    return Page(
        "fleet.html",
        {
            "title": "Fleet",
            "now": now,
            "sites": reader.sites(),
            "fleet": reader.fleet(now=now),
            "alerts": reader.active_alerts(),
        },
    )


def site_page(reader: WarehouseReader, site: str) -> Page:
    """One site: its lines, its recent runs and its active alerts."""
    found = [row for row in reader.sites() if row.site == site]
    if not found:
        raise NotFound(f"no site {site!r} in the warehouse")
    return Page(
        "site.html",
        {
            "title": f"Site {found[0].name or site}",
            "site": found[0],
            "lines": reader.lines(site=site),
            "runs": reader.runs(site=site, limit=SITE_RUNS),
            "alerts": reader.active_alerts(site=site),
        },
    )


def line_page(reader: WarehouseReader, site: str, gateway: str, line: str) -> Page:
    """One line: its runs with their figures and label gaps, and the giveaway trend."""
    found = [row for row in reader.lines(site=site) if row.gateway == gateway and row.line == line]
    if not found:
        raise NotFound(f"no line {line!r} of gateway {gateway!r} at site {site!r}")
    runs = reader.runs(site=site, gateway=gateway, line=line, limit=LINE_RUNS)
    summaries = [reader.run_summary(run.run_number, gateway=gateway) for run in runs]
    hours = [
        row
        for row in reader.giveaway(by="line_hour", site=site, line=line)
        if row.gateway == gateway
    ]
    title = f"Giveaway per hour, line {found[0].name or line}"
    return Page(
        "line.html",
        {
            "title": f"Line {found[0].name or line}",
            "line": found[0],
            "rows": list(zip(runs, summaries, strict=True)),
            "gap_runs": [s for s in summaries if s.label_gaps],
            "trend": svg_uri(charts.giveaway_trend(title, _trend(hours))),
            "hours": hours,
        },
    )


def _trend(rows: list[GiveawayRow]) -> list[tuple[datetime, float]]:
    return sorted(
        (row.period_start, row.giveaway_pct)
        for row in rows
        if row.period_start is not None and row.giveaway_pct is not None
    )


def trace_page(reader: WarehouseReader, *, batch: str, serial: str) -> Page:
    """The search form, and the trace of a batch code or a label serial when one is given."""
    batch, serial = batch.strip(), serial.strip()
    context: dict[str, Any] = {"title": "Trace", "batch": batch, "serial": serial, "trace": None}
    if len(batch) > TRACE_KEY_MAX or len(serial) > TRACE_KEY_MAX:
        context["problem"] = f"a batch code or serial is at most {TRACE_KEY_MAX} characters"
        return Page("trace.html", context, status=400)
    if batch:
        context["trace"] = reader.trace_batch(batch)
    elif serial:
        context["trace"] = reader.trace_serial(serial)
    return Page("trace.html", context)


__all__ = ["Page", "fleet_page", "line_page", "site_page", "trace_page"]
