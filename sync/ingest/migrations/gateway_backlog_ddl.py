"""Revision ``0005_gateway_backlog``, frozen: each gateway's outbox depth as its batches
report it (``gateways.backlog``, ``gateways.backlog_at``), and ``fleet_status`` recreated
with these two columns (docs/warehouse-schema.md, docs/warehouse-analytics.md).

Kept free of project imports: a released revision never changes.
"""

from __future__ import annotations

from typing import Final

COLUMNS: Final = (("backlog", "BIGINT", "INTEGER"), ("backlog_at", "TIMESTAMPTZ", "TEXT"))
"""(column, PostgreSQL type, SQLite type): SQLite keeps a timestamp as ISO-8601 UTC text,
as every other ``TIMESTAMPTZ`` of the warehouse (typed_ddl.py)."""

_IS_TRUE: Final = {True: "{} IS TRUE", False: "{} = 1"}


def _fleet(postgres: bool, backlog: bool) -> str:
    active = _IS_TRUE[postgres].format("a.active")
    extra = "\n       g.backlog, g.backlog_at," if backlog else ""
    return f"""
CREATE VIEW fleet_status AS
SELECT g.gateway, g.site, s.name AS site_name, g.first_seen, g.last_seen AS last_contact,
       g.last_seq, g.records,{extra}
       (SELECT count(*) FROM alerts_current a WHERE a.gateway = g.gateway
        AND {active}) AS active_alerts,
       (SELECT count(*) FROM lines l WHERE l.gateway = g.gateway) AS lines
FROM gateways g LEFT JOIN sites s ON s.site = g.site"""


def upgrade_statements(postgres: bool) -> list[str]:
    """Add the columns (NULL until a batch reports its backlog) and recreate the view."""
    index = 1 if postgres else 2
    return [
        *(f"ALTER TABLE gateways ADD COLUMN {c[0]} {c[index]} NULL" for c in COLUMNS),
        "DROP VIEW IF EXISTS fleet_status",
        _fleet(postgres, backlog=True),
    ]


def downgrade_statements(postgres: bool) -> list[str]:
    """Back to 0004: the view without the columns, then the columns dropped."""
    return [
        "DROP VIEW IF EXISTS fleet_status",
        _fleet(postgres, backlog=False),
        *(f"ALTER TABLE gateways DROP COLUMN {c[0]}" for c in reversed(COLUMNS)),
    ]
