"""What :meth:`gateway.store.Store.fetchall` accepts as a read."""

from __future__ import annotations

import pytest

from gateway.store.sqlite_store import is_read


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT seq FROM outbox",
        "  select count(*) FROM outbox_quarantine",
        "\n-- the newest first\nSELECT seq FROM alerts ORDER BY seq DESC",
        "WITH t AS (SELECT 1) SELECT * FROM t",
        "VALUES (1)",
        "EXPLAIN QUERY PLAN SELECT seq FROM outbox",
        "PRAGMA quick_check",
        "PRAGMA user_version",
    ],
)
def test_reads_are_reads(sql: str) -> None:
    assert is_read(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "-- only a comment",
        "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) RETURNING seq",
        "INSERT OR IGNORE INTO outbox_quarantine (seq) SELECT seq FROM outbox",
        "UPDATE meta SET value = 'x'",
        "CREATE TABLE IF NOT EXISTS outbox_quarantine (seq INTEGER PRIMARY KEY)",
        "DROP TABLE outbox",
        "BEGIN IMMEDIATE",
        "PRAGMA user_version=5",
        "PRAGMA max_page_count = 10",
    ],
)
def test_writes_are_not_reads(sql: str) -> None:
    assert not is_read(sql)
