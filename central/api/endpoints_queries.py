"""The cross-run questions: sites, lines, traceability, breaches, giveaway, alerts, shelf
life and the fleet."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from central.api.models import model_for
from central.api.params import (
    Limit,
    Line,
    Reader,
    Settings,
    Since,
    Site,
    Until,
    format_param,
    known_parameters_only,
    limit_of,
    span,
)
from central.api.responses import answer
from central.api.settings import ApiSettings
from central.rows import (
    AlertRow,
    BreachRow,
    FleetRow,
    GiveawayRow,
    LineRow,
    RunRow,
    ShelfLifeRow,
    SiteRow,
    Trace,
    TraceLabel,
    TracePack,
    TraceTemperature,
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "a query parameter is invalid"},
    503: {"description": "the warehouse is unavailable (see Retry-After)"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "nothing recorded for it"}}

TraceTable = Literal["packs", "labels", "temperatures", "runs"]
_TRACE_TYPES: dict[str, type] = {
    "packs": TracePack,
    "labels": TraceLabel,
    "temperatures": TraceTemperature,
    "runs": RunRow,
}
Key = Annotated[str, Path(min_length=1, max_length=128)]
TraceLimit = Annotated[
    int | None,
    Query(
        description="at most this many packs, labels and temperatures per run "
        "(default and maximum: the server's --max-rows)",
        ge=1,
    ),
]
Table = Annotated[
    TraceTable,
    Query(description="CSV only: which rows of the trace (JSON always holds all of them)"),
]


def _trace_rows(trace: Trace, table: str) -> Iterator[Any]:
    for run in trace.runs:
        if table == "runs":
            yield run.run
        else:
            yield from getattr(run, table)


def _bounded(trace: Trace, limit: int) -> tuple[Trace, bool]:
    """The trace with at most ``limit`` packs, labels and temperatures per run (whether any
    were cut): a batch code used for weeks must not become an answer of millions of rows."""
    names = ("packs", "labels", "temperatures")
    cut = any(len(getattr(run, name)) > limit for run in trace.runs for name in names)
    if not cut:
        return trace, False
    runs = tuple(
        dataclasses.replace(run, **{name: getattr(run, name)[:limit] for name in names})
        for run in trace.runs
    )
    return dataclasses.replace(trace, runs=runs), True


def _trace_limit(settings: ApiSettings, limit: int | None) -> int:
    return settings.max_rows if limit is None else limit_of(settings, limit)


def _now(settings: ApiSettings) -> datetime:
    return datetime.fromtimestamp(settings.clock.wall_us() / 1_000_000, UTC)


def _limited(request: Request, rows: list[Any], limit: int, **options: Any) -> Response:
    return answer(request, rows[:limit], truncated=len(rows) > limit, **options)


def query_router() -> APIRouter:
    """The endpoints over many runs."""
    router = APIRouter(
        tags=["warehouse"],
        responses=_ERRORS,
        dependencies=[Depends(format_param), Depends(known_parameters_only)],
    )

    @router.get("/sites", summary="Every site", response_model=list[model_for(SiteRow)])  # type: ignore[misc]
    def sites(request: Request, reader: Reader) -> Response:
        return answer(request, reader.sites(), name="sites", row_type=SiteRow)

    @router.get("/lines", summary="Every line", response_model=list[model_for(LineRow)])  # type: ignore[misc]
    def lines(request: Request, reader: Reader, site: Site = None) -> Response:
        return answer(request, reader.lines(site=site), name="lines", row_type=LineRow)

    def trace(request: Request, found: Trace, table: str, limit: int) -> Response:
        bounded, truncated = _bounded(found, limit)
        return answer(
            request,
            bounded,
            name=f"trace-{found.kind}-{found.key}-{table}",
            row_type=_TRACE_TYPES[table],
            table=lambda t: _trace_rows(t, table),
            truncated=truncated,
        )

    @router.get(
        "/trace/batch/{code}",
        summary="A batch code → its runs → products → packs and labels → temperatures",
        response_model=model_for(Trace),
        responses=_NOT_FOUND,
    )
    def trace_batch(
        request: Request,
        *,
        reader: Reader,
        settings: Settings,
        code: Key,
        table: Table = "packs",
        limit: TraceLimit = None,
    ) -> Response:
        return trace(request, reader.trace_batch(code), table, _trace_limit(settings, limit))

    @router.get(
        "/trace/serial/{serial}",
        summary="A label serial → its scans → run → the run's batch codes",
        response_model=model_for(Trace),
        responses=_NOT_FOUND,
    )
    def trace_serial(
        request: Request,
        *,
        reader: Reader,
        settings: Settings,
        serial: Key,
        table: Table = "labels",
        limit: TraceLimit = None,
    ) -> Response:
        return trace(request, reader.trace_serial(serial), table, _trace_limit(settings, limit))

    @router.get(
        "/breaches",
        summary="Temperature (HACCP) breaches raised in the span, newest first",
        response_model=list[model_for(BreachRow)],  # type: ignore[misc]
    )
    def breaches(
        request: Request,
        *,
        reader: Reader,
        settings: Settings,
        site: Site = None,
        line: Line = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = None,
    ) -> Response:
        since, until = span(settings, since, until)
        found = reader.temperature_breaches(site=site, line=line, since=since, until=until)
        return _limited(
            request, found, limit_of(settings, limit), name="breaches", row_type=BreachRow
        )

    @router.get(
        "/giveaway",
        summary="Giveaway per run, line-hour, line-shift or product-day",
        response_model=list[model_for(GiveawayRow)],  # type: ignore[misc]
    )
    def giveaway(
        request: Request,
        *,
        reader: Reader,
        settings: Settings,
        by: Annotated[
            Literal["run", "line_hour", "line_shift", "product_day"],
            Query(description="the grouping"),
        ] = "run",
        site: Site = None,
        line: Line = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = None,
    ) -> Response:
        since, until = span(settings, since, until)
        found = reader.giveaway(by=by, site=site, line=line, since=since, until=until)
        return _limited(
            request, found, limit_of(settings, limit), name=f"giveaway-{by}", row_type=GiveawayRow
        )

    @router.get(
        "/alerts/active",
        summary="Alerts active now, newest first",
        response_model=list[model_for(AlertRow)],  # type: ignore[misc]
    )
    def active_alerts(
        request: Request,
        *,
        reader: Reader,
        settings: Settings,
        site: Site = None,
        line: Line = None,
        limit: Limit = None,
    ) -> Response:
        found = reader.active_alerts(site=site, line=line)
        return _limited(
            request, found, limit_of(settings, limit), name="alerts-active", row_type=AlertRow
        )

    @router.get(
        "/shelf-life",
        summary="Runs whose product nears its use-by or is due to be frozen down (today, UTC)",
        response_model=list[model_for(ShelfLifeRow)],  # type: ignore[misc]
    )
    def shelf_life(
        request: Request,
        *,
        reader: Reader,
        settings: Settings,
        within_days: Annotated[
            int, Query(description="days before the use-by to include", ge=0, le=60)
        ] = 3,
        limit: Limit = None,
    ) -> Response:
        as_of = _now(settings).date()
        found = reader.shelf_life(as_of=as_of, within_days=within_days)
        return _limited(
            request, found, limit_of(settings, limit), name="shelf-life", row_type=ShelfLifeRow
        )

    @router.get(
        "/fleet",
        summary="Every gateway: last contact, sync lag, backlog, alert load (ISA-18.2)",
        response_model=list[model_for(FleetRow)],  # type: ignore[misc]
    )
    def fleet(request: Request, reader: Reader, settings: Settings) -> Response:
        found = reader.fleet(now=_now(settings))
        return answer(request, found, name="fleet", row_type=FleetRow)

    return router
