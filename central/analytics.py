"""The analytics the central team reads: compliance per run, temperature breaches, giveaway
by run / line-hour / line-shift / product-day, active alerts, shelf life, the fleet, a run's
pack weights and temperatures (docs/warehouse-analytics.md).

Each reads the typed facts and current-state tables through their indexes, or the views of
revisions ``0003_analytics`` and ``0004_pack_products`` (a pack's product as the gateway's
report decides it); the judgements are the rules' own pure functions (rules/).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from central import db as conv
from central.db import Db
from central.rows import (
    AlertRow,
    BreachInterval,
    BreachRow,
    FleetRow,
    GiveawayRow,
    ProductWeights,
    ShelfLifeRow,
    TemperaturePoint,
    TemperatureSeries,
    WeightSample,
)
from rules import ids
from rules.alarm_rates import alarm_load, raises_from_rows
from rules.emark import limits
from rules.shelf_life import FREEZE_DOWN_DAY, day_of_life, expected_use_by, freeze_down_due
from sync.ingest.migrations.analytics_ddl import GIVEAWAY_VIEWS


def _filters(
    db: Db, *, table: str = "", site: str | None, line: str | None, since: datetime | None,
    until: datetime | None, time: str = "ts",
) -> tuple[str, list[Any]]:  # fmt: skip
    prefix = f"{table}." if table else ""
    clauses: list[str] = []
    params: list[Any] = []
    if site is not None:
        clauses.append(f"{prefix}site = ?")
        params.append(site)
    if line is not None:
        clauses.append(f"{prefix}line = ?")
        params.append(line)
    if since is not None:
        clauses.append(f"{prefix}{time} >= ?")
        params.append(db.ts_param(since))
    if until is not None:
        clauses.append(f"{prefix}{time} < ?")
        params.append(db.ts_param(until))
    return (" AND ".join(clauses) or "1 = 1"), params


def temperature_breaches(
    db: Db, *, site: str | None, line: str | None, since: datetime | None, until: datetime | None
) -> list[BreachRow]:
    haccp = sorted(ids.HACCP_RULES)
    where, params = _filters(db, table="a", site=site, line=line, since=since, until=until)
    marks = ", ".join("?" * len(haccp))
    raised = db.rows(
        "SELECT a.gateway, a.site, a.line, a.alert_id, a.rule, a.subject, a.severity, a.ts, "  # noqa: S608
        f"a.ts_us, a.message, a.seq FROM alerts a WHERE a.state = 'raised' AND a.rule IN ({marks}) "
        f"AND {where} ORDER BY a.ts DESC, a.gateway, a.seq DESC",
        [*haccp, *params],
    )
    found = []
    for gw, st, ln, alert_id, rule, subject, severity, ts, ts_us, message, seq in raised:
        cleared = db.rows(
            "SELECT ts, ts_us FROM alerts WHERE gateway = ? AND alert_id = ? AND seq > ? "
            "AND state = 'cleared' ORDER BY seq LIMIT 1",
            (gw, alert_id, seq),
        )
        cleared_at = conv.ts(cleared[0][0]) if cleared else None
        found.append(
            BreachRow(
                gateway=gw,
                site=st,
                line=ln,
                alert_id=alert_id,
                rule=rule,
                subject=subject,
                severity=severity,
                raised_at=conv.ts(ts),
                cleared_at=cleared_at,
                duration_s=(int(cleared[0][1]) - int(ts_us)) / 1e6 if cleared else None,
                message=message,
            )
        )
    return found


def giveaway(
    db: Db,
    *,
    by: str,
    site: str | None,
    line: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[GiveawayRow]:
    if by not in GIVEAWAY_VIEWS:
        raise ValueError(f"giveaway by {by!r}: one of {', '.join(GIVEAWAY_VIEWS)}")
    view, period = GIVEAWAY_VIEWS[by]
    where, params = _filters(
        db, site=site, line=line if by != "product_day" else None, since=since, until=until,
        time=period or "first_ts",
    )  # fmt: skip
    line_col = "line" if by != "product_day" else "NULL"
    run_col = "run_number" if by == "run" else "NULL"
    plu_col = "plu" if by in ("run", "product_day") else "NULL"
    period_col = period or "first_ts"
    order = ", ".join(c for c in (period_col, "gateway", line_col, plu_col) if c != "NULL")
    rows = db.rows(
        f"SELECT gateway, site, {line_col}, {run_col}, {plu_col}, {period_col}, packs, "  # noqa: S608 (fixed names)
        f"net_g_sum, qn_g_sum FROM {view} WHERE {where} "
        f"ORDER BY {order}",
        params,
    )
    return [_giveaway_row(by, r) for r in rows]


def _giveaway_row(by: str, r: tuple[Any, ...]) -> GiveawayRow:
    packs, net, qn = int(r[6]), float(r[7] or 0.0), float(r[8] or 0.0)
    return GiveawayRow(
        by=by,
        gateway=r[0],
        site=r[1],
        line=r[2],
        run_number=r[3],
        plu=r[4],
        period_start=conv.ts_or_none(r[5]),
        packs=packs,
        kg=net / 1000,
        mean_g=net / packs if packs else None,
        # As the report: mean - Qn and (mean - Qn) / Qn (the mean Qn of a mixed group).
        giveaway_g=net / packs - qn / packs if packs else None,
        giveaway_pct=(net / packs - qn / packs) / (qn / packs) * 100 if qn and packs else None,
        giveaway_kg=(net - qn) / 1000 if packs else None,
    )


def active_alerts(db: Db, *, site: str | None, line: str | None) -> list[AlertRow]:
    where, params = _filters(db, site=site, line=line, since=None, until=None)
    return [
        AlertRow(
            gateway=r[0],
            site=r[1],
            line=r[2],
            alert_id=r[3],
            rule=r[4],
            subject=r[5],
            severity=r[6],
            state=r[7],
            message=r[8],
            raised_at=conv.ts_or_none(r[9]),
            ts=conv.ts(r[10]),
        )
        for r in db.rows(
            "SELECT gateway, site, line, alert_id, rule, subject, severity, state, message, "  # noqa: S608
            f"raised_at, ts FROM alerts_current WHERE active AND {where} "
            "ORDER BY ts DESC, gateway, alert_id",
            params,
        )
    ]


def shelf_life(db: Db, *, as_of: date, within_days: int) -> list[ShelfLifeRow]:
    """Runs packed in the 30 days to ``as_of`` nearing their use-by (``within_days``),
    past it, due to be frozen down, or reaching their freeze-down day within
    ``within_days``."""
    oldest = as_of - timedelta(days=30)
    rows = db.rows(
        "SELECT gateway, site, line, run_number, pack_date, shelf_life_adjust FROM runs "
        "WHERE pack_date IS NOT NULL AND pack_date >= ? AND pack_date <= ?",
        (oldest if db.postgres else oldest.isoformat(),
         as_of if db.postgres else as_of.isoformat()),
    )  # fmt: skip
    found = []
    for gw, st, ln, run_number, packed, adjust in rows:
        pack_date = conv.day(packed)
        if pack_date is None:
            continue
        try:
            use_by = expected_use_by(pack_date, int(adjust or 0))
        except ValueError:
            continue  # an adjustment the ERP model refuses (0..3): no use-by to judge
        days_left = (use_by - as_of).days
        due = freeze_down_due(pack_date, as_of)
        freeze_on = pack_date + timedelta(days=FREEZE_DOWN_DAY - 1)
        # As rules.shelf_life.nearing_date, and also what reaches its freeze-down day soon
        # (day 12 of life with a day's notice: the product to plan the freezer for).
        if days_left <= within_days or due or (freeze_on - as_of).days <= within_days:
            found.append(
                ShelfLifeRow(
                    gateway=gw,
                    site=st,
                    line=ln,
                    run_number=run_number,
                    pack_date=pack_date,
                    use_by=use_by,
                    day=day_of_life(pack_date, as_of),
                    days_left=days_left,
                    expired=days_left < 0,
                    freeze_down_due=due,
                    freeze_down_on=freeze_on,
                )
            )
    found.sort(key=lambda r: (r.use_by, r.gateway, r.run_number))
    return found


def fleet(db: Db, *, now: datetime) -> list[FleetRow]:
    names = dict(db.rows("SELECT site, name FROM sites"))
    start = now - timedelta(days=1)
    found = []
    for gw, st, last_seen, last_seq, records, backlog, backlog_at in db.rows(
        "SELECT gateway, site, last_seen, last_seq, records, backlog, backlog_at FROM gateways"
        " ORDER BY site, gateway"
    ):
        lag = db.rows(
            "SELECT ts, received_at FROM packs WHERE gateway = ? AND ts <= ? "
            "ORDER BY ts DESC LIMIT 1",
            (gw, db.ts_param(now)),
        )
        (active,) = db.rows(
            "SELECT count(*) FROM alerts_current WHERE gateway = ? AND active", (gw,)
        )[0]
        raised = db.rows(
            "SELECT ts_us, line, rule, state FROM alerts WHERE gateway = ? AND state = 'raised' "
            "AND ts >= ? AND ts < ?",
            (gw, db.ts_param(start), db.ts_param(now)),
        )
        stand = db.rows(
            "SELECT ts_us, line FROM alerts_current WHERE gateway = ? AND active", (gw,)
        )
        load = alarm_load(
            raises_from_rows(raised),
            start_us=conv.to_us(start),
            end_us=conv.to_us(now),
            active=[(int(t), ln) for t, ln in stand],
        ).total
        seen = conv.ts(last_seen)
        found.append(
            FleetRow(
                gateway=gw,
                site=st,
                site_name=names.get(st),
                last_contact=seen,
                sync_lag_s=(
                    (conv.ts(lag[0][1]) - conv.ts(lag[0][0])).total_seconds() if lag else None
                ),
                since_contact_s=(now - seen).total_seconds(),
                last_seq=int(last_seq),
                records=int(records),
                backlog=None if backlog is None else int(backlog),
                backlog_at=None if backlog_at is None else conv.ts(backlog_at),
                active_alerts=int(active),
                raised_24h=load.raised,
                per_10_min=load.per_10_min,
                peak_10_min=load.peak_10_min,
                flood_pct=load.flood_pct,
                stale=load.stale,
            )
        )
    return found


def pack_weights(db: Db, gateway: str, run_number: str) -> WeightSample:
    products = db.rows(
        "SELECT plu, description, catch_weight, nominal_g FROM run_products "
        "WHERE gateway = ? AND run_number = ? ORDER BY plu",
        (gateway, run_number),
    )
    weights: dict[str, list[float]] = defaultdict(list)
    for plu, net_g in db.rows(
        # pack_products: the product as the gateway's report decides it, late labels included.
        "SELECT plu, net_g FROM pack_products WHERE gateway = ? AND run_number = ? "
        "AND plu IS NOT NULL AND (accepted IS NULL OR accepted = ?) AND values_uncertain = ? "
        "AND product_unknown = ? ORDER BY ts, seq",
        (gateway, run_number, *_booleans(db, True, False, False)),
    ):
        weights[str(plu)].append(float(net_g))
    out = []
    for plu, description, catch, nominal in products:
        qn = conv.decimal(nominal)
        emark = limits(qn) if qn is not None and not catch else None
        out.append(
            ProductWeights(
                plu=plu,
                description=description,
                catch_weight=bool(catch) or qn is None,
                nominal_g=qn,
                t1_g=Decimal(emark.t1) if emark else None,
                t2_g=Decimal(emark.t2) if emark else None,
                net_g=tuple(weights.get(str(plu), ())),
            )
        )
    return WeightSample(gateway=gateway, run_number=run_number, products=tuple(out))


def _booleans(db: Db, *values: bool) -> tuple[Any, ...]:
    return values if db.postgres else tuple(int(v) for v in values)


def temperature_series(db: Db, gateway: str, run_number: str) -> list[TemperatureSeries]:
    points: dict[tuple[str, str, str, str], list[TemperaturePoint]] = defaultdict(list)
    for device, probe, location, ln, ts, celsius in db.rows(
        "SELECT device, probe, location, line, ts, celsius FROM temperatures "
        "WHERE gateway = ? AND run_number = ? ORDER BY ts, seq",
        (gateway, run_number),
    ):
        points[(device, probe, location, ln)].append(TemperaturePoint(conv.ts(ts), float(celsius)))
    series = []
    for (device, probe, location, ln), readings in sorted(points.items()):
        span = (readings[0].ts, readings[-1].ts)
        breaches = _probe_breaches(db, gateway, ln, f"{device}/{probe}", span)
        series.append(
            TemperatureSeries(
                probe=probe,
                location=location,
                line=ln,
                points=tuple(readings),
                breaches=breaches,
                lower_limit_c=_limit(breaches, "lower"),
                upper_limit_c=_limit(breaches, "upper"),
            )
        )
    return series


def _limit(breaches: tuple[BreachInterval, ...], side: str) -> float | None:
    """The limit of ``side`` the latest breach of it records."""
    limits = [b.limit_c for b in breaches if b.side == side and b.limit_c is not None]
    return limits[-1] if limits else None


def breach_side_and_limit(detail: Any) -> tuple[str | None, float | None]:
    """The side (``upper``/``lower``) and limit (°C) a HACCP alert's detail records
    (rules/haccp.py); the detail is the gateway's JSON, so anything else reads as unknown."""
    try:
        found = conv.parsed(detail) if detail is not None else None
    except ValueError:
        return None, None
    if not isinstance(found, dict) or found.get("side") not in ("upper", "lower"):
        return None, None
    side, limit = str(found["side"]), found.get("limit_c")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and math.isfinite(limit):
        return side, float(limit)
    return side, None


def _probe_breaches(
    db: Db, gateway: str, line: str, subject: str, span: tuple[datetime, datetime]
) -> tuple[BreachInterval, ...]:
    """The HACCP breaches of one probe (subject ``device/probe``, rules/haccp.py) that
    overlap ``span``."""
    haccp = sorted(ids.HACCP_RULES)
    marks = ", ".join("?" * len(haccp))
    rows = db.rows(
        "SELECT alert_id, rule, severity, state, ts, detail FROM alerts WHERE gateway = ? "  # noqa: S608
        f"AND line = ? AND ts <= ? AND subject = ? AND rule IN ({marks}) ORDER BY seq",
        (gateway, line, db.ts_param(span[1]), subject, *haccp),
    )
    opened: dict[str, BreachInterval] = {}
    found = []
    for alert_id, rule, severity, state, ts, detail in rows:
        if state == "raised" and alert_id not in opened:
            side, limit = breach_side_and_limit(detail)
            opened[alert_id] = BreachInterval(rule, severity, conv.ts(ts), None, side, limit)
        elif state == "cleared" and alert_id in opened:
            began = opened.pop(alert_id)
            if conv.ts(ts) >= span[0]:
                found.append(dataclasses.replace(began, end=conv.ts(ts)))
    found += opened.values()
    return tuple(sorted(found, key=lambda b: b.start))
