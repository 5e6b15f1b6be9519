"""Each pack's product as the gateway's report decides it (the view ``pack_products``), and
the analytics views regrouped on it (docs/warehouse-analytics.md).

Revision ID: 0004_pack_products
Revises: 0003_analytics
"""

from __future__ import annotations

from alembic import op

from sync.ingest.migrations.pack_products_ddl import downgrade_statements, upgrade_statements

revision = "0004_pack_products"
down_revision: str | None = "0003_analytics"
branch_labels: str | None = None
depends_on: str | None = None


def _run(statements: list[str], postgres: bool) -> None:
    bind = op.get_bind()
    for statement in statements:
        # psycopg reads % as a placeholder even without parameters: doubled, it is a literal.
        bind.exec_driver_sql(statement.replace("%", "%%") if postgres else statement)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _run(upgrade_statements(postgres), postgres)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _run(downgrade_statements(postgres), postgres)
