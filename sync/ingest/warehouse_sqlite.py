"""The embedded warehouse in SQLite: its SQL dialect, the schema's upgrade at open
(:mod:`sync.ingest.migrations`), and the connection (WAL, ``synchronous=FULL``,
``BEGIN IMMEDIATE`` per commit). See :mod:`sync.ingest.warehouse` for the commit rules.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sync.ingest.facts_sql import FactWriter
from sync.ingest.facts_sqlite import SQLITE_FACTS
from sync.ingest.migrations import sqlite_engine, upgrade_to_head
from sync.ingest.warehouse_base import Dialect, Warehouse
from sync.ingest.warehouse_records import (
    HOUR_US,
    IN_CHUNK,
    Prepared,
    WarehouseError,
    WarehouseUnavailable,
)
from sync.protocol import Batch

# The module's old name: operators' log filters know the warehouse's messages by it.
logger = logging.getLogger("sync.ingest.warehouse")


# Floor division for integers (SQLite's '/' truncates towards zero), without relying on
# the optional math functions.
_SQLITE_TS = "CAST(json_extract(payload, '$.ts_us') AS INTEGER)"
_SQLITE_HOUR = (
    "CASE WHEN json_type(payload, '$.ts_us') IN ('integer', 'real')"
    " AND abs(json_extract(payload, '$.ts_us')) < 1e18"
    f" THEN {_SQLITE_TS} / {HOUR_US} - ({_SQLITE_TS} % {HOUR_US} < 0) END"
)


_SQLITE_TRANSIENT = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
)
"""Locked by another process, disk full, I/O trouble: retry. Anything else: refuse the batch."""


def _sqlite_error(exc: sqlite3.Error, path: Path) -> WarehouseError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(_SQLITE_TRANSIENT):
        return WarehouseUnavailable(f"SQLite {path}: {exc}")
    return WarehouseError(f"SQLite {path} [{name}]: {exc}")


SQLITE = Dialect(
    mark="?",
    run_number="json_extract(payload, '$.run_number')",
    hour=_SQLITE_HOUR,
    now="strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    key_cutoff="strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)",
    key_cutoff_param=lambda days: f"-{days} days",
)


class SqliteWarehouse(Warehouse):
    """The embedded warehouse: one SQLite file, WAL, ``synchronous=FULL``."""

    kind = "sqlite"
    dialect = SQLITE

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        super().__init__()
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, isolation_level=None)
                db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
                db.execute("PRAGMA journal_mode = WAL")
                # An ack promises durability: a commit must survive power loss.
                db.execute("PRAGMA synchronous = FULL")
            except (OSError, sqlite3.Error) as exc:
                raise WarehouseUnavailable(f"SQLite {self.path}: {exc}") from exc
            self._db = db
        return self._db

    def _open(self) -> None:
        self._upgrade_schema()
        with self._transaction():
            self._prune_keys()

    def _upgrade_schema(self) -> None:
        """``upgrade head`` in one ``BEGIN IMMEDIATE`` transaction on the same file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseUnavailable(f"SQLite {self.path}: {exc}") from exc
        engine = sqlite_engine(self.path, busy_timeout_ms=self._busy_timeout_ms)
        try:
            with engine.connect() as connection:
                upgrade_to_head(connection)
        except sa.exc.DBAPIError as exc:
            if isinstance(exc.orig, sqlite3.Error):
                raise _sqlite_error(exc.orig, self.path) from exc
            raise WarehouseUnavailable(f"SQLite {self.path}: {exc}") from exc
        finally:
            engine.dispose()

    def _fact_writer(self) -> FactWriter:
        return FactWriter(SQLITE_FACTS, self._execute, self._executemany)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, self.path) from exc
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    logger.exception("SQLite rollback failed; reopening %s", self.path)
                    self._close()
            if isinstance(exc, sqlite3.Error):
                raise _sqlite_error(exc, self.path) from exc
            raise

    def _insert_and_read(
        self, batch: Batch, records: Sequence[Prepared]
    ) -> tuple[set[int], dict[int, tuple[str, str, str]]]:
        # Inside BEGIN IMMEDIATE nobody else writes, so one read before the INSERT tells
        # everything: a sequence not stored yet is inserted from its first occurrence in the
        # batch, and then holds exactly that record (no read-back needed).
        stored = self._stored(batch.gateway, sorted({r.seq for r in records}))
        fresh: dict[int, Prepared] = {}
        for record in records:
            if record.seq not in stored and record.seq not in fresh:
                fresh[record.seq] = record
        if fresh:
            self._connection().executemany(
                "INSERT INTO records (gateway, site, seq, stream, payload, payload_sha256)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (gateway, seq) DO NOTHING",
                [
                    (batch.gateway, batch.site, r.seq, batch.stream, r.payload, r.sha256)
                    for r in fresh.values()
                ],
            )
        for seq, record in fresh.items():
            stored[seq] = (batch.site, batch.stream, record.sha256)
        return set(fresh), stored

    def _insert_records(self, batch: Batch, records: Sequence[Prepared]) -> set[int]:
        return self._insert_and_read(batch, records)[0]

    def _stored(self, gateway: str, seqs: Sequence[int]) -> dict[int, tuple[str, str, str]]:
        db = self._connection()
        stored: dict[int, tuple[str, str, str]] = {}
        for start in range(0, len(seqs), IN_CHUNK):
            chunk = list(seqs[start : start + IN_CHUNK])
            marks = ", ".join("?" * len(chunk))
            for seq, site, stream, sha in db.execute(
                "SELECT seq, site, stream, payload_sha256 FROM records"  # noqa: S608 (marks)
                f" WHERE gateway = ? AND seq IN ({marks})",
                (gateway, *chunk),
            ):
                stored[int(seq)] = (str(site), str(stream), str(sha))
        return stored

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        db = self._connection()
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, self.path) from exc

    def _execute(self, sql: str, params: Sequence[object]) -> Any:
        return self._connection().execute(sql, params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._connection().executemany(sql, rows)


__all__ = ["SQLITE", "SqliteWarehouse"]
