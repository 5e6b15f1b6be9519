"""How SQLite's errors map to the store's exception tree (sqlite.org/rescode.html)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from gateway.core.errors import StoreCorruptError, StoreError, StoreFullError, StoreIOError

# SQLite primary result codes (sqlite.org/rescode.html).
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_NOTADB = 26

DISK_FULL_BYTES = 1024 * 1024
"""An I/O error while less than this is free on the database's volume is taken as ENOSPC
(SQLite reports a failed write as SQLITE_FULL, but some other writes, e.g. growing the
``-shm`` file, as an SQLITE_IOERR variant)."""


def classify_sqlite_error(exc: sqlite3.Error) -> type[StoreError]:
    """Map a sqlite3 error to the store's exception tree."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    if (
        primary in (SQLITE_CORRUPT, SQLITE_NOTADB)
        or "malformed" in text
        or "not a database" in text
    ):
        return StoreCorruptError
    if primary == SQLITE_FULL or "database or disk is full" in text:
        return StoreFullError
    if primary == SQLITE_IOERR or "disk i/o error" in text:
        return StoreIOError
    return StoreError


def classify_on_disk(exc: sqlite3.Error, folder: Path) -> type[StoreError]:
    """Like :func:`classify_sqlite_error`, but an I/O error on a full disk is "full"."""
    error = classify_sqlite_error(exc)
    if error is StoreIOError and disk_is_full(folder):
        return StoreFullError
    return error


def disk_is_full(folder: Path) -> bool:
    """Whether less than :data:`DISK_FULL_BYTES` is free on ``folder``'s volume."""
    try:
        return shutil.disk_usage(folder).free < DISK_FULL_BYTES
    except OSError:
        return False
