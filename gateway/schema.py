"""The store's SQLite schema, its migrations, and how each record type maps to a table.

Tables are ``STRICT`` with ``CHECK`` constraints, so the database itself refuses a NULL or
non-finite measurement: SQLite silently turns a NaN into NULL, and ``NOT NULL`` catches that;
``abs(x) < 1e12`` catches ±inf. The schema version is ``PRAGMA user_version``; migration *n*
moves the database from version *n* to *n + 1*, inside one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.records import (
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

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the first schema.
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;

    -- The newest version of each production run (see run_versions), for the join and the TUI.
    CREATE TABLE runs (
        run_number  TEXT PRIMARY KEY,
        seq         INTEGER NOT NULL UNIQUE,
        line        TEXT NOT NULL,
        status      TEXT NOT NULL,
        source      TEXT NOT NULL,
        provisional INTEGER NOT NULL DEFAULT 0 CHECK (provisional IN (0, 1)),
        payload     TEXT NOT NULL CHECK (json_valid(payload)),
        updated_us  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX runs_line ON runs (line);

    CREATE TABLE run_versions (
        seq         INTEGER PRIMARY KEY,
        ts_us       INTEGER NOT NULL,
        run_number  TEXT NOT NULL,
        line        TEXT NOT NULL,
        status      TEXT NOT NULL,
        source      TEXT NOT NULL CHECK (source IN ('erp', 'operator')),
        actor       TEXT,
        provisional INTEGER NOT NULL DEFAULT 0 CHECK (provisional IN (0, 1)),
        payload     TEXT NOT NULL CHECK (json_valid(payload)),
        flags       INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX run_versions_run ON run_versions (run_number, seq);

    CREATE TABLE packs (
        seq          INTEGER PRIMARY KEY,
        ts_us        INTEGER NOT NULL,
        line         TEXT NOT NULL,
        device       TEXT NOT NULL,
        run_number   TEXT,
        pack_counter INTEGER,
        net_g        REAL NOT NULL CHECK (abs(net_g) < 1e12),
        gross_g      REAL CHECK (gross_g IS NULL OR abs(gross_g) < 1e12),
        tare_g       REAL CHECK (tare_g IS NULL OR abs(tare_g) < 1e12),
        accepted     INTEGER CHECK (accepted IS NULL OR accepted IN (0, 1)),
        label_seq    INTEGER,
        flags        INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX packs_line_ts ON packs (line, ts_us);
    CREATE INDEX packs_run ON packs (run_number);

    CREATE TABLE temperatures (
        seq        INTEGER PRIMARY KEY,
        ts_us      INTEGER NOT NULL,
        line       TEXT NOT NULL,
        device     TEXT NOT NULL,
        probe      TEXT NOT NULL,
        location   TEXT NOT NULL DEFAULT '',
        run_number TEXT,
        celsius    REAL NOT NULL CHECK (celsius > -273.15 AND celsius < 1e6),
        flags      INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX temperatures_probe_ts ON temperatures (device, probe, ts_us);

    CREATE TABLE label_scans (
        seq          INTEGER PRIMARY KEY,
        ts_us        INTEGER NOT NULL,
        line         TEXT NOT NULL,
        device       TEXT NOT NULL,
        run_number   TEXT,
        raw          BLOB NOT NULL,
        gtin         TEXT,
        batch        TEXT,
        use_by       TEXT,
        pack_date    TEXT,
        serial       TEXT,
        net_weight_g REAL CHECK (net_weight_g IS NULL OR abs(net_weight_g) < 1e12),
        parsed       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(parsed)),
        flags        INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX label_scans_line_ts ON label_scans (line, ts_us);

    CREATE TABLE device_events (
        seq    INTEGER PRIMARY KEY,
        ts_us  INTEGER NOT NULL,
        device TEXT NOT NULL,
        line   TEXT,
        kind   TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
        flags  INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX device_events_device_ts ON device_events (device, ts_us);

    CREATE TABLE rejected_inputs (
        seq    INTEGER PRIMARY KEY,
        ts_us  INTEGER NOT NULL,
        source TEXT NOT NULL,
        line   TEXT,
        tag    TEXT NOT NULL,
        raw    TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        flags  INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX rejected_inputs_reason ON rejected_inputs (reason, ts_us);

    CREATE TABLE alerts (
        seq      INTEGER PRIMARY KEY,
        ts_us    INTEGER NOT NULL,
        alert_id TEXT NOT NULL,
        rule     TEXT NOT NULL,
        subject  TEXT NOT NULL,
        line     TEXT,
        severity TEXT NOT NULL CHECK (severity IN ('critical', 'major', 'warning')),
        state    TEXT NOT NULL,
        message  TEXT NOT NULL,
        detail   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
        flags    INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX alerts_alert_id ON alerts (alert_id, seq);

    -- Transactional outbox: a row per record that must reach the warehouse, written in the
    -- same transaction as the record, deleted only when the warehouse acknowledges it.
    CREATE TABLE outbox (
        seq         INTEGER PRIMARY KEY,
        stream      TEXT NOT NULL,
        priority    INTEGER NOT NULL CHECK (priority IN (0, 1, 2)),
        enqueued_us INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX outbox_priority ON outbox (priority, seq);
    """,
    # 1 -> 2: the checkweigher's nominal per pack, and the packer's ℮ batch records.
    """
    ALTER TABLE packs ADD COLUMN nominal_g REAL
        CHECK (nominal_g IS NULL OR (nominal_g > 0 AND nominal_g < 1e6));

    CREATE TABLE emark_batches (
        seq        INTEGER PRIMARY KEY,
        ts_us      INTEGER NOT NULL,
        line       TEXT NOT NULL,
        run_number TEXT NOT NULL,
        plu        TEXT NOT NULL,
        qn_g       TEXT NOT NULL,
        tne_g      TEXT NOT NULL,
        t1_g       TEXT NOT NULL,
        t2_g       TEXT NOT NULL,
        start_us   INTEGER NOT NULL,
        end_us     INTEGER NOT NULL,
        n          INTEGER NOT NULL CHECK (n >= 0),
        mean_g     TEXT NOT NULL,
        sd_g       TEXT NOT NULL,
        below_t1   INTEGER NOT NULL CHECK (below_t1 >= 0),
        below_t2   INTEGER NOT NULL CHECK (below_t2 >= 0),
        verdict    TEXT NOT NULL CHECK (verdict IN ('pass', 'fail')),
        reasons    TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(reasons)),
        flags      INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX emark_batches_run ON emark_batches (run_number, plu, start_us);
    """,
    # 2 -> 3: how each pack's product was decided; packs counted as rejected in a batch.
    """
    ALTER TABLE packs ADD COLUMN program TEXT;
    ALTER TABLE packs ADD COLUMN catch_weight INTEGER
        CHECK (catch_weight IS NULL OR catch_weight IN (0, 1));
    ALTER TABLE packs ADD COLUMN plu TEXT;
    ALTER TABLE packs ADD COLUMN product_source TEXT CHECK (product_source IS NULL OR
        product_source IN ('device', 'label', 'nominal', 'only_product'));
    CREATE INDEX packs_run_plu ON packs (run_number, plu);
    ALTER TABLE emark_batches ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE emark_batches ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rejected_inputs ADD COLUMN serial TEXT;
    """,
    # ---- local-access work (issue 18): keep this entry separate; add new migrations after it.
    # 3 -> 4: the outbox quarantine, created with the schema instead of lazily by the sync
    # code, so the gateway can say at every start whether records wait there (the
    # ``sync_quarantined`` alert) and ``lineside dead-letter`` can list and re-queue them.
    # The same definition the sync code used to create: a store that has it already keeps
    # its rows.
    """
    CREATE TABLE IF NOT EXISTS outbox_quarantine (
        seq    INTEGER PRIMARY KEY,
        stream TEXT,
        reason TEXT,
        ts_us  INTEGER
    ) STRICT;
    """,
)
"""Schema migrations in order; the database's ``user_version`` counts those applied."""

SCHEMA_VERSION = len(MIGRATIONS)


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
