"""What the endpoints share: the reader of one request, and the checks of the query string."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Query
from starlette.requests import Request

from central.api.problems import BadRequest
from central.api.settings import ApiSettings
from central.reader import WarehouseReader


def open_reader(request: Request) -> Iterator[WarehouseReader]:
    """A reader for this request, closed when it is answered."""
    reader: WarehouseReader = request.app.state.reader_factory()
    try:
        yield reader
    finally:
        reader.close()


def settings_of(request: Request) -> ApiSettings:
    """The app's settings."""
    settings: ApiSettings = request.app.state.settings
    return settings


Reader = Annotated[WarehouseReader, Depends(open_reader)]
Settings = Annotated[ApiSettings, Depends(settings_of)]

_TEXT = {"min_length": 1, "max_length": 128}
Site = Annotated[str | None, Query(description="only this site", **_TEXT)]
Line = Annotated[str | None, Query(description="only this line id", **_TEXT)]
GatewayId = Annotated[
    str | None,
    Query(description="the gateway (needed when two gateways used the run number)", **_TEXT),
]
Since = Annotated[
    datetime | None,
    Query(description="from this time (ISO 8601; without a zone: UTC)"),
]
Until = Annotated[
    datetime | None,
    Query(description="before this time (ISO 8601; without a zone: UTC)"),
]
Limit = Annotated[
    int | None, Query(description="at most this many rows (default and maximum: see docs)", ge=1)
]


def format_param(
    fmt: Annotated[
        str | None,
        Query(
            alias="format",
            description="json (default) or csv; without it, the Accept header decides",
            pattern="^(json|csv)$",
        ),
    ] = None,
) -> str | None:
    """``?format=``: checked here (and documented), read by :func:`central.api.responses.answer`."""
    return fmt


def _query_names(dependant: Any) -> set[str]:
    names = {str(field.alias) for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def known_parameters_only(request: Request) -> None:
    """A query parameter the endpoint does not take is a 400, never silently ignored: a
    misspelt filter (``?sites=hull``) would otherwise answer every site."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    unknown = sorted(set(request.query_params) - _query_names(dependant))
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise BadRequest(f"unknown query parameter(s): {shown}")


def utc(value: datetime | None) -> datetime | None:
    """A query time in UTC (naive: taken as UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def span(
    settings: ApiSettings, since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` in UTC, checked: in order and no longer than allowed."""
    since, until = utc(since), utc(until)
    if since is not None and until is not None:
        if until <= since:
            raise BadRequest("until must be after since")
        if until - since > timedelta(days=settings.max_span_days):
            raise BadRequest(f"since..until spans more than {settings.max_span_days} days")
    return since, until


def limit_of(settings: ApiSettings, limit: int | None) -> int:
    """The row limit of a list (the default when not given; above the maximum: 400)."""
    if limit is None:
        return settings.default_rows
    if limit > settings.max_rows:
        raise BadRequest(f"limit must be at most {settings.max_rows}")
    return limit
