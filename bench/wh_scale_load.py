"""Loading the scale benchmark's warehouse (the plan: :mod:`bench.wh_scale_plan`).

* a fresh database, upgraded by the real ingest (``PostgresWarehouse.open``: the Alembic
  migrations, the partitions of the first months);
* every run's versions (running at its start, finished at its end) committed through the
  real commit path (``Warehouse.commit_batch``), so ``runs``, ``run_products``,
  ``run_batch_codes``, ``run_versions`` and the dimensions are what the ingest writes;
* the monthly partitions of every month the data touches, made by the ingest's own
  :class:`~sync.ingest.facts_pg.Partitions`;
* the bulk facts (packs, label scans, temperatures, ℮ batches, device events, HACCP
  alerts) by
  ``INSERT … SELECT generate_series`` joined to a temporary table of the runs: the typed
  facts only (a synced record's ``records`` row is not what the read side reads, and
  writing 20 million JSON payloads would only slow the load);
* ``VACUUM (ANALYZE)`` of every table, as autovacuum would leave them, and a ``CHECKPOINT``
  (the timings then do not compete with the load's write-back).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from bench.wh_scale_plan import PRODUCTS, TEMPERATURE_EVERY_US, Plan, Run, from_us
from gateway.core.records import RunVersion
from gateway.core.runs import Product, ProductionRun, RunStatus, Tier, run_version
from gateway.store.record_tables import RECORD_TABLES
from sync.ingest.facts_pg import Partitions
from sync.ingest.warehouse_postgres import PostgresWarehouse
from sync.protocol import Batch

ADMIN_DB = "postgres"
CHUNK_PACKS = 500_000
"""Packs (or label scans) per INSERT statement: progress, and short transactions."""
VERSION_BATCH = 500
Log = Callable[[str], None]


def dsn_of(host: str, port: int, database: str) -> str:
    return f"postgresql://postgres@{host}:{port}/{database}"


def create_database(host: str, port: int, database: str, comment: str) -> None:
    """Drop ``database`` if it exists, create it empty, label it with the plan."""
    with psycopg.connect(dsn_of(host, port, ADMIN_DB), autocommit=True) as admin:
        name = sql.Identifier(database)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
        admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(name, sql.Literal(comment)))


def database_comment(host: str, port: int, database: str) -> str | None:
    """The plan a database was loaded with (None when there is no such database)."""
    with psycopg.connect(dsn_of(host, port, ADMIN_DB), autocommit=True) as admin:
        row = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (database,),
        ).fetchone()
    return None if row is None else row[0]


def drop_database(host: str, port: int, database: str) -> None:
    with psycopg.connect(dsn_of(host, port, ADMIN_DB), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


# --------------------------------------------------------------------------------------
# Runs, through the ingest's commit path


def _production_run(plan: Plan, run: Run, status: RunStatus, updated_us: int) -> ProductionRun:
    products = tuple(
        Product(
            plu=f"{run.line.line}{suffix}{run.shift}",
            nominal_g=Decimal(nominal),
            tier=Tier(tier),
            species="salmon",
            gtin=f"{gtin}{run.line.index}{run.shift}",
            description=f"Salmon fillet {nominal} g",
        )
        for suffix, nominal, tier, gtin in PRODUCTS
    )
    finished = status is RunStatus.FINISHED
    start, end = from_us(run.start_us), from_us(run.end_us)
    return ProductionRun(
        run_number=run.run_number,
        line=run.line.line,
        batch_codes=(run.batch_code,),
        description="Salmon fillets",
        species="salmon",
        product_type="fillet",
        products=products,
        raw_material_kg=Decimal(max(1, run.packs) * 400) / 1000,
        pack_date=start.date(),
        shelf_life_adjust=0,
        planned_start=start,
        planned_end=end,
        actual_start=start,
        actual_end=end if finished else None,
        status=status,
        updated=from_us(updated_us),
    )


def _version(plan: Plan, run: Run, status: RunStatus, ts_us: int) -> dict[str, Any]:
    """A run_versions record as the gateway's outbox sends it (the store's row)."""
    record = run_version(_production_run(plan, run, status, ts_us), ts_us)
    table = RECORD_TABLES[RunVersion]
    return dict(zip(table.columns, table.row(record), strict=True))


def _version_batches(plan: Plan) -> Iterator[Batch]:
    """Each gateway's run versions in sequence order (seq 1.. per gateway)."""
    for gateway in sorted({line.gateway for line in plan.lines}):
        site = next(line.site for line in plan.lines if line.gateway == gateway)
        records: list[tuple[int, dict[str, Any]]] = []
        versions = []
        for run in plan.runs:
            if run.line.gateway == gateway:
                versions.append((run.start_us, run, RunStatus.RUNNING))
                versions.append((run.end_us, run, RunStatus.FINISHED))
        versions.sort(key=lambda v: (v[0], v[1].index))
        for ts_us, run, status in versions:
            records.append((len(records) + 1, _version(plan, run, status, ts_us)))
        for i in range(0, len(records), VERSION_BATCH):
            yield Batch(gateway, site, "run_versions", tuple(records[i : i + VERSION_BATCH]))


async def _commit_runs(dsn: str, plan: Plan) -> int:
    warehouse = PostgresWarehouse(dsn, today=lambda: from_us(plan.start_us))
    await warehouse.open()
    committed = 0
    try:
        for batch in _version_batches(plan):
            ack = await warehouse.commit_batch(batch)
            if ack.conflicts:
                raise RuntimeError(f"run versions refused: {ack.conflicts[:3]}")
            committed += len(batch.records)
    finally:
        await warehouse.close()
    return committed


# --------------------------------------------------------------------------------------
# Bulk facts

_US_TS = """
CREATE FUNCTION pg_temp.us_ts(us bigint) RETURNS timestamptz LANGUAGE sql IMMUTABLE
AS $$ SELECT timestamptz 'epoch' + us * interval '1 microsecond' $$"""
"""Microseconds since the epoch as timestamptz, exactly (no float on the way)."""

_RUNS_TABLE = """
CREATE TEMP TABLE bench_runs (
    idx integer PRIMARY KEY, line_idx integer, gateway text, site text, line text,
    run_number text, batch_code text, day integer, shift integer, start_us bigint,
    end_us bigint, first_pack bigint, packs integer
)"""

_PACKS = """
INSERT INTO packs (gateway, site, seq, ts, ts_us, received_at, line, device, run_number,
    pack_counter, net_g, gross_g, tare_g, accepted, label_seq, flags, nominal_g, program,
    catch_weight, plu, product_source, time_uncertain, provisional_run, values_uncertain,
    product_unknown)
SELECT r.gateway, r.site, p.seq, pg_temp.us_ts(p.ts_us), p.ts_us,
    pg_temp.us_ts(p.ts_us) + interval '5 seconds', r.line, 'cw-' || r.line, r.run_number,
    p.k + 1, p.net_g, p.net_g + 12.0, 12.0, p.net_g >= p.nominal - 1.4, p.seq + 1, 0,
    p.nominal, 'P' || p.nominal, false,
    -- One pack in every `late` waits for its label to tell its product (a pack_product event).
    CASE WHEN p.late THEN NULL ELSE p.plu END, CASE WHEN p.late THEN NULL ELSE 'device' END,
    false, false, false, false
FROM bench_runs r
JOIN LATERAL (
    SELECT g.i - r.first_pack AS k, %(base)s + 2 * g.i AS seq, g.i %% %(late)s = 0 AS late,
        r.start_us + (g.i - r.first_pack) * ((r.end_us - r.start_us) / r.packs) AS ts_us,
        CASE WHEN g.i - r.first_pack < r.packs / 2 THEN 250.0 ELSE 500.0 END AS nominal,
        r.line || CASE WHEN g.i - r.first_pack < r.packs / 2 THEN 'A' ELSE 'B' END
            || r.shift AS plu,
        CASE WHEN g.i - r.first_pack < r.packs / 2 THEN 250.0 ELSE 500.0 END
            + ((g.i * 7919) %% 1000) / 100.0 - 1.5 AS net_g
    FROM generate_series(greatest(r.first_pack, %(lo)s),
                         least(r.first_pack + r.packs, %(hi)s) - 1) AS g(i)
) p ON true
WHERE r.packs > 0 AND r.first_pack < %(hi)s AND r.first_pack + r.packs > %(lo)s
"""

_LABELS = """
INSERT INTO label_scans (gateway, site, seq, ts, ts_us, received_at, line, device, run_number,
    raw, gtin, batch, use_by, use_by_text, pack_date, pack_date_text, serial, net_weight_g,
    parsed, flags, time_uncertain, provisional_run)
SELECT r.gateway, r.site, p.seq, pg_temp.us_ts(p.ts_us), p.ts_us,
    pg_temp.us_ts(p.ts_us) + interval '5 seconds', r.line, 'ls-' || r.line, r.run_number,
    '(01)' || p.gtin || '(10)' || r.batch_code || '(17)' || to_char(p.use_by, 'YYMMDD')
        || '(21)' || p.serial,
    p.gtin, r.batch_code, p.use_by, to_char(p.use_by, 'YYYY-MM-DD'), p.pack_date,
    to_char(p.pack_date, 'YYYY-MM-DD'), p.serial, p.nominal,
    jsonb_build_object('01', p.gtin, '10', r.batch_code, '21', p.serial), 0, false, false
FROM bench_runs r
JOIN LATERAL (
    SELECT %(base)s + 2 * g.i + 1 AS seq,
        r.start_us + (g.i - r.first_pack) * ((r.end_us - r.start_us) / r.packs) + 500000
            AS ts_us,
        CASE WHEN g.i - r.first_pack < r.packs / 2 THEN '0950600013' ELSE '0950600014' END
            || r.line_idx || r.shift AS gtin,
        CASE WHEN g.i - r.first_pack < r.packs / 2 THEN 250.0 ELSE 500.0 END AS nominal,
        'SN' || lpad(g.i::text, 10, '0') AS serial,
        (to_timestamp(r.start_us / 1e6) AT TIME ZONE 'UTC')::date AS pack_date,
        (to_timestamp(r.start_us / 1e6) AT TIME ZONE 'UTC')::date + 12 AS use_by
    FROM generate_series(greatest(r.first_pack, %(lo)s),
                         least(r.first_pack + r.packs, %(hi)s) - 1) AS g(i)
) p ON true
WHERE r.packs > 0 AND r.first_pack < %(hi)s AND r.first_pack + r.packs > %(lo)s
"""

_DEVICE_EVENTS = """
INSERT INTO device_events (gateway, site, seq, ts, ts_us, received_at, device, line, kind,
    detail, flags)
SELECT r.gateway, r.site, e.seq, pg_temp.us_ts(e.ts_us), e.ts_us,
    pg_temp.us_ts(e.ts_us) + interval '5 seconds', 'cw-' || r.line, r.line, e.kind, e.detail, 0
FROM bench_runs r
CROSS JOIN LATERAL (
    -- The checkweigher's link quality, every 10 minutes of the shift.
    SELECT %(base)s + 4 * (r.idx * 64 + q.n) AS seq,
        r.start_us + q.n * 600000000 AS ts_us, 'quality_change' AS kind,
        jsonb_build_object('quality', CASE WHEN q.n %% 2 = 0 THEN 'good' ELSE 'uncertain' END)
            AS detail
    FROM generate_series(0, %(shift)s / 600000000 - 1) AS q(n)
    UNION ALL
    -- One missed pack per run, half way through.
    SELECT %(base)s + 4 * (r.idx * 64) + 1, r.start_us + (r.end_us - r.start_us) / 2,
        'missed_packs', jsonb_build_object('missed', 1, 'previous', r.packs / 2,
        'counter', r.packs / 2 + 2)
    UNION ALL
    -- The late product of each waiting pack, told by its label a second after it.
    SELECT %(base)s + 256 * %(runs)s + 10 + g.i,
        r.start_us + (g.i - r.first_pack) * ((r.end_us - r.start_us) / r.packs) + 1000000,
        'pack_product', jsonb_build_object('run_number', r.run_number,
        'pack_counter', g.i - r.first_pack + 1, 'label_seq', %(pack_base)s + 2 * g.i + 1,
        'pack_ts_us', r.start_us + (g.i - r.first_pack) * ((r.end_us - r.start_us) / r.packs),
        'plu', r.line || CASE WHEN g.i - r.first_pack < r.packs / 2 THEN 'A' ELSE 'B' END
            || r.shift, 'source', 'label', 'reason', NULL)
    FROM generate_series(r.first_pack, r.first_pack + r.packs - 1) AS g(i)
    WHERE g.i %% %(late)s = 0
) e
WHERE r.packs > 0 AND r.idx >= %(lo)s AND r.idx < %(hi)s
"""

_TEMPERATURES = """
INSERT INTO temperatures (gateway, site, seq, ts, ts_us, received_at, line, device, probe,
    location, run_number, celsius, flags, time_uncertain, provisional_run)
SELECT l.gateway, l.site, %(base)s + g.j * 8 + l.line_idx, pg_temp.us_ts(t.ts_us),
    t.ts_us, pg_temp.us_ts(t.ts_us) + interval '5 seconds', l.line, 'tp-' || l.line,
    'p1', 'chiller', r.run_number, 2.0 + ((g.j * 31 + l.line_idx * 7) %% 40) / 10.0, 0,
    false, false
FROM (SELECT DISTINCT line_idx, gateway, site, line FROM bench_runs) l
CROSS JOIN generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS g(j)
CROSS JOIN LATERAL (SELECT %(start)s + g.j * %(every)s AS ts_us) t
LEFT JOIN bench_runs r ON r.idx = ((t.ts_us - %(start)s) / %(shift)s) * %(lines)s + l.line_idx
    AND t.ts_us <= r.end_us
"""

_EMARK = """
INSERT INTO emark_batches (gateway, site, seq, ts, ts_us, received_at, line, run_number, plu,
    qn_g, tne_g, t1_g, t2_g, start_us, end_us, start_at, end_at, n, mean_g, sd_g, below_t1,
    below_t2, verdict, reasons, flags, rejected, uncertain)
SELECT r.gateway, r.site, %(base)s + 2 * r.idx + h.half, pg_temp.us_ts(h.end_us),
    h.end_us, pg_temp.us_ts(h.end_us), r.line, r.run_number,
    r.line || h.suffix || r.shift, h.qn, h.qn * 0.03, h.qn * 0.97, h.qn * 0.94,
    h.start_us, h.end_us, pg_temp.us_ts(h.start_us), pg_temp.us_ts(h.end_us),
    h.n, h.qn + 3.5, 2.9, 0, 0, 'pass', '[]'::jsonb, 0, 0, 0
FROM bench_runs r
CROSS JOIN LATERAL (VALUES
    (0, 'A', 250.0, r.start_us, r.start_us + (r.end_us - r.start_us) / 2, r.packs / 2),
    (1, 'B', 500.0, r.start_us + (r.end_us - r.start_us) / 2, r.end_us, r.packs - r.packs / 2)
) AS h(half, suffix, qn, start_us, end_us, n)
WHERE r.packs > 1
"""

_ALERTS = """
INSERT INTO alerts (gateway, site, seq, ts, ts_us, received_at, line, alert_id, rule, subject,
    severity, state, message, detail, flags)
SELECT r.gateway, r.site, %(base)s + 2 * r.idx + s.n, pg_temp.us_ts(s.ts_us), s.ts_us,
    pg_temp.us_ts(s.ts_us), r.line,
    'haccp:tp-' || r.line || '/p1:' || (r.start_us + 3600000000), 'haccp', 'tp-' || r.line || '/p1',
    'major', s.state, 'chiller above 5.0 °C', '{}'::jsonb, 0
FROM bench_runs r
CROSS JOIN LATERAL (VALUES
    (0, 'active-unacknowledged', r.start_us + 3600000000),
    (1, 'cleared', r.start_us + 3600000000 + 600000000)
) AS s(n, state, ts_us)
WHERE r.shift = 0 AND r.packs > 0
"""


_ALERTS_CURRENT = """
INSERT INTO alerts_current (gateway, alert_id, seq, site, rule, subject, line, severity, state,
    message, ts, ts_us, raised_at, active)
-- Each alert's newest transition, as the ingest keeps it (sync/ingest/facts_sql.py).
SELECT DISTINCT ON (a.gateway, a.alert_id) a.gateway, a.alert_id, a.seq, a.site, a.rule,
    a.subject, a.line, a.severity, a.state, a.message, a.ts, a.ts_us,
    (SELECT r.ts FROM alerts r WHERE r.gateway = a.gateway AND r.alert_id = a.alert_id
        AND r.state = 'raised' ORDER BY r.seq DESC LIMIT 1),
    NOT EXISTS (SELECT 1 FROM alerts c WHERE c.gateway = a.gateway
        AND c.alert_id = a.alert_id AND c.state IN ('cleared', 'resolved'))
FROM alerts a WHERE %(lo)s = %(hi)s
ORDER BY a.gateway, a.alert_id, a.seq DESC
"""


def _connect(dsn: str) -> psycopg.Connection[tuple[Any, ...]]:
    conn = psycopg.connect(dsn, autocommit=True)
    # A load, not an ack: nothing is lost if the machine dies mid-way (it is reloaded).
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET maintenance_work_mem = '512MB'")
    return conn


def _runs_table(conn: psycopg.Connection[tuple[Any, ...]], plan: Plan) -> None:
    conn.execute(_US_TS)
    conn.execute(_RUNS_TABLE)
    with conn.cursor().copy("COPY bench_runs FROM STDIN") as copy:
        for r in plan.runs:
            copy.write_row(
                (r.index, r.line.index, r.line.gateway, r.line.site, r.line.line, r.run_number,
                 r.batch_code, r.day, r.shift, r.start_us, r.end_us, r.first_pack, r.packs)
            )  # fmt: skip
    conn.execute("ANALYZE bench_runs")


def _chunks(total: int, size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + size, total)) for lo in range(0, total, size)]


def _bulk(dsn: str, plan: Plan, statement: str, base: int, jobs: Sequence[tuple[int, int]],
          extra: dict[str, int], log: Log, what: str) -> None:  # fmt: skip
    with _connect(dsn) as conn:
        _runs_table(conn, plan)
        for lo, hi in jobs:
            began = time.perf_counter()
            conn.execute(statement, {"base": base, "lo": lo, "hi": hi, **extra})
            log(f"  {what} {lo:,}..{hi:,} in {time.perf_counter() - began:.1f} s")


def load(dsn: str, plan: Plan, log: Log) -> dict[str, float]:
    """Everything above into the (empty) database at ``dsn``; seconds per step."""
    steps: dict[str, float] = {}
    began = time.perf_counter()
    versions = asyncio.run(_commit_runs(dsn, plan))
    steps["runs_via_commit_path_s"] = time.perf_counter() - began
    log(f"{versions:,} run versions committed in {steps['runs_via_commit_path_s']:.1f} s")
    with _connect(dsn) as conn:
        partitions = Partitions(conn.execute)
        with conn.transaction():
            partitions.load()
            partitions.ensure(
                (table, month)
                for table in ("packs", "label_scans", "temperatures", "device_events", "alerts")
                for month in plan.months
            )
    # Sequence numbers per gateway: versions 1..V, then packs and labels interleaved, then
    # temperatures, ℮ batches and alerts (each fact's seq is unique within its gateway).
    pack_base = len(plan.runs) * 2 + 10
    temp_base = pack_base + 2 * plan.packs + 10
    other_base = temp_base + 8 * plan.temperatures + 10
    chunks = _chunks(plan.packs, CHUNK_PACKS)
    temps = plan.temperatures // len(plan.lines)
    temp_extra = {
        "start": plan.start_us,
        "every": TEMPERATURE_EVERY_US,
        "shift": plan.shift_us,
        "lines": len(plan.lines),
    }
    late = {"late": plan.late_every}
    began = time.perf_counter()
    # Two sessions at once: one per core of the benchmark machine.
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = [
            pool.submit(_bulk, dsn, plan, _PACKS, pack_base, chunks, late, log, "packs"),
            pool.submit(_bulk, dsn, plan, _LABELS, pack_base, chunks, {}, log, "label scans"),
        ]
        for future in done:
            future.result()
    steps["packs_and_labels_s"] = time.perf_counter() - began
    began = time.perf_counter()
    _bulk(dsn, plan, _TEMPERATURES, temp_base, _chunks(temps, 50_000), temp_extra, log,
          "temperature slots")  # fmt: skip
    _bulk(dsn, plan, _EMARK, other_base, [(0, 0)], {}, log, "℮ batches")
    events = {
        "pack_base": pack_base,
        "shift": plan.shift_us,
        "late": plan.late_every,
        "runs": len(plan.runs),
    }
    _bulk(dsn, plan, _DEVICE_EVENTS, other_base + 8 * len(plan.runs) + 10,
          _chunks(len(plan.runs), 1000), events, log, "runs' device events")  # fmt: skip
    _bulk(dsn, plan, _ALERTS, other_base + 2 * len(plan.runs) + 10, [(0, 0)], {}, log, "alerts")
    _bulk(dsn, plan, _ALERTS_CURRENT, 0, [(0, 0)], {}, log, "alerts' current state")
    steps["temperatures_emark_events_alerts_s"] = time.perf_counter() - began
    began = time.perf_counter()
    with _connect(dsn) as conn:
        conn.execute("VACUUM (ANALYZE)")
        steps["vacuum_analyze_s"] = time.perf_counter() - began
        log(f"VACUUM (ANALYZE) in {steps['vacuum_analyze_s']:.1f} s")
        # The load's dirty pages written out now, so the timings do not share the disk
        # and the cores with the checkpoint that would otherwise follow the load.
        began = time.perf_counter()
        conn.execute("CHECKPOINT")
    steps["checkpoint_s"] = time.perf_counter() - began
    return steps


TABLES = (
    "packs",
    "label_scans",
    "temperatures",
    "device_events",
    "emark_batches",
    "alerts",
    "alerts_current",
    "runs",
    "run_products",
    "run_batch_codes",
    "run_versions",
    "records",
)


def table_sizes(dsn: str) -> dict[str, dict[str, int]]:
    """Rows and bytes (with indexes) of each fact table, its partitions included."""
    out: dict[str, dict[str, int]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in TABLES:
            rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            count = int(rows.fetchone()[0])  # type: ignore[index]
            size = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "WHERE c.oid = %s::regclass OR c.oid IN "
                "(SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)",
                (table, table),
            ).fetchone()
            out[table] = {"rows": count, "bytes": int(size[0]) if size else 0}
    return out


def plan_comment(plan: Plan) -> str:
    return json.dumps(
        {
            "packs": plan.packs,
            "days": plan.days,
            "runs_per_day": plan.runs_per_day,
            "late_every": plan.late_every,
        },
        sort_keys=True,
    )
