"""What the current-state and dimension tables take from facts: a run's row, products and
batch codes from its newest ``run_versions`` fact, and the names a gateway announced in its
``names`` device event (docs/warehouse-schema.md). Pure: no database here.

A run's payload is the gateway's JSON form of the run (gateway/core/runs/json_form.py); it
is read leniently, field by field: a field of the wrong shape becomes NULL (or its
column's neutral value) instead of refusing a record the gateway already keeps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sync.ingest.facts import INT32_MAX, INT32_MIN, Fact, FactError, decimal_text, iso_date

NAMES_KIND = "names"
"""The ``kind`` of the device event that carries a gateway's configured names."""
MAX_NAME_CHARS = 200
"""Longer names are cut: a name is a label on a dashboard, never a document."""


@dataclass(frozen=True, slots=True)
class RunState:
    """A run as its newest version says: the ``runs`` row and its child rows."""

    gateway: str
    run_number: str
    seq: int
    row: tuple[object, ...]
    """The ``runs`` columns, in :data:`RUN_COLUMNS` order."""
    products: tuple[tuple[object, ...], ...]
    """``run_products`` rows, in :data:`PRODUCT_COLUMNS` order."""
    batch_codes: tuple[str, ...]


RUN_COLUMNS: tuple[str, ...] = (
    "gateway",
    "run_number",
    "site",
    "seq",
    "line",
    "status",
    "source",
    "provisional",
    "description",
    "species",
    "product_type",
    "raw_material_kg",
    "pack_date",
    "shelf_life_adjust",
    "planned_start",
    "planned_end",
    "actual_start",
    "actual_end",
    "updated",
    "payload",
)
PRODUCT_COLUMNS: tuple[str, ...] = (
    "gateway",
    "run_number",
    "plu",
    "description",
    "nominal_g",
    "catch_weight",
    "tier",
    "gtin",
    "species",
)


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _decimal(data: Mapping[str, Any], key: str) -> str | None:
    text = _text(data, key)
    if text is None:
        return None
    try:
        return decimal_text(key, text)
    except FactError:
        return None


def _moment(data: Mapping[str, Any], key: str) -> datetime | None:
    text = _text(data, key)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _day(data: Mapping[str, Any], key: str) -> date | None:
    return iso_date(_text(data, key))


def _shelf_life_adjust(data: Mapping[str, Any]) -> int:
    value = data.get("shelf_life_adjust")
    if isinstance(value, int) and not isinstance(value, bool) and INT32_MIN <= value <= INT32_MAX:
        return value
    return 0


def _products(
    gateway: str, run_number: str, payload: Mapping[str, Any]
) -> list[tuple[object, ...]]:
    products = payload.get("products")
    rows: dict[str, tuple[object, ...]] = {}
    for product in products if isinstance(products, list) else []:
        if not isinstance(product, dict):
            continue
        plu = _text(product, "plu")
        if plu is None or plu in rows:
            continue
        rows[plu] = (
            gateway,
            run_number,
            plu,
            _text(product, "description") or "",
            _decimal(product, "nominal_g"),
            product.get("catch_weight") is True,
            _text(product, "tier") or "",
            _text(product, "gtin"),
            _text(product, "species"),
        )
    return list(rows.values())


def _batch_codes(payload: Mapping[str, Any]) -> tuple[str, ...]:
    codes = payload.get("batch_codes")
    if not isinstance(codes, list):
        return ()
    return tuple(dict.fromkeys(code for code in codes if isinstance(code, str)))


def run_state(fact: Fact) -> RunState:
    """The run a ``run_versions`` fact describes."""
    run_number = str(fact.value("run_number"))
    payload_text = str(fact.value("payload"))
    loaded = json.loads(payload_text)
    payload: Mapping[str, Any] = loaded if isinstance(loaded, dict) else {}
    row = (
        fact.gateway,
        run_number,
        fact.site,
        fact.seq,
        fact.value("line"),
        fact.value("status"),
        fact.value("source"),
        fact.value("provisional"),
        _text(payload, "description") or "",
        _text(payload, "species"),
        _text(payload, "product_type"),
        _decimal(payload, "raw_material_kg"),
        _day(payload, "pack_date"),
        _shelf_life_adjust(payload),
        _moment(payload, "planned_start"),
        _moment(payload, "planned_end"),
        _moment(payload, "actual_start"),
        _moment(payload, "actual_end"),
        _moment(payload, "updated"),
        payload_text,
    )
    return RunState(
        fact.gateway,
        run_number,
        fact.seq,
        row,
        tuple(_products(fact.gateway, run_number, payload)),
        _batch_codes(payload),
    )


def newest_runs(facts: list[Fact]) -> list[RunState]:
    """The newest version of each run among ``run_versions`` facts (highest seq wins)."""
    newest: dict[tuple[str, str], Fact] = {}
    for fact in facts:
        key = (fact.gateway, str(fact.value("run_number")))
        if key not in newest or newest[key].seq < fact.seq:
            newest[key] = fact
    return [run_state(newest[key]) for key in sorted(newest)]  # a fixed lock order


@dataclass(frozen=True, slots=True)
class Names:
    """What a ``names`` event says: the site's name and the lines' names."""

    site_name: str | None
    lines: dict[str, str]


def _name(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_NAME_CHARS]


def parse_names(detail: object) -> Names:
    """The names of a ``names`` event's detail (a dict or its JSON text); malformed parts
    are ignored, never trusted."""
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            detail = {}
    if not isinstance(detail, dict):
        return Names(None, {})
    lines = detail.get("lines")
    named = {}
    for line, name in (lines if isinstance(lines, dict) else {}).items():
        text = _name(name)
        if isinstance(line, str) and text is not None:
            named[line] = text
    return Names(_name(detail.get("site_name")), named)


def is_names_event(fact: Fact) -> bool:
    """A ``device_events`` fact that announces names."""
    return fact.stream == "device_events" and fact.value("kind") == NAMES_KIND


def fact_line(fact: Fact) -> str | None:
    """The line a fact is about, if its table has one and it is set."""
    try:
        line = fact.value("line")
    except ValueError:
        return None
    return line if isinstance(line, str) else None


__all__ = [
    "MAX_NAME_CHARS",
    "NAMES_KIND",
    "PRODUCT_COLUMNS",
    "RUN_COLUMNS",
    "Names",
    "RunState",
    "fact_line",
    "is_names_event",
    "newest_runs",
    "parse_names",
    "run_state",
]
