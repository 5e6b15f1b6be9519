"""Sites, lines and runs: the warehouse's dimensions and current-state tables as rows."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from central import db as conv
from central.db import Db
from central.rows import LineRow, RunRow, SiteRow

RUN_COLUMNS = (
    "r.gateway, r.site, r.run_number, r.line, r.status, r.source, r.provisional, "
    "r.description, r.species, r.product_type, r.pack_date, r.planned_start, r.planned_end, "
    "r.actual_start, r.actual_end"
)


def sites(db: Db) -> list[SiteRow]:
    gateways = dict(db.rows("SELECT site, count(*) FROM gateways GROUP BY site"))
    lines = dict(db.rows("SELECT site, count(*) FROM lines GROUP BY site"))
    return [
        SiteRow(
            site=site,
            name=name,
            first_seen=conv.ts(first),
            last_seen=conv.ts(last),
            gateways=int(gateways.get(site, 0)),
            lines=int(lines.get(site, 0)),
        )
        for site, name, first, last in db.rows(
            "SELECT site, name, first_seen, last_seen FROM sites ORDER BY site"
        )
    ]


def lines(db: Db, site: str | None) -> list[LineRow]:
    where, params = ("WHERE site = ?", (site,)) if site is not None else ("", ())
    return [
        LineRow(
            gateway=g,
            line=line,
            site=s,
            name=name,
            first_seen=conv.ts(first),
            last_seen=conv.ts(last),
        )
        for g, line, s, name, first, last in db.rows(
            "SELECT gateway, line, site, name, first_seen, last_seen FROM lines "  # noqa: S608
            f"{where} ORDER BY gateway, line",
            params,
        )
    ]


def batch_codes(db: Db, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, ...]]:
    """The batch codes of each (gateway, run_number)."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for gateway, run_number in keys:
        for (code,) in db.rows(
            "SELECT batch_code FROM run_batch_codes WHERE gateway = ? AND run_number = ? "
            "ORDER BY batch_code",
            (gateway, run_number),
        ):
            found[(gateway, run_number)].append(str(code))
    return {k: tuple(v) for k, v in found.items()}


def run_rows(db: Db, found: list[tuple[Any, ...]]) -> list[RunRow]:
    """RunRows from rows selected as :data:`RUN_COLUMNS`."""
    codes = batch_codes(db, [(r[0], r[2]) for r in found])
    return [
        RunRow(
            gateway=r[0],
            site=r[1],
            run_number=r[2],
            line=r[3],
            status=r[4],
            source=r[5],
            provisional=bool(r[6]),
            description=r[7],
            species=r[8],
            product_type=r[9],
            pack_date=conv.day(r[10]),
            planned_start=conv.ts_or_none(r[11]),
            planned_end=conv.ts_or_none(r[12]),
            actual_start=conv.ts_or_none(r[13]),
            actual_end=conv.ts_or_none(r[14]),
            batch_codes=codes.get((r[0], r[2]), ()),
        )
        for r in found
    ]


def run_row(db: Db, gateway: str, run_number: str) -> RunRow | None:
    found = db.rows(
        f"SELECT {RUN_COLUMNS} FROM runs r WHERE r.gateway = ? AND r.run_number = ?",  # noqa: S608
        (gateway, run_number),
    )
    rows = run_rows(db, found)
    return rows[0] if rows else None


def runs(
    db: Db,
    *,
    site: str | None,
    gateway: str | None,
    line: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[RunRow]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("site", site), ("gateway", gateway), ("line", line)):
        if value is not None:
            clauses.append(f"r.{column} = ?")
            params.append(value)
    if status is not None:
        clauses.append("r.status = ?")
        params.append(status)
    start = "coalesce(r.actual_start, r.planned_start)"
    if since is not None:
        clauses.append(f"{start} >= ?")
        params.append(db.ts_param(since))
    if until is not None:
        clauses.append(f"{start} < ?")
        params.append(db.ts_param(until))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(max(0, min(limit, 10_000)))
    found = db.rows(
        f"SELECT {RUN_COLUMNS} FROM runs r {where} "  # noqa: S608 (fixed clauses, values bound)
        f"ORDER BY {start} DESC, r.gateway, r.run_number LIMIT ?",
        params,
    )
    return run_rows(db, found)
