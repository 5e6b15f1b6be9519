"""One answer, as JSON or CSV: what every endpoint returns through :func:`answer`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from central.api.csv_export import columns_of, to_csv
from central.api.jsonable import dumps
from central.api.negotiation import choose

CSV_TYPE = "text/csv; charset=utf-8; header=present"
JSON_TYPE = "application/json"
TRUNCATED = "x-lineside-truncated"
"""Header set to ``true`` when a list was cut at its ``limit`` (ask again, narrower)."""


def answer(
    request: Request,
    value: Any,
    *,
    name: str,
    row_type: type | None = None,
    table: Callable[[Any], Iterable[Any]] | None = None,
    columns: Iterable[str] = (),
    truncated: bool = False,
) -> Response:
    """``value`` in the format the request asks for.

    ``table`` gives the CSV rows of a value that is not itself a list (a report: its
    products); ``row_type`` (or ``columns``) the CSV header even of an empty list; ``name``
    the download's name.
    """
    fmt = choose(request.query_params.get("format"), request.headers.get("accept"))
    # The same URL answers JSON or CSV by its Accept header: caches must keep them apart.
    headers = {"cache-control": "no-store", "vary": "Accept"}
    if truncated:
        headers[TRUNCATED] = "true"
    if fmt == "json":
        return Response(dumps(value), media_type=JSON_TYPE, headers=headers)
    if table is not None:
        rows: Iterable[Any] = table(value)
    elif isinstance(value, list | tuple):
        rows = value
    else:
        rows = [value]
    header = [*columns, *(columns_of(row_type) if row_type is not None else [])]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "export"
    headers["content-disposition"] = f'attachment; filename="{safe}.csv"'
    return Response(to_csv(rows, header), media_type=CSV_TYPE, headers=headers)
