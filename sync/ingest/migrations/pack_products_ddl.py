"""Revision ``0004_pack_products``, frozen: each pack's product, decided as the gateway's
report decides it, and the analytics views of ``0003_analytics`` regrouped on it.

A pack's product is, in this order (gateway/report.py, ``_RUN_PACKS``):

1. ``packs.plu``, decided when the pack was stored;
2. the PLU of a later ``pack_product`` device event naming the pack (same gateway and device,
   ``detail.pack_ts_us`` = the pack's ``ts_us``, ``detail.run_number`` = its run): the pack
   waited for its label;
3. when the pack has no ``product_source`` and is not flagged PRODUCT_UNKNOWN: the run's one
   fixed-weight product whose Qn is the pack's ``nominal_g`` (a pack stored before products
   were decided per pack, or by a tool).

The view ``pack_products`` does it per pack, so a pack's product follows whichever of the
pack and its event arrived last; the expression index on ``device_events`` serves
step 2 for one pack at a time, and ``run_products``' primary key serves step 3. Only
``fixed_weight_packs`` of 0003 read ``packs.plu``; it is recreated over ``pack_products``
and every view above it is recreated unchanged (docs/warehouse-analytics.md).

Kept free of project imports but its predecessor's DDL: a released revision never changes.
"""

from __future__ import annotations

from typing import Final

from sync.ingest.migrations import analytics_ddl

VIEW: Final = "pack_products"

INDEX: Final = "device_events_pack_product"

_EVENT_KEY = {
    True: "(detail ->> 'pack_ts_us')",
    False: "json_extract(detail, '$.pack_ts_us')",
}
"""The indexed expression: the pack's ``ts_us`` the event names. PostgreSQL keeps it as
text, so a malformed event can never make an insert fail on a cast."""


def index_statement(postgres: bool) -> str:
    """The index of device events by gateway, device and the pack's time they name. Not
    partial: PostgreSQL's planner ignores the statistics of a partial index's expression,
    and without them it prices each probe as hundreds of rows."""
    return f"CREATE INDEX {INDEX} ON device_events (gateway, device, {_EVENT_KEY[postgres]})"


def event_names_pack(postgres: bool) -> str:
    """SQL: device event ``e`` names pack ``p`` (served by :data:`INDEX`)."""
    pack_ts = "CAST(p.ts_us AS TEXT)" if postgres else "p.ts_us"
    return (
        "e.gateway = p.gateway AND e.device = p.device "
        f"AND {_EVENT_KEY[postgres].replace('detail', 'e.detail')} = {pack_ts}"
    )


def pack_products_statement(postgres: bool) -> str:
    """CREATE VIEW ``pack_products``: every pack with the product it counts under."""
    false = "FALSE" if postgres else "0"
    real = "DOUBLE PRECISION" if postgres else "REAL"
    if postgres:
        event_run = "e.detail ->> 'run_number'"
        event_plu = "e.detail ->> 'plu'"
    else:
        event_run = "json_extract(e.detail, '$.run_number')"
        event_plu = "json_extract(e.detail, '$.plu')"
    return f"""
CREATE VIEW pack_products AS
SELECT p.gateway, p.site, p.line, p.device, p.run_number, p.pack_counter, p.label_seq, p.seq, p.ts,
       p.ts_us, p.net_g, p.nominal_g, p.accepted, p.flags, p.values_uncertain,
       p.product_unknown, p.product_source,
       coalesce(
         p.plu,
         (SELECT max({event_plu}) FROM device_events e
          WHERE {event_names_pack(postgres)} AND e.kind = 'pack_product'
            AND {event_run} = p.run_number),
         CASE WHEN p.product_source IS NULL AND p.product_unknown = {false} THEN
           (SELECT max(rp.plu) FROM run_products rp
            WHERE rp.gateway = p.gateway AND rp.run_number = p.run_number
              AND rp.catch_weight = {false} AND rp.nominal_g IS NOT NULL
              AND CAST(rp.nominal_g AS {real}) = p.nominal_g
            HAVING count(*) = 1)
         END
       ) AS plu
FROM packs p"""


_OLD_FIXED = """
FROM packs p
JOIN run_products rp
  ON rp.gateway = p.gateway AND rp.run_number = p.run_number AND rp.plu = p.plu"""
_NEW_FIXED = """
FROM pack_products p
JOIN run_products rp
  ON rp.gateway = p.gateway AND rp.run_number = p.run_number AND rp.plu = p.plu"""


_MEAN, _QN = "sum(net_g) / count(*)", "sum(qn_g) / count(*)"
_FIGURES = (
    # The report's own arithmetic (mean - Qn, (mean - Qn) / Qn): for one product the same
    # float operations, so a run's product row equals its ProductLine bit for bit.
    ("(sum(net_g) - sum(qn_g)) / count(*) AS giveaway_g", f"{_MEAN} - {_QN} AS giveaway_g"),
    (
        "(sum(net_g) - sum(qn_g)) / sum(qn_g) * 100 AS giveaway_pct",
        f"({_MEAN} - {_QN}) / ({_QN}) * 100 AS giveaway_pct",
    ),
)


def view_statements(postgres: bool) -> list[str]:
    """``pack_products``, then 0003's views with ``fixed_weight_packs`` over it and the
    giveaway figures computed as the report computes them."""
    old = analytics_ddl.view_statements(postgres)
    fixed = old[0]
    if _OLD_FIXED not in fixed:  # pragma: no cover - 0003 is frozen
        raise RuntimeError("fixed_weight_packs of 0003_analytics is not the one 0004 replaces")
    views = [fixed.replace(_OLD_FIXED, _NEW_FIXED)]
    for statement in old[1:]:
        for before, after in _FIGURES:
            statement = statement.replace(before, after)  # noqa: PLW2901
        views.append(statement)
    return [pack_products_statement(postgres), *views]


def upgrade_statements(postgres: bool) -> list[str]:
    """0003's views dropped, the index made, the views created over ``pack_products``."""
    drops = [f"DROP VIEW IF EXISTS {v}" for v in reversed(analytics_ddl.VIEWS)]
    return [*drops, index_statement(postgres), *view_statements(postgres)]


def downgrade_statements(postgres: bool) -> list[str]:
    """Back to 0003: its views over ``packs.plu``."""
    drops = [f"DROP VIEW IF EXISTS {v}" for v in reversed(analytics_ddl.VIEWS)]
    return [
        *drops,
        f"DROP VIEW IF EXISTS {VIEW}",
        f"DROP INDEX IF EXISTS {INDEX}",
        *analytics_ddl.view_statements(postgres),
    ]
