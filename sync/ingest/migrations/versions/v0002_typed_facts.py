"""The typed warehouse: facts per stream, current state, dimensions (docs/warehouse-schema.md).

The old per-stream views over ``records`` are dropped: the fact tables take their names.

Revision ID: 0002_typed_facts
Revises: 0001_baseline
"""

from __future__ import annotations

from alembic import op

from sync.ingest.migrations.baseline_ddl import OLD_VIEWS
from sync.ingest.migrations.typed_ddl import drop_statements, pg_statements, sqlite_statements

revision = "0002_typed_facts"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    bind = op.get_bind()
    for view in OLD_VIEWS:
        bind.exec_driver_sql(f"DROP VIEW IF EXISTS {view}")
    postgres = bind.dialect.name == "postgresql"
    for statement in pg_statements() if postgres else sqlite_statements():
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    bind = op.get_bind()
    for statement in drop_statements():
        bind.exec_driver_sql(statement)
