"""The read API's CSV (RFC 4180, flattened, formula-safe), JSON and format negotiation
(docs/warehouse-api.md §2, §4): values in, text out."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from central.api.csv_export import columns_of, neutralise, to_csv
from central.api.jsonable import dumps
from central.api.models import field_docs, model_for
from central.api.negotiation import choose
from central.api.problems import BadRequest
from central.rows import RunSummary, SiteRow, TemperatureSeries

T = datetime(2026, 6, 15, 15, 6, 40, 123456, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Inner:
    """A nested row."""

    plu: str
    """The product."""
    qn_g: Decimal | None
    """Qn."""


@dataclass(frozen=True, slots=True)
class Outer:
    """A row holding every kind of value."""

    name: str
    """Free text from a line."""
    n: int
    x: float
    ok: bool
    at: datetime
    day: date | None
    inner: Inner
    codes: tuple[str, ...]
    children: tuple[Inner, ...]


def _row(name: str = "fillet, skin-on", **kw: object) -> Outer:
    values: dict[str, object] = {
        "name": name,
        "n": -3,
        "x": -1.5,
        "ok": True,
        "at": T,
        "day": None,
        "inner": Inner("=cmd", Decimal("250.0")),
        "codes": ("GG-1", "@SUM(A1)"),
        "children": (Inner("P1", None),),
    }
    values.update(kw)
    return Outer(**values)  # type: ignore[arg-type]


def _parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_is_rfc_4180_and_flattened() -> None:
    text = to_csv([_row('say "hi"\r\nbye')])
    assert text.endswith("\r\n")
    assert '"say ""hi""\r\nbye"' in text
    header, row = _parse(text)
    assert header == [
        "name",
        "n",
        "x",
        "ok",
        "at",
        "day",
        "inner.plu",
        "inner.qn_g",
        "codes",
        "children",
    ]
    cells = dict(zip(header, row, strict=True))
    assert cells["name"] == 'say "hi"\r\nbye'
    assert cells["n"] == "-3"  # numbers stay numbers, even negative
    assert cells["x"] == "-1.5"
    assert cells["ok"] == "true"
    assert cells["at"] == "2026-06-15T15:06:40.123456Z"
    assert cells["day"] == ""
    assert cells["inner.qn_g"] == "250.0"
    assert cells["codes"] == "GG-1; '@SUM(A1)"
    assert json.loads(cells["children"]) == [{"plu": "P1", "qn_g": None}]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_text_that_a_spreadsheet_would_run_is_neutralised(start: str) -> None:
    evil = f'{start}HYPERLINK("http://x","y")'
    [_, row] = _parse(to_csv([_row(evil)]))
    assert row[0] == "'" + evil
    assert row[6] == "'=cmd"  # nested rows too
    assert neutralise("fillet") == "fillet"


def test_an_empty_list_still_has_its_header() -> None:
    assert _parse(to_csv([], columns_of(Outer))) == [
        ["name", "n", "x", "ok", "at", "day", "inner.plu", "inner.qn_g", "codes", "children"]
    ]
    assert columns_of(SiteRow)[0] == "site"


def test_json_keeps_exact_decimals_and_utc_times() -> None:
    document = json.loads(dumps([_row()]))
    assert document[0]["inner"] == {"plu": "=cmd", "qn_g": "250.0"}
    assert document[0]["at"] == "2026-06-15T15:06:40.123456Z"
    assert document[0]["x"] == -1.5
    assert json.loads(dumps(float("nan"))) is None


@pytest.mark.parametrize(
    ("fmt", "accept", "chosen"),
    [
        (None, None, "json"),
        (None, "*/*", "json"),
        (None, "text/csv", "csv"),
        (None, "application/json, text/csv;q=0.5", "json"),
        (None, "application/json;q=0.4, text/csv", "csv"),
        (None, "text/*", "csv"),
        (None, "text/html", "json"),
        ("csv", "application/json", "csv"),
        ("json", "text/csv", "json"),
    ],
)
def test_format_negotiation(fmt: str | None, accept: str | None, chosen: str) -> None:
    assert choose(fmt, accept) == chosen


def test_an_unknown_format_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="format must be json or csv"):
        choose("xml", None)


def test_openapi_models_carry_the_rows_docstrings() -> None:
    docs = field_docs(SiteRow)
    assert docs["site"] == "The site id the gateways are configured with."
    schema = model_for(RunSummary).model_json_schema()
    assert schema["properties"]["packs"]["description"].startswith("Accepted packs")
    # Nested rows become models of their own, with their descriptions.
    product = schema["$defs"]["ProductSummary"]["properties"]["plu"]
    assert product["description"] == "The product's PLU."
    series = model_for(TemperatureSeries).model_json_schema()
    assert series["$defs"]["TemperaturePoint"]["properties"]["celsius"]["type"] == "number"
