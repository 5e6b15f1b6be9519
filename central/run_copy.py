"""The rows of one run, copied from the warehouse's typed tables into an in-memory database
with the gateway store's schema (gateway/store/schema.py), so that the gateway's own report
code (gateway/report.py, gateway/report_output.py) runs over them unchanged.

Why a copy and not a port of the report's SQL: the report is what the operator signs, and
one implementation cannot drift from another. Values are copied bit for bit: weights are
DOUBLE PRECISION in the warehouse (the edge's REAL), the ℮ figures the edge keeps as decimal
strings come back as the same strings, and rows keep their sequence numbers, so the report
sums them in the same order and gets the same doubles.

What is copied (every query uses an index of the typed facts; docs/warehouse-analytics.md):

* the run's row (``runs``, the newest version's payload);
* its packs (``packs`` by gateway and run number);
* the ``pack_product`` events naming it, the ``missed_packs`` and ``records_shed`` events of
  its line while it ran, and the refused inputs of its line while it ran;
* its ℮ batches;
* the alerts of its line while it ran, those of its line or of no line whose subject names
  the run, and the alerts of its line still active at its end (the report's alarm load
  folds them: active and stale alarms), each with every one of its transitions. Every
  rule names a run's subject with the run's own line first (``{line}/{run}...``,
  rules/label_subjects.py, rules/compliance.py), so an alert of
  another line naming the run is not looked for: the one place the report over a store
  could read a row the copy leaves out, and the gateway records none such.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from central import db as conv
from central.db import Db
from central.errors import Ambiguous, NotFound
from gateway.core.runs import run_from_json
from gateway.store.schema import MIGRATIONS

OPEN_END_US = 2**62
"""The report's end of a run that has not ended (gateway/report.py)."""


def store_schema() -> sqlite3.Connection:
    """An empty in-memory database with the gateway store's schema."""
    mem = sqlite3.connect(":memory:")
    for script in MIGRATIONS:
        mem.executescript(script)
    return mem


def resolve_gateway(db: Db, run_number: str, gateway: str | None) -> str:
    """The gateway that recorded ``run_number``; NotFound or Ambiguous otherwise."""
    if gateway is not None:
        found = db.rows(
            "SELECT gateway FROM runs WHERE gateway = ? AND run_number = ?", (gateway, run_number)
        )
    else:
        found = db.rows("SELECT gateway FROM runs WHERE run_number = ?", (run_number,))
    gateways = tuple(sorted(str(g) for (g,) in found))
    if not gateways:
        where = f" on gateway {gateway!r}" if gateway else ""
        raise NotFound(f"run {run_number!r} is not in the warehouse{where}")
    if len(gateways) > 1:
        raise Ambiguous(
            f"run {run_number!r} was recorded by {len(gateways)} gateways"
            f" ({', '.join(gateways)}): name one",
            gateways,
        )
    return gateways[0]


@dataclass(frozen=True, slots=True)
class _Run:
    gateway: str
    run_number: str
    line: str
    start: int
    end: int


def copy_run(db: Db, gateway: str, run_number: str) -> sqlite3.Connection:
    """The run's rows in a new in-memory store database (see the module's docstring)."""
    mem = store_schema()
    try:
        run = _copy_run_row(db, mem, gateway, run_number)
        first_pack = _copy_packs(db, mem, gateway, run_number)
        _copy_events(db, mem, run, first_pack)
        _copy_rejected(db, mem, run)
        _copy_emark(db, mem, gateway, run_number)
        _copy_alerts(db, mem, run)
        mem.commit()
    except BaseException:
        mem.close()
        raise
    return mem


def _copy_run_row(db: Db, mem: sqlite3.Connection, gateway: str, run_number: str) -> _Run:
    found = db.rows(
        "SELECT seq, line, status, source, provisional, payload, updated FROM runs "
        "WHERE gateway = ? AND run_number = ?",
        (gateway, run_number),
    )
    if not found:
        raise NotFound(f"run {run_number!r} is not in the warehouse on gateway {gateway!r}")
    seq, line, status, source, provisional, payload, updated = found[0]
    run = run_from_json(conv.parsed(payload))
    updated_us = conv.to_us(conv.ts(updated)) if updated is not None else 0
    mem.execute(
        "INSERT INTO runs (run_number, seq, line, status, source, provisional, payload, "
        "updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (run_number, seq, line, status, source, int(bool(provisional)),
         conv.compact_json(payload), updated_us),
    )  # fmt: skip
    began = run.actual_start or run.planned_start
    start = conv.to_us(began) if began else 0
    end = conv.to_us(run.actual_end) if run.actual_end else OPEN_END_US
    return _Run(gateway, run_number, str(line), start, end)


_PACK_COLUMNS = (
    "seq, ts_us, line, device, run_number, pack_counter, net_g, gross_g, tare_g, accepted, "
    "label_seq, flags, nominal_g, program, catch_weight, plu, product_source"
)


def _copy_packs(db: Db, mem: sqlite3.Connection, gateway: str, run_number: str) -> int | None:
    """The run's packs; the first one's time (None without packs)."""
    found = db.rows(
        f"SELECT {_PACK_COLUMNS} FROM packs WHERE gateway = ? AND run_number = ? ORDER BY seq",  # noqa: S608 (fixed columns)
        (gateway, run_number),
    )
    rows = [_pack_row(r) for r in found]
    mem.executemany(
        f"INSERT INTO packs ({_PACK_COLUMNS}) VALUES ({', '.join('?' * 17)})",  # noqa: S608
        rows,
    )
    return min((r[1] for r in rows), default=None)


def _pack_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    accepted, catch = r[9], r[14]
    return (
        *r[:9],
        None if accepted is None else int(bool(accepted)),
        *r[10:14],
        None if catch is None else int(bool(catch)),
        *r[15:],
    )


_EVENT_COLUMNS = "seq, ts_us, device, line, kind, detail, flags"


def _copy_events(db: Db, mem: sqlite3.Connection, run: _Run, first_pack: int | None) -> None:
    gateway, run_number, line = run.gateway, run.run_number, run.line
    rows: list[tuple[Any, ...]] = []
    if first_pack is not None:
        # A pack's product told later by its label: the event comes after the pack.
        rows += db.rows(
            f"SELECT {_EVENT_COLUMNS} FROM device_events WHERE gateway = ? "  # noqa: S608
            f"AND kind = 'pack_product' AND ts >= ? AND {db.json_text('detail', 'run_number')} = ?",
            (gateway, db.ts_param(conv.from_us(first_pack)), run_number),
        )
    start, end = run.start, run.end
    for kind in ("missed_packs", "records_shed"):
        rows += db.rows(
            f"SELECT {_EVENT_COLUMNS} FROM device_events WHERE gateway = ? AND kind = ? "  # noqa: S608
            "AND ts >= ? AND line = ? AND ts_us BETWEEN ? AND ?",
            (gateway, kind, db.ts_param(conv.from_us(start)), line, start, end),
        )
    mem.executemany(
        f"INSERT OR IGNORE INTO device_events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        [(*r[:5], conv.compact_json(r[5]), r[6]) for r in rows],
    )


_REJECTED_COLUMNS = "seq, ts_us, source, line, tag, raw, reason, detail, flags, serial"


def _copy_rejected(db: Db, mem: sqlite3.Connection, run: _Run) -> None:
    gateway, line, start, end = run.gateway, run.line, run.start, run.end
    rows = db.rows(
        f"SELECT {_REJECTED_COLUMNS} FROM rejected_inputs WHERE gateway = ? AND line = ? "  # noqa: S608
        "AND ts >= ? AND ts_us BETWEEN ? AND ?",
        (gateway, line, db.ts_param(conv.from_us(start)), start, end),
    )
    mem.executemany(
        f"INSERT INTO rejected_inputs ({_REJECTED_COLUMNS}) VALUES ({', '.join('?' * 10)})",  # noqa: S608
        rows,
    )


_EMARK_COLUMNS = (
    "seq, ts_us, line, run_number, plu, qn_g, tne_g, t1_g, t2_g, start_us, end_us, n, "
    "mean_g, sd_g, below_t1, below_t2, verdict, reasons, flags, rejected, uncertain"
)
_EMARK_DECIMALS = (5, 6, 7, 8, 12, 13)


def _copy_emark(db: Db, mem: sqlite3.Connection, gateway: str, run_number: str) -> None:
    rows = db.rows(
        f"SELECT {_EMARK_COLUMNS} FROM emark_batches WHERE gateway = ? AND run_number = ?",  # noqa: S608
        (gateway, run_number),
    )
    mem.executemany(
        f"INSERT INTO emark_batches ({_EMARK_COLUMNS}) VALUES ({', '.join('?' * 21)})",  # noqa: S608
        [_emark_row(r) for r in rows],
    )


def _emark_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    values = list(r)
    for i in _EMARK_DECIMALS:
        values[i] = conv.decimal_text(values[i])
    reasons = values[17]
    # The store writes the reasons with json.dumps' default separators (record_tables.py).
    values[17] = reasons if isinstance(reasons, str) else json.dumps(list(reasons))
    return tuple(values)


_ALERT_COLUMNS = (
    "seq, ts_us, alert_id, rule, subject, line, severity, state, message, detail, flags"
)


def _copy_alerts(db: Db, mem: sqlite3.Connection, run: _Run) -> None:
    """The alerts the report reads (see the module's docstring), each alert with all its
    transitions, so folding them gives the same alerts as over the store."""
    gateway, line = run.gateway, run.line
    named = (f"%/{run.run_number}/%", f"%/{run.run_number}")
    seen: dict[int, tuple[Any, ...]] = {}
    # The run's span on its line: the report's own alerts and the raises of its alarm load.
    for r in db.rows(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE gateway = ? AND line = ? AND ts >= ? "  # noqa: S608
        "AND ts_us BETWEEN ? AND ?",
        (gateway, line, db.ts_param(conv.from_us(run.start)), run.start, run.end),
    ):
        seen[int(r[0])] = r
    # Those naming the run, whenever they were recorded.
    for r in db.rows(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE gateway = ? "  # noqa: S608
        "AND (line = ? OR line IS NULL) AND (subject LIKE ? OR subject LIKE ?)",
        (gateway, line, *named),
    ):
        seen[int(r[0])] = r
    # Alerts of the line still active at the run's end (the alarm load's active and stale
    # ones): active now, or changed since the end. A superset: the fold decides.
    ids = {str(r[2]) for r in seen.values()}
    ids |= {
        str(alert_id)
        for (alert_id,) in db.rows(
            "SELECT alert_id FROM alerts_current WHERE gateway = ? AND line = ? "
            "AND (active = ? OR ts >= ?)",
            (gateway, line, True if db.postgres else 1, db.ts_param(_end_moment(run.end))),
        )
    }
    # Every transition of each of them (by the alerts' (gateway, alert_id, seq) index).
    listed = sorted(ids)
    for i in range(0, len(listed), _IDS_PER_QUERY):
        chunk = listed[i : i + _IDS_PER_QUERY]
        for r in db.rows(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE gateway = ? "  # noqa: S608
            f"AND alert_id IN ({', '.join('?' * len(chunk))})",
            (gateway, *chunk),
        ):
            seen[int(r[0])] = r
    mem.executemany(
        f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES ({', '.join('?' * 11)})",  # noqa: S608
        [(*r[:9], conv.compact_json(r[9]), r[10]) for _seq, r in sorted(seen.items())],
    )


_IDS_PER_QUERY = 500


def _end_moment(end_us: int) -> Any:
    """The run's end as a time (an open run: the far future, which nothing is after)."""
    return conv.from_us(min(end_us, conv.to_us(conv.FAR_FUTURE)))
