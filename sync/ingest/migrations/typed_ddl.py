"""The typed warehouse of revision ``0002_typed_facts``, frozen: facts, current state,
dimensions, their indexes and (PostgreSQL) the partitioned parents.

Each table is written once as its PostgreSQL columns (the canonical schema,
docs/warehouse-schema.md); the SQLite statements are derived from the same list with the
type map below, so both databases have exactly the same tables and columns. SQLite keeps a
timestamp as ISO-8601 UTC text with microseconds, a boolean as 0/1, a NUMERIC as its
decimal string and JSONB as JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass

SQLITE_TYPES = {
    "TEXT": "TEXT",
    "BIGINT": "INTEGER",
    "INTEGER": "INTEGER",
    "DOUBLE PRECISION": "REAL",
    "BOOLEAN": "INTEGER",
    "TIMESTAMPTZ": "TEXT",
    "DATE": "TEXT",
    "NUMERIC": "TEXT",
    "JSONB": "TEXT",
}

SQLITE_NOW = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')"
"""SQLite's ``now()`` in the warehouse's text form (it knows only milliseconds)."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    """``name TYPE`` with ``NULL`` appended when the column is nullable (PostgreSQL types)."""
    primary_key: tuple[str, ...]
    partitioned: bool = False


def column_parts(column: str) -> tuple[str, str, bool]:
    name, _, rest = column.partition(" ")
    nullable = rest.endswith(" NULL")
    return name, rest.removesuffix(" NULL"), nullable


FACT_HEAD = (
    "gateway TEXT",
    "site TEXT",
    "seq BIGINT",
    "ts TIMESTAMPTZ",
    "ts_us BIGINT",
    "received_at TIMESTAMPTZ",
)

FACTS: tuple[Table, ...] = (
    Table(
        "packs",
        (
            *FACT_HEAD,
            "line TEXT",
            "device TEXT",
            "run_number TEXT NULL",
            "pack_counter BIGINT NULL",
            "net_g DOUBLE PRECISION",
            "gross_g DOUBLE PRECISION NULL",
            "tare_g DOUBLE PRECISION NULL",
            "accepted BOOLEAN NULL",
            "label_seq BIGINT NULL",
            "flags INTEGER",
            "nominal_g DOUBLE PRECISION NULL",
            "program TEXT NULL",
            "catch_weight BOOLEAN NULL",
            "plu TEXT NULL",
            "product_source TEXT NULL",
            "time_uncertain BOOLEAN",
            "provisional_run BOOLEAN",
            "values_uncertain BOOLEAN",
            "product_unknown BOOLEAN",
        ),
        ("gateway", "seq", "ts"),
        partitioned=True,
    ),
    Table(
        "temperatures",
        (
            *FACT_HEAD,
            "line TEXT",
            "device TEXT",
            "probe TEXT",
            "location TEXT",
            "run_number TEXT NULL",
            "celsius DOUBLE PRECISION",
            "flags INTEGER",
            "time_uncertain BOOLEAN",
            "provisional_run BOOLEAN",
        ),
        ("gateway", "seq", "ts"),
        partitioned=True,
    ),
    Table(
        "label_scans",
        (
            *FACT_HEAD,
            "line TEXT",
            "device TEXT",
            "run_number TEXT NULL",
            "raw TEXT",
            "gtin TEXT NULL",
            "batch TEXT NULL",
            "use_by DATE NULL",
            "use_by_text TEXT NULL",
            "pack_date DATE NULL",
            "pack_date_text TEXT NULL",
            "serial TEXT NULL",
            "net_weight_g DOUBLE PRECISION NULL",
            "parsed JSONB",
            "flags INTEGER",
            "time_uncertain BOOLEAN",
            "provisional_run BOOLEAN",
        ),
        ("gateway", "seq", "ts"),
        partitioned=True,
    ),
    Table(
        "device_events",
        (
            *FACT_HEAD,
            "device TEXT",
            "line TEXT NULL",
            "kind TEXT",
            "detail JSONB",
            "flags INTEGER",
        ),
        ("gateway", "seq", "ts"),
        partitioned=True,
    ),
    Table(
        "rejected_inputs",
        (
            *FACT_HEAD,
            "source TEXT",
            "line TEXT NULL",
            "tag TEXT",
            "raw TEXT",
            "reason TEXT",
            "detail TEXT",
            "flags INTEGER",
            "serial TEXT NULL",
        ),
        ("gateway", "seq"),
    ),
    Table(
        "alerts",
        (
            *FACT_HEAD,
            "alert_id TEXT",
            "rule TEXT",
            "subject TEXT",
            "line TEXT NULL",
            "severity TEXT",
            "state TEXT",
            "message TEXT",
            "detail JSONB",
            "flags INTEGER",
        ),
        ("gateway", "seq", "ts"),
        partitioned=True,
    ),
    Table(
        "run_versions",
        (
            *FACT_HEAD,
            "run_number TEXT",
            "line TEXT",
            "status TEXT",
            "source TEXT",
            "actor TEXT NULL",
            "provisional BOOLEAN",
            "payload JSONB",
            "flags INTEGER",
        ),
        ("gateway", "seq"),
    ),
    Table(
        "emark_batches",
        (
            *FACT_HEAD,
            "line TEXT",
            "run_number TEXT",
            "plu TEXT",
            "qn_g NUMERIC",
            "tne_g NUMERIC",
            "t1_g NUMERIC",
            "t2_g NUMERIC",
            "start_us BIGINT",
            "end_us BIGINT",
            "start_at TIMESTAMPTZ",
            "end_at TIMESTAMPTZ",
            "n INTEGER",
            "mean_g NUMERIC",
            "sd_g NUMERIC",
            "below_t1 INTEGER",
            "below_t2 INTEGER",
            "verdict TEXT",
            "reasons JSONB",
            "flags INTEGER",
            "rejected INTEGER",
            "uncertain INTEGER",
        ),
        ("gateway", "seq"),
    ),
)

STATE: tuple[Table, ...] = (
    Table(
        "alerts_current",
        (
            "gateway TEXT",
            "alert_id TEXT",
            "seq BIGINT",
            "site TEXT",
            "rule TEXT",
            "subject TEXT",
            "line TEXT NULL",
            "severity TEXT",
            "state TEXT",
            "message TEXT",
            "ts TIMESTAMPTZ",
            "ts_us BIGINT",
            "raised_at TIMESTAMPTZ NULL",
            "active BOOLEAN",
        ),
        ("gateway", "alert_id"),
    ),
    Table(
        "runs",
        (
            "gateway TEXT",
            "run_number TEXT",
            "site TEXT",
            "seq BIGINT",
            "line TEXT",
            "status TEXT",
            "source TEXT",
            "provisional BOOLEAN",
            "description TEXT",
            "species TEXT NULL",
            "product_type TEXT NULL",
            "raw_material_kg NUMERIC NULL",
            "pack_date DATE NULL",
            "shelf_life_adjust INTEGER",
            "planned_start TIMESTAMPTZ NULL",
            "planned_end TIMESTAMPTZ NULL",
            "actual_start TIMESTAMPTZ NULL",
            "actual_end TIMESTAMPTZ NULL",
            "updated TIMESTAMPTZ NULL",
            "payload JSONB",
        ),
        ("gateway", "run_number"),
    ),
    Table(
        "run_products",
        (
            "gateway TEXT",
            "run_number TEXT",
            "plu TEXT",
            "description TEXT",
            "nominal_g NUMERIC NULL",
            "catch_weight BOOLEAN",
            "tier TEXT",
            "gtin TEXT NULL",
            "species TEXT NULL",
        ),
        ("gateway", "run_number", "plu"),
    ),
    Table(
        "run_batch_codes",
        ("gateway TEXT", "run_number TEXT", "batch_code TEXT"),
        ("gateway", "run_number", "batch_code"),
    ),
    Table(
        "sites",
        ("site TEXT", "name TEXT NULL", "first_seen TIMESTAMPTZ", "last_seen TIMESTAMPTZ"),
        ("site",),
    ),
    Table(
        "gateways",
        (
            "gateway TEXT",
            "site TEXT",
            "first_seen TIMESTAMPTZ",
            "last_seen TIMESTAMPTZ",
            "last_seq BIGINT",
            "records BIGINT",
        ),
        ("gateway",),
    ),
    Table(
        "lines",
        (
            "gateway TEXT",
            "line TEXT",
            "site TEXT",
            "name TEXT NULL",
            "first_seen TIMESTAMPTZ",
            "last_seen TIMESTAMPTZ",
        ),
        ("gateway", "line"),
    ),
)

INDEXES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("packs_gateway_run_plu", "packs", ("gateway", "run_number", "plu")),
    ("packs_gateway_line_ts", "packs", ("gateway", "line", "ts")),
    ("packs_run", "packs", ("run_number",)),
    ("temperatures_gateway_run", "temperatures", ("gateway", "run_number")),
    ("temperatures_gateway_line_ts", "temperatures", ("gateway", "line", "ts")),
    ("label_scans_batch", "label_scans", ("batch",)),
    ("label_scans_serial", "label_scans", ("serial",)),
    ("label_scans_gateway_run", "label_scans", ("gateway", "run_number")),
    ("label_scans_gateway_line_ts", "label_scans", ("gateway", "line", "ts")),
    ("device_events_gateway_kind_ts", "device_events", ("gateway", "kind", "ts")),
    ("alerts_gateway_alert_seq", "alerts", ("gateway", "alert_id", "seq")),
    ("alerts_gateway_line_ts", "alerts", ("gateway", "line", "ts")),
    ("emark_batches_gateway_run", "emark_batches", ("gateway", "run_number", "plu", "start_us")),
    ("run_versions_gateway_run_seq", "run_versions", ("gateway", "run_number", "seq")),
    ("run_batch_codes_batch_code", "run_batch_codes", ("batch_code",)),
)

TABLES: tuple[Table, ...] = FACTS + STATE
PARTITIONED: tuple[str, ...] = tuple(t.name for t in FACTS if t.partitioned)


def _columns_sql(table: Table, *, sqlite: bool) -> str:
    parts = []
    for column in table.columns:
        name, pg_type, nullable = column_parts(column)
        sql_type = SQLITE_TYPES[pg_type] if sqlite else pg_type
        text = f"{name} {sql_type}" + ("" if nullable else " NOT NULL")
        if name == "received_at":
            text += f" DEFAULT {SQLITE_NOW if sqlite else 'now()'}"
        parts.append(text)
    parts.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    return ",\n    ".join(parts)


def pg_statements() -> list[str]:
    """CREATE TABLE and CREATE INDEX of every table in PostgreSQL (partitioned parents with
    their default partition; the monthly partitions are made by the ingest)."""
    statements = []
    for table in TABLES:
        tail = " PARTITION BY RANGE (ts)" if table.partitioned else ""
        columns = _columns_sql(table, sqlite=False)
        statements.append(f"CREATE TABLE {table.name} (\n    {columns}\n){tail}")
        if table.partitioned:
            statements.append(
                f"CREATE TABLE {table.name}_default PARTITION OF {table.name} DEFAULT"
            )
    statements += [
        f"CREATE INDEX {name} ON {table} ({', '.join(columns)})" for name, table, columns in INDEXES
    ]
    return statements


def sqlite_statements() -> list[str]:
    """The same tables and indexes in SQLite (plain tables, STRICT)."""
    statements = [
        f"CREATE TABLE {table.name} (\n    {_columns_sql(table, sqlite=True)}\n) STRICT"
        for table in TABLES
    ]
    statements += [
        f"CREATE INDEX {name} ON {table} ({', '.join(columns)})" for name, table, columns in INDEXES
    ]
    return statements


def drop_statements() -> list[str]:
    """Everything of this revision, dropped (the downgrade)."""
    return [f"DROP TABLE IF EXISTS {table.name}" for table in reversed(TABLES)]


__all__ = [
    "FACTS",
    "INDEXES",
    "PARTITIONED",
    "SQLITE_TYPES",
    "STATE",
    "TABLES",
    "Table",
    "drop_statements",
    "pg_statements",
    "sqlite_statements",
]
