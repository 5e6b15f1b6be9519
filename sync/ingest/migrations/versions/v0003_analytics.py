"""The analytics views over the typed facts, and an index on runs by number
(docs/warehouse-analytics.md).

Revision ID: 0003_analytics
Revises: 0002_typed_facts
"""

from __future__ import annotations

from alembic import op

from sync.ingest.migrations.analytics_ddl import (
    drop_statements,
    index_statements,
    view_statements,
)

revision = "0003_analytics"
down_revision: str | None = "0002_typed_facts"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    for statement in index_statements(postgres):
        bind.exec_driver_sql(statement)
    for statement in view_statements(postgres):
        # psycopg reads % as a placeholder even without parameters: doubled, it is a literal.
        bind.exec_driver_sql(statement.replace("%", "%%") if postgres else statement)


def downgrade() -> None:
    bind = op.get_bind()
    for statement in drop_statements():
        bind.exec_driver_sql(statement)
