"""SQLAlchemy engines over the warehouse's own connections, for the migrations.

Alembic needs a SQLAlchemy connection; these make one from exactly what the warehouse
connects with (its PostgreSQL conninfo, with ``synchronous_commit = on``; its SQLite file,
with WAL and ``synchronous=FULL``), one connection at a time and no pool.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.pool import NullPool


def postgres_engine(conninfo: str, *, lock_timeout_ms: int | None = None) -> sa.Engine:
    """An engine whose connections are made by psycopg 3 from ``conninfo``; with
    ``lock_timeout_ms``, a statement waiting longer than that for a lock fails (SQLSTATE
    ``55P03``) instead of waiting on."""

    def connect() -> psycopg.Connection[Any]:
        conn = psycopg.connect(conninfo)
        # The schema change is acknowledged work too: never let a server default weaken COMMIT.
        conn.execute("SET synchronous_commit = on")
        if lock_timeout_ms is not None:
            conn.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
        conn.commit()
        return conn

    return sa.create_engine("postgresql+psycopg://", creator=connect, poolclass=NullPool)


def sqlite_engine(path: Path, *, busy_timeout_ms: int = 5000) -> sa.Engine:
    """An engine on the SQLite file, each transaction opened with ``BEGIN IMMEDIATE``."""

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        return db

    engine = sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # sqlite3 would only open a transaction before DML: take the write lock for DDL too.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


__all__ = ["postgres_engine", "sqlite_engine"]
