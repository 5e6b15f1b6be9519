"""Warehouse test data: a fresh PostgreSQL database, records of every stream as a gateway's
outbox sends them, and reading the typed tables back from either database."""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from sync.ingest.migrations.typed_ddl import TABLES
from sync.ingest.warehouse import PostgresWarehouse, SqliteWarehouse, Warehouse
from sync.protocol import Batch

PG_HOST, PG_PORT = "127.0.0.1", 5432
GW, SITE = "hull-gw1", "hull"
TS0 = 1_765_000_000_000_000  # 2025-12-06T05:46:40Z, µs
TODAY = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
"""The PostgreSQL warehouse's "today" in tests: partitions 2026-12 to 2027-02 at open."""


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database (dropped afterwards); its DSN."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    )
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


def rows(warehouse: Warehouse, query: str, *params: object) -> list[tuple[Any, ...]]:
    """A raw query on either warehouse (``%s`` placeholders)."""
    if isinstance(warehouse, PostgresWarehouse):
        with psycopg.connect(warehouse._conninfo, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()
    assert isinstance(warehouse, SqliteWarehouse)
    with contextlib.closing(sqlite3.connect(warehouse.path)) as db:
        return db.execute(query.replace("%s", "?"), params).fetchall()


def execute(warehouse: Warehouse, statement: str) -> None:
    """A raw statement on either warehouse, committed."""
    if isinstance(warehouse, PostgresWarehouse):
        with psycopg.connect(warehouse._conninfo, autocommit=True) as conn:
            conn.execute(statement)
        return
    assert isinstance(warehouse, SqliteWarehouse)
    with contextlib.closing(sqlite3.connect(warehouse.path, isolation_level=None)) as db:
        db.execute(statement)


def empty_typed_tables(warehouse: Warehouse) -> None:
    """Every table emptied, records included (a module shares one PostgreSQL database)."""
    names = ["records", "conflicts", "idempotency_keys", *(t.name for t in TABLES)]
    if isinstance(warehouse, PostgresWarehouse):
        execute(warehouse, f"TRUNCATE {', '.join(names)}")
        return
    for name in names:
        execute(warehouse, f"DELETE FROM {name}")


def pack(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "ts_us": TS0 + seq * 1000,
        "line": "L1",
        "device": "cw1",
        "run_number": "R1001",
        "pack_counter": seq,
        "net_g": 251.5,
        "gross_g": 263.5,
        "tare_g": 12.0,
        "accepted": 1,
        "label_seq": None,
        "flags": 0,
        "nominal_g": 250.0,
        "program": "P7",
        "catch_weight": 0,
        "plu": "1234",
        "product_source": "device",
    } | fields


def temperature(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "ts_us": TS0 + seq * 1000,
        "line": "L1",
        "device": "probe1",
        "probe": "core",
        "location": "chiller",
        "run_number": None,
        "celsius": 3.25,
        "flags": 0,
    } | fields


def label_scan(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "ts_us": TS0 + seq * 1000,
        "line": "L1",
        "device": "scan1",
        "run_number": "R1001",
        "raw": "0109501101530008",
        "gtin": "09501101530008",
        "batch": "B42",
        "use_by": "2026-12-12",
        "pack_date": "2026-12-02",
        "serial": "S1",
        "net_weight_g": 250.0,
        "parsed": '{"01":"09501101530008"}',
        "flags": 0,
    } | fields


def device_event(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "ts_us": TS0 + seq * 1000,
        "device": "cw1",
        "line": "L1",
        "kind": "link_up",
        "detail": "{}",
        "flags": 0,
    } | fields


def names_event(seq: int, site_name: str | None, lines: dict[str, str]) -> dict[str, Any]:
    detail = json.dumps({"site_name": site_name, "lines": lines}, sort_keys=True)
    return device_event(seq, device=GW, line=None, kind="names", detail=detail)


def rejected_input(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "ts_us": TS0 + seq * 1000,
        "source": "cw1",
        "line": "L1",
        "tag": "net_g",
        "raw": "-5",
        "reason": "out_of_range",
        "detail": "below 0",
        "flags": 0,
        "serial": None,
    } | fields


def alert(seq: int, state: str, **fields: Any) -> dict[str, Any]:
    return {
        "ts_us": TS0 + seq * 1000,
        "alert_id": "haccp.L1.core",
        "rule": "haccp",
        "subject": "core",
        "line": "L1",
        "severity": "critical",
        "state": state,
        "message": f"core temperature {state}",
        "detail": '{"value":9.5}',
        "flags": 0,
    } | fields


def run_payload(run: str, products: list[str], codes: list[str], **fields: Any) -> str:
    """A run's JSON form as the gateway stores it (gateway/core/runs/json_form.py)."""
    return json.dumps(
        {
            "format": 1,
            "run_number": run,
            "line": "L1",
            "batch_codes": codes,
            "description": f"run {run}",
            "species": "cod",
            "product_type": "fillet",
            "products": [
                {
                    "plu": plu,
                    "description": f"cod {plu}",
                    "nominal_g": "250",
                    "tier": "standard",
                    "catch_weight": False,
                    "tare_g": "0",
                    "glaze_pct": "0",
                    "species": "cod",
                    "gtin": None,
                }
                for plu in products
            ],
            "raw_material_kg": "1200.5",
            "pack_date": "2026-12-02",
            "shelf_life_adjust": 0,
            "planned_start": "2026-12-02T06:00:00+00:00",
            "planned_end": None,
            "actual_start": None,
            "actual_end": None,
            "status": "released",
            "updated": "2026-12-01T18:00:00+00:00",
            "extra": {},
        }
        | fields,
        sort_keys=True,
    )


def run_version(seq: int, run: str, products: list[str], codes: list[str]) -> dict[str, Any]:
    return {
        "ts_us": TS0 + seq * 1000,
        "run_number": run,
        "line": "L1",
        "status": "released",
        "source": "erp",
        "actor": None,
        "provisional": 0,
        "payload": run_payload(run, products, codes),
        "flags": 0,
    }


def emark_batch(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "ts_us": TS0 + seq * 1000,
        "line": "L1",
        "run_number": "R1001",
        "plu": "1234",
        "qn_g": "250",
        "tne_g": "9",
        "t1_g": "241",
        "t2_g": "232",
        "start_us": TS0,
        "end_us": TS0 + 3_600_000_000,
        "n": 500,
        "mean_g": "251.37",
        "sd_g": "1.2500",
        "below_t1": 3,
        "below_t2": 0,
        "verdict": "pass",
        "reasons": "[]",
        "flags": 0,
        "rejected": 1,
        "uncertain": 0,
    } | fields


def batch(stream: str, *records: tuple[int, dict[str, Any]], gateway: str = GW) -> Batch:
    return Batch(gateway, SITE, stream, tuple(records))


def every_stream(first_seq: int) -> list[Batch]:
    """One batch per stream, sequences from ``first_seq`` on, in the order given."""
    s = first_seq
    return [
        batch("packs", (s, pack(s)), (s + 1, pack(s + 1, flags=3, accepted=None))),
        batch("temperatures", (s + 2, temperature(s + 2))),
        batch("label_scans", (s + 3, label_scan(s + 3)), (s + 4, label_scan(s + 4, use_by="1612"))),
        batch("device_events", (s + 5, device_event(s + 5))),
        batch("rejected_inputs", (s + 6, rejected_input(s + 6))),
        batch("alerts", (s + 7, alert(s + 7, "raised")), (s + 8, alert(s + 8, "acknowledged"))),
        batch("run_versions", (s + 9, run_version(s + 9, "R1001", ["1234", "5678"], ["B42"]))),
        batch("emark_batches", (s + 10, emark_batch(s + 10))),
        batch("device_events", (s + 11, names_event(s + 11, "Hull", {"L1": "Fillet line"}))),
    ]


__all__ = [
    "GW",
    "PG_HOST",
    "PG_PORT",
    "SITE",
    "TODAY",
    "TS0",
    "alert",
    "batch",
    "device_event",
    "emark_batch",
    "empty_typed_tables",
    "every_stream",
    "execute",
    "fresh_database",
    "label_scan",
    "names_event",
    "pack",
    "rejected_input",
    "rows",
    "run_payload",
    "run_version",
    "temperature",
]
