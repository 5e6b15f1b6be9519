"""A PostgreSQL role that may only read the warehouse's facts, views and dimensions.

For BI tools (Grafana, Metabase, Power BI) that connect to the database directly
(docs/warehouse-api.md §5). :func:`grant_readonly` grants the role:

- ``CONNECT`` on the database and ``USAGE`` on the schema;
- ``SELECT`` on every table and view of the schema **except** the ingest's own bookkeeping:
  ``idempotency_keys`` (which HTTP keys were used), ``conflicts`` (refused payloads),
  ``records`` (the raw synced JSON; the typed facts hold the same data) and Alembic's
  ``alembic_version``;
- default privileges, for the role that owns the warehouse's tables, so every table it
  creates later, the ingest's new monthly partitions above all, is readable too;
- ``default_transaction_read_only = on`` for the role: even a grant added by mistake later
  cannot make its sessions write.

Nothing else: no INSERT, UPDATE, DELETE, TRUNCATE, no sequence or function privileges.
Running it again changes nothing (GRANT of a privilege held is a no-op). Every name goes
through :class:`psycopg.sql.Identifier`.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

EXCLUDED = ("idempotency_keys", "conflicts", "records", "alembic_version")
"""Relations the read-only role never gets: the ingest's bookkeeping and raw payloads."""


def readable_relations(conn: Any, schema: str) -> list[str]:
    """The tables (partitions included), partitioned tables and views of ``schema`` that the
    role may read."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm') "
        "AND NOT (c.relname = ANY(%s)) ORDER BY c.relname",
        (schema, list(EXCLUDED)),
    ).fetchall()
    return [str(name) for (name,) in rows]


def table_owners(conn: Any, schema: str) -> list[str]:
    """The roles that own tables in ``schema`` (their future tables get the default grant)."""
    rows = conn.execute(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
    ).fetchall()
    return [str(owner) for (owner,) in rows]


def grant_statements(
    role: str, *, database: str, schema: str, relations: list[str], owners: list[str]
) -> list[sql.Composed]:
    """The statements that make ``role`` a reader of ``relations``."""
    who = sql.Identifier(role)
    where = sql.Identifier(schema)
    statements = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), who),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, who),
        sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(who),
    ]
    statements += [
        sql.SQL("GRANT SELECT ON {}.{} TO {}").format(where, sql.Identifier(name), who)
        for name in relations
    ]
    statements += [
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}"
        ).format(sql.Identifier(owner), where, who)
        for owner in owners
    ]
    return statements


def grant_readonly(conn: Any, role: str, *, schema: str = "public") -> list[str]:
    """Grant ``role`` read access (see the module's docstring) in one transaction over
    ``conn`` (a psycopg connection of a role allowed to grant); the relations granted."""
    database = str(conn.execute("SELECT current_database()").fetchone()[0])
    relations = readable_relations(conn, schema)
    statements = grant_statements(
        role,
        database=database,
        schema=schema,
        relations=relations,
        owners=table_owners(conn, schema),
    )
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)
    return relations


def role_exists(conn: Any, role: str) -> bool:
    """Whether ``role`` exists."""
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def create_login_role(conn: Any, role: str, password: str | None) -> None:
    """``CREATE ROLE role LOGIN`` (with a password when given), nothing more."""
    statement = sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role))
    if password is not None:
        statement = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    conn.execute(statement)
