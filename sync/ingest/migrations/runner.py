"""Upgrading a warehouse to the newest revision the code knows, without an ``alembic.ini``.

What Alembic's ``env.py`` would do, as a function the warehouse calls at open (and
``lineside warehouse backfill`` before it derives anything): the revisions are the files of
``versions/`` beside this module (shipped in the wheel), the connection is the warehouse's
own (made by the caller with its settings), and the whole upgrade is ONE transaction:

* PostgreSQL holds ``pg_advisory_xact_lock`` for it, so several ingest instances starting
  together upgrade once and the others find the schema at head;
* SQLite starts it with ``BEGIN IMMEDIATE`` (the file's write lock) for the same reason.

A warehouse at a revision the code does not know (a newer release upgraded it) is refused
with :class:`SchemaTooNew`: running older code against it could corrupt what the newer
code expects.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from sync.ingest.warehouse_records import WarehouseError

SCRIPT_LOCATION = Path(__file__).resolve().parent
LOCK_KEY = "lineside-ingest-schema"
"""The advisory lock's name (hashed): the same one the code before the migrations took."""


class SchemaTooNew(WarehouseError):
    """The warehouse is at a revision this code does not know: refuse to start."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


def script_directory() -> ScriptDirectory:
    """The revisions shipped with the code."""
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The newest revision the code knows."""
    head = script_directory().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise WarehouseError("no warehouse migrations found")
    return head


def current_revisions(connection: sa.Connection) -> tuple[str, ...]:
    """The revisions the database is at (empty: never migrated)."""
    return tuple(MigrationContext.configure(connection).get_current_heads())


def _check_known(script: ScriptDirectory, current: tuple[str, ...]) -> None:
    for revision in current:
        try:
            known = script.get_revision(revision)
        except CommandError:
            known = None
        if known is None:
            raise SchemaTooNew(
                f"the warehouse schema is at revision {revision!r}, which this version of"
                f" lineside does not know (its newest is {script.get_current_head()!r}):"
                " run the newer lineside, or restore the database"
            )


def upgrade_to_head(connection: sa.Connection) -> tuple[str, ...]:
    """Upgrade the database to the head revision in one transaction; the revisions it was at.

    ``connection`` must not be in a transaction; it is committed here.

    :raises SchemaTooNew: the database is at a revision the code does not know.
    """
    config = _config()
    script = ScriptDirectory.from_config(config)
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock(hashtext('{LOCK_KEY}'))")
        before = current_revisions(connection)
        _check_known(script, before)
        with EnvironmentContext(
            config,
            script,
            fn=lambda rev, _context: script._upgrade_revs("head", rev),
            destination_rev="head",
        ) as env:
            env.configure(connection=connection, transaction_per_migration=False)
            env.run_migrations()
    return before


__all__ = [
    "LOCK_KEY",
    "SCRIPT_LOCATION",
    "SchemaTooNew",
    "current_revisions",
    "head_revision",
    "script_directory",
    "upgrade_to_head",
]
