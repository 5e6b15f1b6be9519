"""``/runs`` and one run's report, summary, compliance, weights and temperatures."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from central.api.models import model_for
from central.api.params import (
    GatewayId,
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
from central.rows import (
    ComplianceCheck,
    RunRow,
    RunSummary,
    TemperatureSeries,
    WeightSample,
)
from gateway.report import ProductLine, RunReport

RunNumber = Annotated[str, Path(description="the run number", min_length=1, max_length=128)]
Status = Annotated[
    str | None, Query(description="only runs in this status", min_length=1, max_length=32)
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "a query parameter is invalid"},
    404: {"description": "no such run"},
    409: {"description": "the run number is on several gateways: give `gateway`"},
    503: {"description": "the warehouse is unavailable (see Retry-After)"},
}


def _weight_rows(sample: WeightSample) -> Iterator[dict[str, Any]]:
    """One CSV row per pack weight."""
    for product in sample.products:
        for net_g in product.net_g:
            yield {
                "gateway": sample.gateway,
                "run_number": sample.run_number,
                "plu": product.plu,
                "nominal_g": product.nominal_g,
                "t1_g": product.t1_g,
                "t2_g": product.t2_g,
                "net_g": net_g,
            }


def _temperature_rows(series: list[TemperatureSeries]) -> Iterator[dict[str, Any]]:
    """One CSV row per reading."""
    for probe in series:
        for point in probe.points:
            yield {
                "line": probe.line,
                "probe": probe.probe,
                "location": probe.location,
                "ts": point.ts,
                "celsius": point.celsius,
            }


def _report_rows(report: RunReport) -> Iterator[dict[str, Any]]:
    """One CSV row per product, named by its run (so several runs' rows can be stacked)."""
    for product in report.products:
        row = {f.name: getattr(product, f.name) for f in dataclasses.fields(product)}
        yield {"run_number": report.run.run_number, "line": report.run.line, **row}


def runs_router() -> APIRouter:
    """The run endpoints."""
    router = APIRouter(
        tags=["runs"],
        responses=_ERRORS,
        dependencies=[Depends(format_param), Depends(known_parameters_only)],
    )

    @router.get(
        "/runs",
        summary="Production runs, newest start first",
        response_model=list[model_for(RunRow)],  # type: ignore[misc]
    )
    def runs(
        request: Request,
        *,
        reader: Reader,
        settings: Settings,
        site: Site = None,
        gateway: GatewayId = None,
        line: Line = None,
        status: Status = None,
        since: Since = None,
        until: Until = None,
        limit: Limit = None,
    ) -> Response:
        since, until = span(settings, since, until)
        rows = limit_of(settings, limit)
        found = reader.runs(
            site=site,
            gateway=gateway,
            line=line,
            status=status,
            since=since,
            until=until,
            limit=rows + 1,
        )
        return answer(
            request, found[:rows], name="runs", row_type=RunRow, truncated=len(found) > rows
        )

    @router.get(
        "/runs/{run}/report",
        summary="The run's report, exactly as `lineside report` gives it on the gateway",
        description="CSV: one row per product of the run.",
        response_model=model_for(RunReport),
    )
    def report(
        request: Request, reader: Reader, run: RunNumber, gateway: GatewayId = None
    ) -> Response:
        found = reader.run_report(run, gateway=gateway)
        return answer(
            request,
            found,
            name=f"report-{run}",
            columns=["run_number", "line"],
            row_type=ProductLine,
            table=_report_rows,
        )

    @router.get(
        "/runs/{run}/summary",
        summary="The run's analytics row (figures from its report)",
        response_model=model_for(RunSummary),
    )
    def summary(
        request: Request, reader: Reader, run: RunNumber, gateway: GatewayId = None
    ) -> Response:
        found = reader.run_summary(run, gateway=gateway)
        return answer(request, found, name=f"summary-{run}", row_type=RunSummary)

    @router.get(
        "/runs/{run}/compliance",
        summary="The run's compliance checks",
        response_model=list[model_for(ComplianceCheck)],  # type: ignore[misc]
    )
    def compliance(
        request: Request, reader: Reader, run: RunNumber, gateway: GatewayId = None
    ) -> Response:
        found = reader.compliance(run, gateway=gateway)
        return answer(request, found, name=f"compliance-{run}", row_type=ComplianceCheck)

    @router.get(
        "/runs/{run}/weights",
        summary="Net grams of the run's accepted, certain packs per product, with Qn/T1/T2",
        description="CSV: one row per pack.",
        response_model=model_for(WeightSample),
    )
    def weights(
        request: Request, reader: Reader, run: RunNumber, gateway: GatewayId = None
    ) -> Response:
        found = reader.pack_weights(run, gateway=gateway)
        columns = ["gateway", "run_number", "plu", "nominal_g", "t1_g", "t2_g", "net_g"]
        return answer(request, found, name=f"weights-{run}", table=_weight_rows, columns=columns)

    @router.get(
        "/runs/{run}/temperatures",
        summary="Per probe: its readings during the run and its breach intervals",
        description="CSV: one row per reading.",
        response_model=list[model_for(TemperatureSeries)],  # type: ignore[misc]
    )
    def temperatures(
        request: Request, reader: Reader, run: RunNumber, gateway: GatewayId = None
    ) -> Response:
        found = reader.temperature_series(run, gateway=gateway)
        columns = ["line", "probe", "location", "ts", "celsius"]
        return answer(
            request, found, name=f"temperatures-{run}", table=_temperature_rows, columns=columns
        )

    return router
