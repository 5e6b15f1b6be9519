"""Reading the warehouse's typed tables back as plain Python values, the same from either
database, and what a record's fact row must hold, computed from its payload independently
of sync/ingest/facts.py."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.core.records import RecordFlag
from sync.ingest.migrations.typed_ddl import TABLES, Table
from sync.ingest.warehouse import PostgresWarehouse, Warehouse
from sync.record_schema import stream_schemas
from tests.support.warehouse_data import rows

TABLE = {t.name: t for t in TABLES}
BOOLEANS = {"accepted", "catch_weight", "provisional"}
JSON_TEXT = {
    ("label_scans", "parsed"),
    ("device_events", "detail"),
    ("alerts", "detail"),
    ("run_versions", "payload"),
    ("emark_batches", "reasons"),
}
DECIMALS = {"qn_g", "tne_g", "t1_g", "t2_g", "mean_g", "sd_g"}
FLAG_COLUMNS = {
    "time_uncertain": RecordFlag.TIME_UNCERTAIN,
    "provisional_run": RecordFlag.PROVISIONAL_RUN,
    "values_uncertain": RecordFlag.VALUES_UNCERTAIN,
    "product_unknown": RecordFlag.PRODUCT_UNKNOWN,
}


def column_types(table: Table) -> dict[str, str]:
    """column → PostgreSQL type, in table order."""
    types = {}
    for column in table.columns:
        name, _, rest = column.partition(" ")
        types[name] = rest.removesuffix(" NULL")
    return types


def normalise(pg_type: str, value: Any) -> Any:
    """A column's value as Python, whichever database it came from."""
    if value is None:
        return None
    if pg_type == "TIMESTAMPTZ":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return moment.astimezone(UTC)
    if pg_type == "DATE":
        return value if isinstance(value, date) else date.fromisoformat(value)
    if pg_type == "BOOLEAN":
        return bool(value)
    if pg_type == "NUMERIC":
        return Decimal(value) if isinstance(value, str) else value
    if pg_type == "JSONB":
        return json.loads(value) if isinstance(value, str) else value
    if pg_type == "DOUBLE PRECISION":
        return float(value)
    return value


def typed_rows(
    warehouse: Warehouse, table: str, *, skip: tuple[str, ...] = (), where: str = ""
) -> list[dict[str, Any]]:
    """Every row of a typed table as {column: value}, in key order."""
    types = {k: v for k, v in column_types(TABLE[table]).items() if k not in skip}
    key = ", ".join(TABLE[table].primary_key)
    found = rows(
        warehouse,
        f"SELECT {', '.join(types)} FROM {table} {where} ORDER BY {key}",
    )
    return [
        {
            name: normalise(pg_type, value)
            for (name, pg_type), value in zip(types.items(), row, strict=True)
        }
        for row in found
    ]


def moment(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _date_or_none(text: str | None) -> date | None:
    if text is None or len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _typed(stream: str, name: str, kind: str, value: Any) -> Any:
    if value is None:
        return None
    if (stream, name) in JSON_TEXT:
        return json.loads(value)
    if name in DECIMALS:
        return Decimal(value)
    if name in BOOLEANS:
        return bool(value)
    if kind == "number":
        return float(value)
    return value


def expected_fact(
    stream: str, gateway: str, site: str, seq: int, payload: dict[str, Any]
) -> dict[str, Any]:
    """The fact row a record must produce (received_at aside)."""
    fields = stream_schemas()[stream]
    expected: dict[str, Any] = {
        "gateway": gateway,
        "site": site,
        "seq": seq,
        "ts": moment(payload["ts_us"]),
        "ts_us": payload["ts_us"],
    }
    for name, field in fields.items():
        if name != "ts_us":
            expected[name] = _typed(stream, name, field.kind, payload.get(name))
    columns = column_types(TABLE[stream])
    for name, bit in FLAG_COLUMNS.items():
        if name in columns:
            expected[name] = bool(payload.get("flags", 0) & bit)
    if stream == "label_scans":
        for name in ("use_by", "pack_date"):
            expected[f"{name}_text"] = payload.get(name)
            expected[name] = _date_or_none(payload.get(name))
    if stream == "emark_batches":
        expected["start_at"] = moment(payload["start_us"])
        expected["end_at"] = moment(payload["end_us"])
    return expected


def is_postgres(warehouse: Warehouse) -> bool:
    return isinstance(warehouse, PostgresWarehouse)


__all__ = [
    "TABLE",
    "column_types",
    "expected_fact",
    "is_postgres",
    "moment",
    "normalise",
    "typed_rows",
]
