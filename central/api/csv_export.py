"""CSV of the API's rows (RFC 4180), safe to open in a spreadsheet.

Spreadsheets are the consumer (Excel, LibreOffice, Power BI's CSV import), so:

- RFC 4180: CRLF line ends, a header row, fields quoted when they hold a comma, a quote or
  a line break, quotes doubled.
- Nested rows are flattened: a row dataclass inside a row becomes columns named
  ``outer.inner``; a tuple of plain values becomes one cell with the values joined by
  ``"; "``; a tuple of rows (or any other nested structure) becomes one cell of JSON.
- Formula injection (CWE-1236): a text cell that starts with ``=``, ``+``, ``-``, ``@``,
  a tab or a carriage return is prefixed with an apostrophe, so a label or an alert
  message written by anyone on a line is never run as a formula. Numbers are written as
  numbers (a negative figure stays a number); only text is prefixed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from central.api.jsonable import jsonable, timestamp

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet may read as the start of a formula (OWASP "CSV Injection")."""


def neutralise(text: str) -> str:
    """``text`` as a spreadsheet must show it: never as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _scalar(value: Any) -> str | None:
    """A plain value as CSV text (None when it is not a plain value)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return neutralise(str(value.value))
    if isinstance(value, str):
        return neutralise(value)
    return None


def flatten(row: Any, prefix: str = "") -> dict[str, str]:
    """One row as column name → cell text (see the module's docstring)."""
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        items: Iterable[tuple[str, Any]] = (
            (f.name, getattr(row, f.name)) for f in dataclasses.fields(row)
        )
    elif isinstance(row, Mapping):
        items = ((str(k), v) for k, v in row.items())
    else:
        return {prefix or "value": _cell(row)}
    cells: dict[str, str] = {}
    for name, value in items:
        column = f"{prefix}{name}"
        is_row = dataclasses.is_dataclass(value) and not isinstance(value, type)
        if is_row:
            cells.update(flatten(value, f"{column}."))
        else:
            cells[column] = _cell(value)
    return cells


def _cell(value: Any) -> str:
    plain = _scalar(value)
    if plain is not None:
        return plain
    if isinstance(value, tuple | list | frozenset | set):
        parts = [_scalar(v) for v in value]
        if all(p is not None for p in parts):
            # Each part is already neutralised; the joined cell must be too.
            return neutralise("; ".join(p for p in parts if p is not None))
    return neutralise(json.dumps(jsonable(value), ensure_ascii=False, sort_keys=True))


def to_csv(rows: Iterable[Any], columns: Iterable[str] = ()) -> str:
    """The CSV text of ``rows``: a header of every column seen (``columns`` first, so an
    empty result still has its header), one line per row."""
    flat = [flatten(row) for row in rows]
    header = list(dict.fromkeys([*columns, *(name for cells in flat for name in cells)]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([neutralise(name) for name in header])
    for cells in flat:
        writer.writerow([cells.get(name, "") for name in header])
    return out.getvalue()


def columns_of(row_type: type) -> list[str]:
    """The CSV header of a row dataclass (nested rows flattened), known before any row is."""
    if not dataclasses.is_dataclass(row_type):
        return []
    names: list[str] = []
    hints = _hints(row_type)
    for f in dataclasses.fields(row_type):
        inner = hints.get(f.name)
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            names += [f"{f.name}.{n}" for n in columns_of(inner)]
        else:
            names.append(f.name)
    return names


def _hints(row_type: type) -> dict[str, Any]:
    import typing  # noqa: PLC0415

    try:
        return typing.get_type_hints(row_type)
    except (NameError, TypeError):
        return {}
