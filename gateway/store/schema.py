"""The store's SQLite schema and its migrations.

Tables are ``STRICT`` with ``CHECK`` constraints, so the database itself refuses a NULL or
non-finite measurement: SQLite silently turns a NaN into NULL, and ``NOT NULL`` catches that;
``abs(x) < 1e12`` catches ±inf. The schema version is ``PRAGMA user_version``; migration *n*
moves the database from version *n* to *n + 1*, inside one transaction
(:func:`gateway.store.database.open_database`). How each record type maps to its table is in
:mod:`gateway.store.record_tables`.
"""

from __future__ import annotations

# Re-exported: the mapping used to live here, and readers of the schema look for it here.
from gateway.store.record_tables import RECORD_STREAMS, RECORD_TABLES, RecordTable

__all__ = ["MIGRATIONS", "RECORD_STREAMS", "RECORD_TABLES", "SCHEMA_VERSION", "RecordTable"]

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
