"""Read-only queries over the warehouse (PostgreSQL or SQLite): docs/warehouse-analytics.md.

Synchronous, one connection. PostgreSQL sessions are set ``default_transaction_read_only``;
a SQLite file is opened read-only. Every query is served by an index of the typed facts
(never a scan of ``records``). The run report is the gateway's own (gateway/report.py) over
the run's rows copied from the warehouse, so it equals ``lineside report`` on the gateway.
"""

from __future__ import annotations

from datetime import date, datetime
from types import TracebackType
from typing import Literal

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
from gateway.report import RunReport

GiveawayBy = Literal["run", "line_hour", "line_shift", "product_day"]


class WarehouseReader:
    """Read-only queries over the warehouse (PostgreSQL DSN or SQLite path). Synchronous,
    one connection; PostgreSQL sessions are set ``default_transaction_read_only = on``."""

    @classmethod
    def open(cls, target: str) -> WarehouseReader:
        """Open ``target``: a ``postgresql://`` DSN or a SQLite file path.

        Raises WarehouseReadError when it cannot be opened."""
        raise WarehouseReadError(f"cannot open {target!r}: not implemented yet")

    def close(self) -> None:
        """Close the connection (idempotent)."""

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
        raise NotImplementedError

    def sites(self) -> list[SiteRow]:
        """Every site, by id."""
        raise NotImplementedError

    def lines(self, *, site: str | None = None) -> list[LineRow]:
        """Every line (of one site), by gateway and line."""
        raise NotImplementedError

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
        raise NotImplementedError

    def run_report(self, run_number: str, *, gateway: str | None = None) -> RunReport:
        """Exactly what ``lineside report`` on the gateway's store gives for the run.

        Raises NotFound, or Ambiguous when two gateways recorded the run and none is named."""
        raise NotImplementedError

    def run_summary(self, run_number: str, *, gateway: str | None = None) -> RunSummary:
        """The per-run analytics row, from the same RunReport so the figures agree."""
        raise NotImplementedError

    def trace_batch(self, batch_code: str) -> Trace:
        """A batch code → its runs → products → packs and labels → temperatures.

        Raises NotFound when no run used the batch code."""
        raise NotImplementedError

    def trace_serial(self, serial: str) -> Trace:
        """A label serial → its scan(s) → run → the run's batch codes.

        Raises NotFound when no label carried the serial."""
        raise NotImplementedError

    def compliance(self, run_number: str, *, gateway: str | None = None) -> list[ComplianceCheck]:
        """The seed pipeline's compliance checks of one run."""
        raise NotImplementedError

    def temperature_breaches(
        self,
        *,
        site: str | None = None,
        line: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[BreachRow]:
        """HACCP breaches raised in the span, newest first."""
        raise NotImplementedError

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
        raise NotImplementedError

    def active_alerts(self, *, site: str | None = None, line: str | None = None) -> list[AlertRow]:
        """Alerts active now (rules_engine's notion of active), newest first."""
        raise NotImplementedError

    def shelf_life(self, *, as_of: date, within_days: int = 3) -> list[ShelfLifeRow]:
        """Runs whose product is within ``within_days`` of its use-by or due to be frozen."""
        raise NotImplementedError

    def fleet(self, *, now: datetime) -> list[FleetRow]:
        """Every gateway's sync and alert state at ``now`` (injected: no clock reads)."""
        raise NotImplementedError

    def pack_weights(self, run_number: str, *, gateway: str | None = None) -> WeightSample:
        """Net grams of the run's accepted, certain packs per PLU, with Qn/T1/T2."""
        raise NotImplementedError

    def temperature_series(
        self, run_number: str, *, gateway: str | None = None
    ) -> list[TemperatureSeries]:
        """Per probe: its readings during the run and its breach intervals."""
        raise NotImplementedError
