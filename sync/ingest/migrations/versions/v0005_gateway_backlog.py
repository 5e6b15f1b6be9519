"""Each gateway's backlog as its batches report it (``gateways.backlog``,
``gateways.backlog_at``) and ``fleet_status`` with them (docs/warehouse-schema.md).

Revision ID: 0005_gateway_backlog
Revises: 0004_pack_products
"""

from __future__ import annotations

from alembic import op

from sync.ingest.migrations.gateway_backlog_ddl import downgrade_statements, upgrade_statements

revision = "0005_gateway_backlog"
down_revision: str | None = "0004_pack_products"
branch_labels: str | None = None
depends_on: str | None = None


def _run(statements: list[str]) -> None:
    bind = op.get_bind()
    for statement in statements:
        bind.exec_driver_sql(statement)


def upgrade() -> None:
    _run(upgrade_statements(op.get_bind().dialect.name == "postgresql"))


def downgrade() -> None:
    _run(downgrade_statements(op.get_bind().dialect.name == "postgresql"))
