"""The warehouse's schema before the typed facts (revision ``0001_baseline``), frozen.

Every statement is ``IF NOT EXISTS``: a warehouse created before the migrations existed is
adopted as it is. Kept here, not in the live code, because a migration must never change
once released.
"""

from __future__ import annotations

PG_BASELINE: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS records (
        gateway        TEXT        NOT NULL,
        site           TEXT        NOT NULL,
        seq            BIGINT      NOT NULL,
        stream         TEXT        NOT NULL,
        payload        JSONB       NOT NULL,
        payload_sha256 TEXT        NOT NULL,
        received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (gateway, seq)
    )
    """,
    "CREATE INDEX IF NOT EXISTS records_gateway_stream ON records (gateway, stream, seq)",
    """
    CREATE TABLE IF NOT EXISTS conflicts (
        id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        gateway         TEXT        NOT NULL,
        site            TEXT        NOT NULL,
        seq             BIGINT      NOT NULL,
        stream          TEXT        NOT NULL,
        payload         TEXT        NOT NULL,
        payload_sha256  TEXT        NOT NULL,
        existing_sha256 TEXT,
        reason          TEXT        NOT NULL,
        occurrences     BIGINT      NOT NULL DEFAULT 1,
        first_seen      TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_seen       TIMESTAMPTZ NOT NULL DEFAULT now(),
        UNIQUE (gateway, seq, payload_sha256)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        gateway     TEXT        NOT NULL,
        key         TEXT        NOT NULL,
        fingerprint TEXT        NOT NULL,
        first_seen  TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (gateway, key)
    )
    """,
    "CREATE INDEX IF NOT EXISTS idempotency_keys_first_seen ON idempotency_keys (first_seen)",
)

SQLITE_BASELINE: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS records (
        gateway        TEXT    NOT NULL,
        site           TEXT    NOT NULL,
        seq            INTEGER NOT NULL,
        stream         TEXT    NOT NULL,
        payload        TEXT    NOT NULL CHECK (json_valid(payload)),
        payload_sha256 TEXT    NOT NULL,
        received_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (gateway, seq)
    ) STRICT, WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS records_gateway_stream ON records (gateway, stream, seq)",
    """
    CREATE TABLE IF NOT EXISTS conflicts (
        id              INTEGER PRIMARY KEY,
        gateway         TEXT    NOT NULL,
        site            TEXT    NOT NULL,
        seq             INTEGER NOT NULL,
        stream          TEXT    NOT NULL,
        payload         TEXT    NOT NULL,
        payload_sha256  TEXT    NOT NULL,
        existing_sha256 TEXT,
        reason          TEXT    NOT NULL,
        occurrences     INTEGER NOT NULL DEFAULT 1,
        first_seen      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        last_seen       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        UNIQUE (gateway, seq, payload_sha256)
    ) STRICT
    """,
    """
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        gateway     TEXT NOT NULL,
        key         TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        first_seen  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (gateway, key)
    ) STRICT
    """,
    "CREATE INDEX IF NOT EXISTS idempotency_keys_first_seen ON idempotency_keys (first_seen)",
)

OLD_VIEWS: tuple[str, ...] = (
    "packs",
    "temperatures",
    "label_scans",
    "device_events",
    "rejected_inputs",
    "alerts",
    "run_versions",
    "emark_batches",
)
"""The per-stream views the code before revision 0002 generated at every open."""

__all__ = ["OLD_VIEWS", "PG_BASELINE", "SQLITE_BASELINE"]
