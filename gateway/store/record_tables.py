"""How each record type is stored: its table, its columns, its outbox priority and the
builder of its row. The tables themselves are created by :data:`gateway.store.schema.MIGRATIONS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.core.records import (
    AlertRecord,
    DeviceEvent,
    EmarkBatchRecord,
    LabelScan,
    PackEvent,
    Priority,
    Record,
    RejectedInput,
    RunVersion,
    TemperatureReading,
)


def _json(value: dict[str, Any]) -> str:
    # allow_nan=False: a NaN must never reach the warehouse disguised as JSON.
    return json.dumps(value, allow_nan=False, sort_keys=True, separators=(",", ":"))


def _bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class RecordTable:
    """How one record type is stored: its table, insert statement and row builder."""

    table: str
    priority: Priority
    columns: tuple[str, ...]
    row: Callable[[Any], tuple[object, ...]]

    @property
    def insert_sql(self) -> str:
        """``INSERT`` with ``seq`` first and then the record's columns."""
        names = ", ".join(("seq", *self.columns))
        marks = ", ".join("?" * (len(self.columns) + 1))
        return f"INSERT INTO {self.table} ({names}) VALUES ({marks})"  # noqa: S608 (fixed names)


RECORD_TABLES: dict[type[Record], RecordTable] = {
    PackEvent: RecordTable(
        "packs",
        Priority.COMPLIANCE,
        (
            "ts_us",
            "line",
            "device",
            "run_number",
            "pack_counter",
            "net_g",
            "gross_g",
            "tare_g",
            "accepted",
            "label_seq",
            "flags",
            "nominal_g",
            "program",
            "catch_weight",
            "plu",
            "product_source",
        ),
        lambda r: (
            r.ts_us,
            r.line,
            r.device,
            r.run_number,
            r.pack_counter,
            r.net_g,
            r.gross_g,
            r.tare_g,
            _bool(r.accepted),
            r.label_seq,
            r.flags,
            r.nominal_g,
            r.program,
            _bool(r.catch_weight),
            r.plu,
            r.product_source,
        ),
    ),
    TemperatureReading: RecordTable(
        "temperatures",
        Priority.COMPLIANCE,
        ("ts_us", "line", "device", "probe", "location", "run_number", "celsius", "flags"),
        lambda r: (
            r.ts_us,
            r.line,
            r.device,
            r.probe,
            r.location,
            r.run_number,
            r.celsius,
            r.flags,
        ),
    ),
    LabelScan: RecordTable(
        "label_scans",
        Priority.COMPLIANCE,
        (
            "ts_us",
            "line",
            "device",
            "run_number",
            "raw",
            "gtin",
            "batch",
            "use_by",
            "pack_date",
            "serial",
            "net_weight_g",
            "parsed",
            "flags",
        ),
        lambda r: (
            r.ts_us,
            r.line,
            r.device,
            r.run_number,
            r.raw,
            r.gtin,
            r.batch,
            r.use_by,
            r.pack_date,
            r.serial,
            r.net_weight_g,
            _json(r.parsed),
            r.flags,
        ),
    ),
    DeviceEvent: RecordTable(
        "device_events",
        Priority.TELEMETRY,
        ("ts_us", "device", "line", "kind", "detail", "flags"),
        lambda r: (r.ts_us, r.device, r.line, r.kind, _json(r.detail), r.flags),
    ),
    RejectedInput: RecordTable(
        "rejected_inputs",
        Priority.TELEMETRY,
        ("ts_us", "source", "line", "tag", "raw", "reason", "detail", "flags", "serial"),
        lambda r: (
            r.ts_us,
            r.source,
            r.line,
            r.tag,
            r.raw,
            r.reason,
            r.detail,
            r.flags,
            r.serial,
        ),
    ),
    AlertRecord: RecordTable(
        "alerts",
        Priority.ALERT,
        (
            "ts_us",
            "alert_id",
            "rule",
            "subject",
            "line",
            "severity",
            "state",
            "message",
            "detail",
            "flags",
        ),
        lambda r: (
            r.ts_us,
            r.alert_id,
            r.rule,
            r.subject,
            r.line,
            str(r.severity),
            r.state,
            r.message,
            _json(r.detail),
            r.flags,
        ),
    ),
    RunVersion: RecordTable(
        "run_versions",
        Priority.COMPLIANCE,
        (
            "ts_us",
            "run_number",
            "line",
            "status",
            "source",
            "actor",
            "provisional",
            "payload",
            "flags",
        ),
        lambda r: (
            r.ts_us,
            r.run_number,
            r.line,
            r.status,
            r.source,
            r.actor,
            int(r.provisional),
            _json(r.payload),
            r.flags,
        ),
    ),
    EmarkBatchRecord: RecordTable(
        "emark_batches",
        Priority.COMPLIANCE,
        (
            "ts_us",
            "line",
            "run_number",
            "plu",
            "qn_g",
            "tne_g",
            "t1_g",
            "t2_g",
            "start_us",
            "end_us",
            "n",
            "mean_g",
            "sd_g",
            "below_t1",
            "below_t2",
            "verdict",
            "reasons",
            "flags",
            "rejected",
            "uncertain",
        ),
        lambda r: (
            r.ts_us,
            r.line,
            r.run_number,
            r.plu,
            r.qn_g,
            r.tne_g,
            r.t1_g,
            r.t2_g,
            r.start_us,
            r.end_us,
            r.n,
            r.mean_g,
            r.sd_g,
            r.below_t1,
            r.below_t2,
            r.verdict,
            json.dumps(list(r.reasons)),
            r.flags,
            r.rejected,
            r.uncertain,
        ),
    ),
}
"""Every record type and where it goes."""

RECORD_STREAMS: tuple[str, ...] = tuple(t.table for t in RECORD_TABLES.values())
"""The tables whose rows carry a gateway sequence number."""

STREAM_PRIORITY: dict[str, int] = {t.table: int(t.priority) for t in RECORD_TABLES.values()}
"""Outbox priority per stream (0 alerts, 1 compliance, 2 telemetry)."""
