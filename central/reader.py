"""Read-only queries over the warehouse (PostgreSQL or SQLite): docs/warehouse-analytics.md.

Synchronous, one connection. PostgreSQL sessions are set ``default_transaction_read_only``;
a SQLite file is opened read-only. Every query is served by an index of the typed facts
(never a scan of ``records``). The run report is the gateway's own (gateway/report.py) over
the run's rows copied from the warehouse, so it equals ``lineside report`` on the gateway.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Literal

from central import analytics, catalog, run_copy, summary, trace
from central.compliance import compliance
from central.db import Db
from central.errors import WarehouseReadError
from central.rows import (
    AlertRow,
    BreachRow,
    ComplianceCheck,
    FleetRow,
    GiveawayRow,
    LineRow,
    RunRow,
    RunSummary,
    ShelfLifeRow,
    SiteRow,
    TemperatureSeries,
    Trace,
    WeightSample,
)
from gateway.report import RunReport, build_report_from
from gateway.report_output import RunAlerts, RunLosses, run_alerts_from, run_losses_from

GiveawayBy = Literal["run", "line_hour", "line_shift", "product_day"]


@dataclass(frozen=True, slots=True)
class RunReportParts:
    """Everything ``lineside report`` prints for a run, from the warehouse."""

    gateway: str
    site: str
    report: RunReport
    losses: RunLosses
    alerts: RunAlerts


class WarehouseReader:
    """Read-only queries over the warehouse (PostgreSQL DSN or SQLite path). Synchronous,
    one connection; PostgreSQL sessions are set ``default_transaction_read_only = on``."""

    @classmethod
    def open(cls, target: str) -> WarehouseReader:
        """Open ``target``: a ``postgresql://`` DSN or a SQLite file path.

        Raises WarehouseReadError when it cannot be opened."""
        return cls(Db(target))

    def __init__(self, db: Db) -> None:
        self._db = db

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._db.close()

    def __enter__(self) -> WarehouseReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def ping(self) -> None:
        """Check that the warehouse answers; raises WarehouseReadError otherwise."""
        self._db.rows("SELECT count(*) FROM gateways")

    def sites(self) -> list[SiteRow]:
        """Every site, by id."""
        return catalog.sites(self._db)

    def lines(self, *, site: str | None = None) -> list[LineRow]:
        """Every line (of one site), by gateway and line."""
        return catalog.lines(self._db, site)

    def runs(
        self,
        *,
        site: str | None = None,
        gateway: str | None = None,
        line: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 200,
    ) -> list[RunRow]:
        """Runs, newest start first; ``since``/``until`` bound the run's start."""
        return catalog.runs(
            self._db,
            site=site,
            gateway=gateway,
            line=line,
            status=status,
            since=since,
            until=until,
            limit=limit,
        )

    def run_report(self, run_number: str, *, gateway: str | None = None) -> RunReport:
        """Exactly what ``lineside report`` on the gateway's store gives for the run.

        Raises NotFound, or Ambiguous when two gateways recorded the run and none is named."""
        return self.run_report_parts(run_number, gateway=gateway).report

    def run_report_parts(self, run_number: str, *, gateway: str | None = None) -> RunReportParts:
        """The report with its losses and alerts, as ``lineside report`` prints them (its
        buffered records are 0: what the warehouse holds is no longer buffered)."""
        found = run_copy.resolve_gateway(self._db, run_number, gateway)
        try:
            mem = run_copy.copy_run(self._db, found, run_number)
        except (ValueError, TypeError, KeyError, sqlite3.Error) as exc:
            # A stored run the gateway's own parser refuses, or rows the store's schema does
            # not take: the warehouse holds what it should not.
            raise WarehouseReadError(f"run {run_number!r} cannot be read: {exc}") from exc
        try:
            report = build_report_from(mem, run_number, where="the warehouse")
            losses = run_losses_from(mem, report)
            alerts = run_alerts_from(mem, report)
        except (ValueError, TypeError, KeyError, sqlite3.Error) as exc:
            raise WarehouseReadError(f"run {run_number!r} cannot be reported: {exc}") from exc
        finally:
            mem.close()
        row = catalog.run_row(self._db, found, run_number)
        site = row.site if row is not None else ""
        return RunReportParts(found, site, report, losses, alerts)

    def run_summary(self, run_number: str, *, gateway: str | None = None) -> RunSummary:
        """The per-run analytics row, from the same RunReport so the figures agree."""
        parts = self.run_report_parts(run_number, gateway=gateway)
        return summary.run_summary(
            parts.report, parts.losses, gateway=parts.gateway, site=parts.site
        )

    def trace_batch(self, batch_code: str) -> Trace:
        """A batch code → its runs → products → packs and labels → temperatures.

        Raises NotFound when no run used the batch code."""
        return trace.trace_batch(self._db, batch_code)

    def trace_serial(self, serial: str) -> Trace:
        """A label serial → its scan(s) → run → the run's batch codes.

        Raises NotFound when no label carried the serial."""
        return trace.trace_serial(self._db, serial)

    def compliance(self, run_number: str, *, gateway: str | None = None) -> list[ComplianceCheck]:
        """The seed pipeline's compliance checks of one run."""
        parts = self.run_report_parts(run_number, gateway=gateway)
        return compliance(self._db, parts.gateway, parts.report)

    def temperature_breaches(
        self,
        *,
        site: str | None = None,
        line: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[BreachRow]:
        """HACCP breaches raised in the span, newest first."""
        return analytics.temperature_breaches(
            self._db, site=site, line=line, since=since, until=until
        )

    def giveaway(
        self,
        *,
        by: GiveawayBy,
        site: str | None = None,
        line: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[GiveawayRow]:
        """Giveaway grouped by run, line-hour, line-shift or product-day."""
        return analytics.giveaway(self._db, by=by, site=site, line=line, since=since, until=until)

    def active_alerts(self, *, site: str | None = None, line: str | None = None) -> list[AlertRow]:
        """Alerts active now (rules_engine's notion of active), newest first."""
        return analytics.active_alerts(self._db, site=site, line=line)

    def shelf_life(self, *, as_of: date, within_days: int = 3) -> list[ShelfLifeRow]:
        """Runs whose product is within ``within_days`` of its use-by or due to be frozen."""
        return analytics.shelf_life(self._db, as_of=as_of, within_days=within_days)

    def fleet(self, *, now: datetime) -> list[FleetRow]:
        """Every gateway's sync and alert state at ``now`` (injected: no clock reads)."""
        return analytics.fleet(self._db, now=now)

    def pack_weights(self, run_number: str, *, gateway: str | None = None) -> WeightSample:
        """Net grams of the run's accepted, certain packs per PLU, with Qn/T1/T2."""
        found = run_copy.resolve_gateway(self._db, run_number, gateway)
        return analytics.pack_weights(self._db, found, run_number)

    def temperature_series(
        self, run_number: str, *, gateway: str | None = None
    ) -> list[TemperatureSeries]:
        """Per probe: its readings during the run and its breach intervals."""
        found = run_copy.resolve_gateway(self._db, run_number, gateway)
        return analytics.temperature_series(self._db, found, run_number)
