"""A fresh PostgreSQL database for a test module (127.0.0.1:5432, trust auth, superuser
``postgres``), dropped afterwards; no skip: a missing PostgreSQL fails the suite."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import psycopg
from psycopg import sql

PG_HOST, PG_PORT = "127.0.0.1", 5432


def admin() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit superuser connection to the ``postgres`` database."""
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    )


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new empty database named ``<prefix>_<random>``; its DSN. Dropped (connections
    forced out) on the way out."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def fresh_role(prefix: str) -> Iterator[str]:
    """A role name no one uses yet (the test creates it), dropped on the way out: open it
    around :func:`fresh_database`, so the database holding its grants is gone first."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        yield name
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
