"""The analytics views of warehouse revision ``0003_analytics``, for both databases, frozen.

Written once with a few dialect fragments (time buckets, booleans, JSON fields); the
migration (``versions/v0003_analytics.py``) creates them and the central reader
(central/analytics.py) queries the giveaway views. Every view and column is documented in
docs/warehouse-analytics.md. Shifts are 06-14, 14-22 and 22-06 UTC (:data:`SHIFT_OFFSET_H`,
:data:`SHIFT_HOURS`): a plant with other shifts recreates ``giveaway_by_line_shift`` with
its own figures (docs/warehouse-analytics.md, "Shifts").

Kept free of project imports: a revision's DDL never changes once released; a later change
is a new revision with its own module.
"""

from __future__ import annotations

from typing import Final

SHIFT_OFFSET_H: Final = 6
"""The first shift starts at 06:00 UTC."""
SHIFT_HOURS: Final = 8
"""Three shifts of eight hours."""

YIELD_MIN_PCT: Final = 90
GIVEAWAY_MAX_PCT: Final = 3

GIVEAWAY_VIEWS: Final = {
    "run": ("giveaway_by_run", None),
    "line_hour": ("giveaway_by_line_hour", "hour_start"),
    "line_shift": ("giveaway_by_line_shift", "shift_start"),
    "product_day": ("giveaway_by_product_day", "day_start"),
}
"""The reader's ``giveaway(by=...)``: the view and its period column (None: per run)."""

VIEWS: Final = (
    "fixed_weight_packs",
    "giveaway_by_run",
    "giveaway_by_line_hour",
    "giveaway_by_line_shift",
    "giveaway_by_product_day",
    "haccp_breaches",
    "run_summary",
    "run_compliance",
    "run_shelf_life",
    "fleet_status",
)
"""Created in this order, dropped in the reverse."""

_PG = {
    "true": "TRUE",
    "false": "FALSE",
    "is_true": "{} IS TRUE",
    "not_false": "{} IS NOT FALSE",
    "real": "DOUBLE PRECISION",
    "hour": "date_trunc('hour', {} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "day": "date_trunc('day', {} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "shift": (
        f"date_bin(INTERVAL '{SHIFT_HOURS} hours', {{}}, "
        f"TIMESTAMPTZ '2000-01-01 {SHIFT_OFFSET_H:02d}:00:00+00')"
    ),
    "hour_of": "CAST(extract(hour FROM {} AT TIME ZONE 'UTC') AS INTEGER)",
    "json_num": "CAST({} ->> '{}' AS DOUBLE PRECISION)",
    "seconds": "extract(epoch FROM ({} - {}))",
    "days": "({} + {} * INTERVAL '1 day')::date",
    "sqrt": "sqrt({})",
    "open_end": "'infinity'::timestamptz",
}
_LITE = {
    "true": "1",
    "false": "0",
    "is_true": "{} = 1",
    "not_false": "{} IS NOT 0",
    "real": "REAL",
    "hour": "strftime('%Y-%m-%dT%H:00:00.000000Z', {})",
    "day": "strftime('%Y-%m-%dT00:00:00.000000Z', {})",
    "shift": (
        "strftime('%Y-%m-%dT%H:00:00.000000Z', "
        f"(CAST(strftime('%s', {{}}) AS INTEGER) - {SHIFT_OFFSET_H * 3600}) "
        f"/ {SHIFT_HOURS * 3600} * {SHIFT_HOURS * 3600} + {SHIFT_OFFSET_H * 3600}, 'unixepoch')"
    ),
    "hour_of": "CAST(strftime('%H', {}) AS INTEGER)",
    "json_num": "CAST(json_extract({}, '$.{}') AS REAL)",
    "seconds": "((julianday({}) - julianday({})) * 86400.0)",
    "days": "date({}, '+' || ({}) || ' days')",
    "sqrt": "sqrt({})",
    "open_end": "'9999-12-31T23:59:59.999999Z'",
}


def _figures(net: str = "net_g", qn: str = "qn_g") -> str:
    """The giveaway columns of a group of fixed-weight packs."""
    return (
        f"count(*) AS packs, sum({net}) AS net_g_sum, sum({qn}) AS qn_g_sum, "
        f"sum({net}) / 1000.0 AS kg, sum({net}) / count(*) AS mean_g, "
        f"(sum({net}) - sum({qn})) / count(*) AS giveaway_g, "
        f"(sum({net}) - sum({qn})) / sum({qn}) * 100 AS giveaway_pct, "
        f"(sum({net}) - sum({qn})) / 1000.0 AS giveaway_kg"
    )


def view_statements(postgres: bool) -> list[str]:
    """CREATE VIEW of every analytics view."""
    d = _PG if postgres else _LITE
    window_end = f"coalesce(r.actual_end, {d['open_end']})"
    window_start = "coalesce(r.actual_start, r.planned_start)"
    in_run = f"x.ts >= {window_start} AND x.ts <= {window_end}"
    haccp = "('haccp_upper', 'haccp_lower', 'haccp_sensor_fault')"
    fixed = f"""
CREATE VIEW fixed_weight_packs AS
SELECT p.gateway, p.site, p.line, p.run_number, p.plu, p.ts, p.seq, p.net_g,
       CAST(rp.nominal_g AS {d["real"]}) AS qn_g
FROM packs p
JOIN run_products rp
  ON rp.gateway = p.gateway AND rp.run_number = p.run_number AND rp.plu = p.plu
WHERE {d["not_false"].format("p.accepted")} AND p.values_uncertain = {d["false"]}
  AND p.product_unknown = {d["false"]} AND rp.catch_weight = {d["false"]}
  AND rp.nominal_g IS NOT NULL"""
    by_run = f"""
CREATE VIEW giveaway_by_run AS
SELECT gateway, site, line, run_number, plu, min(ts) AS first_ts, max(ts) AS last_ts,
       {_figures()}
FROM fixed_weight_packs GROUP BY gateway, site, line, run_number, plu"""
    by_hour = f"""
CREATE VIEW giveaway_by_line_hour AS
SELECT gateway, site, line, {d["hour"].format("ts")} AS hour_start, {_figures()}
FROM fixed_weight_packs GROUP BY gateway, site, line, {d["hour"].format("ts")}"""
    by_shift = f"""
CREATE VIEW giveaway_by_line_shift AS
SELECT gateway, site, line, {d["shift"].format("ts")} AS shift_start,
       CASE WHEN {d["hour_of"].format(d["shift"].format("ts"))} = {SHIFT_OFFSET_H} THEN 'early'
            WHEN {d["hour_of"].format(d["shift"].format("ts"))} = {SHIFT_OFFSET_H + SHIFT_HOURS}
            THEN 'late' ELSE 'night' END AS shift,
       {_figures()}
FROM fixed_weight_packs GROUP BY gateway, site, line, {d["shift"].format("ts")}"""
    by_day = f"""
CREATE VIEW giveaway_by_product_day AS
SELECT gateway, site, plu, {d["day"].format("ts")} AS day_start, {_figures()}
FROM fixed_weight_packs GROUP BY gateway, site, plu, {d["day"].format("ts")}"""
    breaches = f"""
CREATE VIEW haccp_breaches AS
SELECT a.gateway, a.site, a.line, a.alert_id, a.rule, a.subject, a.severity, a.message,
       a.ts AS raised_at, c.ts AS cleared_at,
       {d["seconds"].format("c.ts", "a.ts")} AS duration_s
FROM alerts a
LEFT JOIN alerts c ON c.gateway = a.gateway AND c.alert_id = a.alert_id AND c.seq = (
  SELECT min(c2.seq) FROM alerts c2 WHERE c2.gateway = a.gateway AND c2.alert_id = a.alert_id
  AND c2.seq > a.seq AND c2.state = 'cleared')
WHERE a.state = 'raised' AND a.rule IN {haccp}"""
    raised = (
        "(SELECT count(*) FROM alerts x WHERE x.gateway = r.gateway AND x.line = r.line "
        f"AND x.state = 'raised' AND x.rule IN {{}} AND {in_run})"
    )
    summary = f"""
CREATE VIEW run_summary AS
SELECT r.gateway, r.site, r.line, r.run_number, r.status, {window_start} AS started,
       r.actual_end AS ended,
       (SELECT count(*) FROM packs x WHERE x.gateway = r.gateway AND x.run_number = r.run_number
        AND {d["not_false"].format("x.accepted")}) AS packs,
       (SELECT sum(x.net_g) / 1000.0 FROM packs x WHERE x.gateway = r.gateway
        AND x.run_number = r.run_number AND {d["not_false"].format("x.accepted")}) AS kg,
       f.packs AS fixed_weight_packs, f.mean_g, f.sd_g, f.giveaway_g, f.giveaway_pct,
       f.giveaway_kg,
       e.batches AS emark_batches, e.failed AS emark_failed, e.below_t2,
       CASE WHEN e.batches IS NULL OR e.batches = 0 THEN NULL
            WHEN e.failed > 0 THEN 'fail' ELSE 'pass' END AS emark_verdict,
       CAST(r.raw_material_kg AS {d["real"]}) AS raw_material_kg,
       (SELECT sum(x.net_g) / 1000.0 FROM packs x WHERE x.gateway = r.gateway
        AND x.run_number = r.run_number AND {d["not_false"].format("x.accepted")})
        / CAST(r.raw_material_kg AS {d["real"]}) * 100 AS yield_pct,
       (SELECT coalesce(sum({d["json_num"].format("x.detail", "missed")}), 0)
        FROM device_events x WHERE x.gateway = r.gateway AND x.kind = 'missed_packs'
        AND x.line = r.line AND {in_run}) AS missed_packs,
       {raised.format("('label_gap')")} AS label_gaps,
       {raised.format("('shelf_life_use_by')")} AS use_by_errors,
       {raised.format(haccp)} AS haccp_breaches,
       (SELECT coalesce(sum(b.duration_s), 0) FROM haccp_breaches b
        WHERE b.gateway = r.gateway AND b.line = r.line AND b.raised_at >= {window_start}
        AND b.raised_at <= {window_end}) AS haccp_breach_s
FROM runs r
LEFT JOIN (
  SELECT gateway, run_number, count(*) AS packs, sum(net_g) / count(*) AS mean_g,
    CASE WHEN count(*) > 1 THEN {
        d["sqrt"].format(
            "max((sum(net_g * net_g) - sum(net_g) * sum(net_g) / count(*)) / (count(*) - 1), 0)"
        )
    } END AS sd_g,
    (sum(net_g) - sum(qn_g)) / count(*) AS giveaway_g,
    (sum(net_g) - sum(qn_g)) / sum(qn_g) * 100 AS giveaway_pct,
    (sum(net_g) - sum(qn_g)) / 1000.0 AS giveaway_kg
  FROM fixed_weight_packs GROUP BY gateway, run_number
) f ON f.gateway = r.gateway AND f.run_number = r.run_number
LEFT JOIN (
  SELECT gateway, run_number, count(*) AS batches,
    sum(CASE WHEN verdict = 'fail' THEN 1 ELSE 0 END) AS failed, sum(below_t2) AS below_t2
  FROM emark_batches GROUP BY gateway, run_number
) e ON e.gateway = r.gateway AND e.run_number = r.run_number"""
    if postgres:
        summary = summary.replace("max((sum(net_g * net_g)", "greatest((sum(net_g * net_g)")
    rule_raised = (
        "NOT EXISTS (SELECT 1 FROM alerts x WHERE x.gateway = s.gateway AND x.line = s.line "
        "AND x.rule = '{}' AND x.state = 'raised' AND (x.subject = s.line || '/' || s.run_number "
        "OR x.subject LIKE s.line || '/' || s.run_number || '/%'))"
    )
    compliance = f"""
CREATE VIEW run_compliance AS
SELECT s.gateway, s.site, s.line, s.run_number,
       {rule_raised.format("compliance_gg_in_premium")} AS gg_in_premium_ok,
       {rule_raised.format("compliance_tails_in_premium")} AS tails_in_premium_ok,
       {rule_raised.format("compliance_species_mismatch")} AS species_match_ok,
       {rule_raised.format("compliance_scanback_orphan")} AS scanback_ok,
       (s.yield_pct IS NULL OR s.yield_pct >= {YIELD_MIN_PCT}) AS yield_ok,
       (s.haccp_breaches = 0) AS temperature_ok,
       (s.giveaway_pct IS NULL OR s.giveaway_pct <= {GIVEAWAY_MAX_PCT}) AS giveaway_ok,
       (s.label_gaps = 0) AS label_gaps_ok
FROM run_summary s"""
    shelf = f"""
CREATE VIEW run_shelf_life AS
SELECT r.gateway, r.site, r.line, r.run_number, r.pack_date, r.shelf_life_adjust,
       {d["days"].format("r.pack_date", "9 + r.shelf_life_adjust")} AS use_by,
       {d["days"].format("r.pack_date", "12")} AS freeze_down_from
FROM runs r WHERE r.pack_date IS NOT NULL"""
    fleet = f"""
CREATE VIEW fleet_status AS
SELECT g.gateway, g.site, s.name AS site_name, g.first_seen, g.last_seen AS last_contact,
       g.last_seq, g.records,
       (SELECT count(*) FROM alerts_current a WHERE a.gateway = g.gateway
        AND {d["is_true"].format("a.active")}) AS active_alerts,
       (SELECT count(*) FROM lines l WHERE l.gateway = g.gateway) AS lines
FROM gateways g LEFT JOIN sites s ON s.site = g.site"""
    return [fixed, by_run, by_hour, by_shift, by_day, breaches, summary, compliance, shelf, fleet]


INDEXES: Final = (("runs_run_number", "runs", "run_number"),)
"""A run asked for by its number alone (which gateways recorded it) is found by index."""


PACK_PRODUCT_INDEX: Final = "device_events_pack_product_run"
"""A run's ``pack_product`` events (packs whose product their label told later), found by the
run number in their detail: the run report copies them (central/run_copy.py). Without it the
copy read every later ``pack_product`` event of the gateway: a sequential scan of each month's
partition for an old run once labels decide many products (bench/results/warehouse-latest.md)."""


def index_statements(postgres: bool = True) -> list[str]:
    """CREATE INDEX of the revision's indexes (the same in both databases; the run number of
    a JSON detail is written in each database's own form, as the reader's query writes it)."""
    run_number = "(detail ->> 'run_number')" if postgres else "json_extract(detail, '$.run_number')"
    return [
        *(f"CREATE INDEX {name} ON {table} ({column})" for name, table, column in INDEXES),
        f"CREATE INDEX {PACK_PRODUCT_INDEX} ON device_events (gateway, {run_number}) "
        "WHERE kind = 'pack_product'",
    ]


def drop_statements() -> list[str]:
    """Every view and index of the revision, dropped (the downgrade)."""
    return (
        [f"DROP VIEW IF EXISTS {view}" for view in reversed(VIEWS)]
        + [f"DROP INDEX IF EXISTS {name}" for name, _table, _column in INDEXES]
        + [f"DROP INDEX IF EXISTS {PACK_PRODUCT_INDEX}"]
    )
