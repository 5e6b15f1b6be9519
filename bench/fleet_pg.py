"""The fleet bench's view of PostgreSQL: its own database, what the warehouse holds, the CPU
the server spends, its disk per record.

The server is local (127.0.0.1:5432), so its processes' CPU time can be read from
``/proc/<pid>/stat`` like any other's: the backends serving this database (the ingest
instances' connections) and the cluster's WAL writer, checkpointer and background writer
(shared with anything else using the server: the report says so).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from bench.common import cpu_seconds

HOST, PORT = "127.0.0.1", 5432
ADMIN_DSN = f"postgresql://postgres@{HOST}:{PORT}/postgres"
SERVER_PROCESSES = ("walwriter", "checkpointer", "background writer")


def dsn_of(name: str) -> str:
    """The DSN of database ``name`` on the local server."""
    return f"postgresql://postgres@{HOST}:{PORT}/{name}"


@contextlib.contextmanager
def fresh_database(prefix: str = "lineside_fleet_bench") -> Iterator[str]:
    """A new empty database; its DSN. Dropped (connections forced out) on the way out."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield dsn_of(name)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _row(dsn: str, query: LiteralString, params: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
    """The first row of one query on a connection of its own."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchone()


def _server_pids(dsn: str) -> tuple[list[int], list[int]]:
    """(backends of this database but ours, the cluster's WAL writer and friends)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, backend_type, datname = current_database() FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid()"
        ).fetchall()
    backends = [int(pid) for pid, kind, ours in rows if ours and kind == "client backend"]
    server = [int(pid) for pid, kind, _ in rows if kind in SERVER_PROCESSES]
    return backends, server


def _cpu(pids: list[int]) -> dict[int, float]:
    found: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # a backend that ended in between
            found[pid] = cpu_seconds(pid)
    return found


@dataclass(frozen=True)
class ServerCpu:
    """CPU seconds of the server's processes at one moment."""

    backends: dict[int, float]
    server: dict[int, float]

    @classmethod
    def sample(cls, dsn: str) -> ServerCpu:
        """Read every relevant process's CPU time now."""
        backends, server = _server_pids(dsn)
        return cls(_cpu(backends), _cpu(server))

    def since(self, earlier: ServerCpu) -> tuple[float, float]:
        """(backends', server processes') CPU seconds since ``earlier``; a backend that
        started in between counts from zero."""
        backends = sum(v - earlier.backends.get(pid, 0.0) for pid, v in self.backends.items())
        server = sum(
            v - earlier.server[pid] for pid, v in self.server.items() if pid in earlier.server
        )
        return backends, server


@dataclass(frozen=True)
class CommitWindow:
    """What the warehouse saw: its records and the span from its first to its last commit."""

    records: int
    seconds: float
    """From the first batch's transaction to the last one's (``received_at`` is each
    transaction's start, ``now()``)."""
    last_batch: int
    """Records of the last transaction, outside the span."""
    transactions: int
    """Distinct commit times: the ingest's transactions (one per batch)."""

    @property
    def per_s(self) -> float:
        """Records committed per second over the span."""
        done = self.records - self.last_batch
        return done / self.seconds if self.seconds > 0 else float("nan")


def commit_window(dsn: str) -> CommitWindow:
    """The warehouse's records and the span of their commits."""
    row = _row(
        dsn,
        "SELECT count(*), extract(epoch FROM max(received_at) - min(received_at)),"
        " count(*) FILTER (WHERE received_at = (SELECT max(received_at) FROM records)),"
        " count(DISTINCT received_at)"
        " FROM records",
    )
    if row is None or not row[0]:
        return CommitWindow(0, 0.0, 0, 0)
    return CommitWindow(int(row[0]), float(row[1] or 0.0), int(row[2]), int(row[3]))


def duplicate_keys(dsn: str) -> int:
    """``(gateway, seq)`` pairs stored more than once (the primary key says 0; checked)."""
    row = _row(dsn, "SELECT count(*) - count(DISTINCT (gateway, seq)) FROM records")
    return int(row[0]) if row else 0


def bytes_on_disk(dsn: str) -> int:
    """Every table of the warehouse with its indexes and TOAST (partitions included)."""
    row = _row(
        dsn,
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'm') AND n.nspname = 'public'",
    )
    return int(row[0]) if row else 0


def wal_position(dsn: str) -> int:
    """The server's current WAL position in bytes (the whole server: other databases' writes
    count too)."""
    row = _row(dsn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
    return int(row[0]) if row else 0


def server_settings(dsn: str) -> dict[str, str]:
    """The settings that decide how fast a commit is."""
    names = ("server_version", "synchronous_commit", "fsync", "wal_sync_method", "shared_buffers",
             "max_connections", "commit_delay")  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            name: str(row[0])
            for name in names
            if (row := conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone())
        }


__all__ = [
    "CommitWindow",
    "ServerCpu",
    "bytes_on_disk",
    "commit_window",
    "dsn_of",
    "duplicate_keys",
    "fresh_database",
    "server_settings",
    "wal_position",
]
