"""The warehouse as it was before the migrations: records, conflicts, idempotency keys.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

from alembic import op

from sync.ingest.migrations.baseline_ddl import PG_BASELINE, SQLITE_BASELINE

revision = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    bind = op.get_bind()
    statements = PG_BASELINE if bind.dialect.name == "postgresql" else SQLITE_BASELINE
    for statement in statements:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    bind = op.get_bind()
    for table in ("idempotency_keys", "conflicts", "records"):
        bind.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
