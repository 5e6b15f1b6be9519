"""Opening the database file: the header check, the pragmas, ``quick_check``, the
migrations of :data:`gateway.store.schema.MIGRATIONS` and the CHECK rewrite of
:mod:`gateway.store.check_rewrite`."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

from gateway.core.errors import StoreCorruptError, StoreError, StoreIOError
from gateway.store.check_rewrite import rewrite_in_list_checks
from gateway.store.record_tables import RECORD_STREAMS
from gateway.store.schema import MIGRATIONS, SCHEMA_VERSION
from gateway.store.sqlite_errors import classify_sqlite_error

log = logging.getLogger(__name__)

MIB = 1024 * 1024
SQLITE_HEADER = b"SQLite format 3\x00"


async def open_database(
    path: Path, then: Callable[[aiosqlite.Connection], Awaitable[None]]
) -> aiosqlite.Connection:
    """Connect, verify and migrate, then run ``then`` (the budget) on the connection.

    Raises StoreCorruptError for a damaged file, another StoreError for one SQLite cannot
    open or write; the connection is closed again on any failure.
    """
    check_header(path)
    try:
        db = await aiosqlite.connect(path, isolation_level=None, timeout=5.0)
    except sqlite3.Error as exc:
        # "unable to open database file" names no file: the store's path is added.
        raise classify_sqlite_error(exc)(f"{path}: {exc}") from exc
    try:
        await _prepare(db, path)
        await then(db)
    except sqlite3.Error as exc:
        await db.close()
        error = classify_sqlite_error(exc)
        raise error(f"{path}: {exc}") from exc
    except StoreError:
        await db.close()
        raise
    return db


def check_header(path: Path) -> None:
    """Refuse a file that is not a SQLite database before SQLite opens it.

    Opening it would let SQLite "recover" and delete a companion ``-wal`` on close,
    destroying what the quarantine should keep (sqlite.org/fileformat.html §1.3: every
    database starts with the 16 bytes "SQLite format 3\\0").
    """
    try:
        with open(path, "rb") as handle:
            header = handle.read(16)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreIOError(f"{path}: cannot read: {exc}") from exc
    if header and header != SQLITE_HEADER:
        raise StoreCorruptError(f"{path}: not a database (header {header[:16]!r})")


async def _prepare(db: aiosqlite.Connection, path: Path) -> None:
    # journal_mode is the first read of the file header: garbage fails here.
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=FULL")
    await db.execute("PRAGMA temp_store=MEMORY")
    await db.execute(f"PRAGMA journal_size_limit={32 * MIB}")
    async with db.execute("PRAGMA quick_check") as cursor:
        rows = [str(r[0]) for r in await cursor.fetchall()]
    if rows != ["ok"]:
        raise StoreCorruptError(f"{path}: quick_check: {'; '.join(rows[:5])}")
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema {version}, newer than this Lineside ({SCHEMA_VERSION})"
        )
    for number in range(version, SCHEMA_VERSION):
        await db.execute("BEGIN IMMEDIATE")
        # executescript() would COMMIT on its own; run statement by statement instead so
        # the migration and its user_version bump are one transaction.
        for statement in split_sql(MIGRATIONS[number]):
            await db.execute(statement)
        await db.execute(f"PRAGMA user_version={number + 1}")
        await db.execute("COMMIT")
        log.info("store migrated %s to schema %d", path, number + 1)
    rewritten = await rewrite_in_list_checks(db)
    if rewritten:
        log.info("store %s: IN-list CHECKs rewritten in %s", path, ", ".join(rewritten))


async def max_sequence(db: aiosqlite.Connection) -> int:
    """The highest gateway sequence number in the database (0 when it is empty)."""
    highest = 0
    for table in (*RECORD_STREAMS, "runs", "outbox"):
        async with db.execute(f"SELECT max(seq) FROM {table}") as cursor:  # noqa: S608
            row = await cursor.fetchone()
        if row and row[0] is not None:
            highest = max(highest, int(row[0]))
    return highest


def split_sql(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our literals)."""
    statements = []
    for chunk in script.split(";"):
        lines = [ln for ln in chunk.splitlines() if not ln.strip().startswith("--")]
        text = "\n".join(lines).strip()
        if text:
            statements.append(text)
    return statements
