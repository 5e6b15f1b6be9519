"""docs/warehouse-schema.md names every column of every warehouse table, in order and with
both databases' types, and every flag bit, so the page cannot fall behind a migration or a
new flag. The tables are made here as the migrations make them in SQLite (in memory)."""

from __future__ import annotations

import contextlib
import re
import sqlite3

from gateway.core.records import RecordFlag
from sync.ingest.migrations import gateway_backlog_ddl
from sync.ingest.migrations.baseline_ddl import SQLITE_BASELINE
from sync.ingest.migrations.typed_ddl import SQLITE_TYPES, TABLES, sqlite_statements
from tests.support.paths import REPO

PAGE = (REPO / "docs" / "warehouse-schema.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| `(\w+)` \| ([A-Z ]+?)( NULL)? \| ([A-Z]+) \|", re.MULTILINE)


def _documented() -> dict[str, list[tuple[str, str, bool, str]]]:
    """table → (column, PostgreSQL type, nullable, SQLite type) as the page lists them."""
    sections = re.split(r"^### `(\w+)`", PAGE, flags=re.MULTILINE)
    return {
        name: [(c, pg, bool(null), lite) for c, pg, null, lite in ROW.findall(body)]
        for name, body in zip(sections[1::2], sections[2::2], strict=True)
    }


def _sqlite_tables() -> dict[str, list[tuple[str, str]]]:
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        later = gateway_backlog_ddl.upgrade_statements(postgres=False)
        for statement in (*SQLITE_BASELINE, *sqlite_statements(), *later):
            db.execute(statement)
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            name: [(str(r[1]), str(r[2])) for r in db.execute(f"PRAGMA table_info({name})")]
            for name in names
        }


def test_every_table_and_column_is_documented_in_order() -> None:
    documented = _documented()
    tables = _sqlite_tables()
    assert set(tables) <= set(documented)
    for table, columns in tables.items():
        assert [(c, lite) for c, _, _, lite in documented[table]] == columns, table


def test_the_typed_tables_document_their_postgresql_types() -> None:
    documented = _documented()
    for table in TABLES:
        expected = []
        for column in table.columns:
            name, _, rest = column.partition(" ")
            pg = rest.removesuffix(" NULL")
            expected.append((name, pg, rest.endswith(" NULL"), SQLITE_TYPES[pg]))
        if table.name == "gateways":
            # Added by revision 0005_gateway_backlog, nullable.
            expected += [(c, pg, True, lite) for c, pg, lite in gateway_backlog_ddl.COLUMNS]
        assert documented[table.name] == expected, table.name


def test_every_flag_bit_is_documented() -> None:
    for flag in RecordFlag:
        assert re.search(rf"^\| \d+ \| {flag.value} \| `{flag.name}` \|", PAGE, re.M), flag.name
