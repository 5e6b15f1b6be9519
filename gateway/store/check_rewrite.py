"""The store's ``IN (...)`` CHECK constraints, rewritten as equal comparisons joined by OR.

Why: SQLite compiles ``x IN (a, b, c)`` into a small temporary index that every execution
of the statement builds again. A CHECK belongs to the INSERT statement, and ``executemany``
executes that statement once per row, so the index was built for every row stored: about
2.4 µs a row per such CHECK on the bench machine, which was half the cost of an outbox row
and three times more for a pack (docs/benchmarks.md, "SQLite CHECK constraints").
``x = a OR x = b`` checks the same thing with no index to build.

The two forms are equal here: every column concerned is ``STRICT`` and compared with its own
collation either way, and a NULL gives NULL in both (SQLite lets a row pass a CHECK that is
NULL, so ``accepted IS NULL OR ...`` reads the same). Only the stored text of the table
changes: no row is touched, so a store of any size is done at once.

How: SQLite keeps each table's ``CREATE TABLE`` text in ``sqlite_master``. Changing it for a
constraint that every stored row already meets is the procedure SQLite documents for such
changes (docs/operations.md, "Store schema upkeep"): in one transaction, with
``writable_schema`` on, update the text, add one to ``schema_version`` so every connection
reads the schema again, and read it again here (``writable_schema=RESET``). A SQLite built
to refuse this (its "defensive" setting) keeps the old constraints: the gateway logs it and
runs as before, only slower.

Applied at every open after the migrations; a store already rewritten is left as it is.
"""

from __future__ import annotations

import logging
import sqlite3

import aiosqlite

log = logging.getLogger(__name__)

REWRITES: dict[str, tuple[tuple[str, str], ...]] = {
    "runs": (("provisional IN (0, 1)", "provisional = 0 OR provisional = 1"),),
    "run_versions": (
        ("source IN ('erp', 'operator')", "source = 'erp' OR source = 'operator'"),
        ("provisional IN (0, 1)", "provisional = 0 OR provisional = 1"),
    ),
    "packs": (
        ("accepted IN (0, 1)", "accepted = 0 OR accepted = 1"),
        ("catch_weight IN (0, 1)", "catch_weight = 0 OR catch_weight = 1"),
        (
            "product_source IN ('device', 'label', 'nominal', 'only_product')",
            "product_source = 'device' OR product_source = 'label' "
            "OR product_source = 'nominal' OR product_source = 'only_product'",
        ),
    ),
    "alerts": (
        (
            "severity IN ('critical', 'major', 'warning')",
            "severity = 'critical' OR severity = 'major' OR severity = 'warning'",
        ),
    ),
    "emark_batches": (("verdict IN ('pass', 'fail')", "verdict = 'pass' OR verdict = 'fail'"),),
    "outbox": (("priority IN (0, 1, 2)", "priority = 0 OR priority = 1 OR priority = 2"),),
}
"""Per table, each ``IN`` list of the migrations (gateway/store/schema.py) as it is stored,
and the comparisons that replace it. Every one sits inside ``CHECK (...)`` or after an
``OR`` there, so no parentheses are needed around the replacement."""


def rewritten(table: str, sql: str) -> str:
    """``sql`` (a table's stored ``CREATE TABLE``) with its ``IN`` lists replaced."""
    for old, new in REWRITES.get(table, ()):
        sql = sql.replace(old, new)
    return sql


async def rewrite_in_list_checks(db: aiosqlite.Connection) -> list[str]:
    """Rewrite the ``IN`` list CHECKs of the store's tables (outside a transaction); the
    tables changed. Leaves the schema as it was when SQLite refuses the change."""
    names = list(REWRITES)
    marks = ", ".join("?" * len(names))
    async with db.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",  # noqa: S608
        names,
    ) as cursor:
        stored = [(str(name), str(sql)) for name, sql in await cursor.fetchall()]
    changes = [(name, sql, rewritten(name, sql)) for name, sql in stored]
    changes = [change for change in changes if change[2] != change[1]]
    if not changes:
        return []
    try:
        await db.execute("BEGIN IMMEDIATE")
        await db.execute("PRAGMA writable_schema = ON")
        for name, old_sql, new_sql in changes:
            await db.execute(
                "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ? AND sql = ?",
                (new_sql, name, old_sql),
            )
        async with db.execute("PRAGMA schema_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        await db.execute(f"PRAGMA schema_version = {version + 1}")
        await db.execute("PRAGMA writable_schema = RESET")
        # Reading the schema again parses every new text: a mistake fails here, before COMMIT.
        async with db.execute("SELECT count(*) FROM sqlite_master") as cursor:
            await cursor.fetchall()
        await db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            await db.execute("ROLLBACK")
        await db.execute("PRAGMA writable_schema = RESET")
        log.warning(
            "store: kept the IN-list CHECK constraints of %s (SQLite refused to rewrite "
            "them: %s); records are stored as before, at a higher cost per row",
            ", ".join(name for name, _, _ in changes),
            exc,
        )
        return []
    return [name for name, _, _ in changes]
