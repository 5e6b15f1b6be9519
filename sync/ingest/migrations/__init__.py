"""The warehouse's schema migrations (Alembic, configured in code: no ``alembic.ini``).

Revisions, in ``versions/``: ``0001_baseline`` (the schema before the migrations, adopted
as it is), ``0002_typed_facts`` (the typed facts, current state and dimensions), ``0003_analytics``
(the analytics views, docs/warehouse-analytics.md), ``0004_pack_products`` (each pack's
product as the gateway's report decides it, and the views regrouped on it),
``0005_gateway_backlog`` (each gateway's outbox depth as its batches report it). The ingest
upgrades to head at every open (:func:`upgrade_to_head`); see docs/warehouse-schema.md.
"""

from __future__ import annotations

from sync.ingest.migrations.engines import postgres_engine, sqlite_engine
from sync.ingest.migrations.runner import (
    SchemaTooNew,
    current_revisions,
    head_revision,
    upgrade_to_head,
)

__all__ = [
    "SchemaTooNew",
    "current_revisions",
    "head_revision",
    "postgres_engine",
    "sqlite_engine",
    "upgrade_to_head",
]
