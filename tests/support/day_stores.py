"""What the warehouse day's gateways recorded, read straight from their stores (read-only
SQL): the expected side of the day's comparisons (tests/integration/test_warehouse_day.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@contextmanager
def read_only(db_path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        yield db
    finally:
        db.close()


def counter_reached(db_path: Path, device: str) -> int:
    """The highest pack counter ``device`` reported so far (0 before the first pack or while
    the store cannot be read)."""
    try:
        with read_only(db_path) as db:
            row = db.execute(
                "SELECT max(pack_counter) FROM packs WHERE device = ?", (device,)
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0)


def alert_states(db_path: Path, rule: str) -> set[str]:
    """The states ``rule``'s alerts went through in the store so far."""
    try:
        with read_only(db_path) as db:
            return {
                str(s) for (s,) in db.execute("SELECT state FROM alerts WHERE rule = ?", (rule,))
            }
    except sqlite3.Error:
        return set()


class CycleWatch:
    """Whether each checkweigher of each store has packed ``packs`` more after the first
    pack its gateway recorded (the scenario's clock ran since the simulators started, so
    the counters do not start at 1), and each store holds each of ``alerts`` (rule,
    state): on a loaded machine a gateway may see a scripted fault late or in part."""

    def __init__(
        self,
        stores: list[Path],
        devices: tuple[str, ...],
        packs: int,
        alerts: tuple[tuple[str, str], ...],
    ) -> None:
        self.stores = stores
        self.keys = [(store, device) for store in stores for device in devices]
        self.packs = packs
        self.alerts = alerts
        self.first: dict[tuple[Path, str], int] = {}

    def done(self) -> bool:
        finished = True
        for store, device in self.keys:
            reached = counter_reached(store, device)
            start = self.first.setdefault((store, device), reached) if reached else None
            finished = finished and start is not None and reached > start + self.packs
        return finished and all(
            state in alert_states(store, rule)
            for store in self.stores
            for rule, state in self.alerts
        )


def run_numbers(db_path: Path) -> list[str]:
    """Every run the gateway knows (its ``runs`` table: the newest version of each)."""
    with read_only(db_path) as db:
        return [str(r) for (r,) in db.execute("SELECT run_number FROM runs ORDER BY run_number")]


def outbox_left(db_path: Path) -> int:
    with read_only(db_path) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def record_seqs(db_path: Path, table: str) -> set[int]:
    with read_only(db_path) as db:
        return {int(s) for (s,) in db.execute(f"SELECT seq FROM {table}")}


@dataclass(frozen=True)
class Recorded:
    """A gateway's packs and labels on some runs: key (gateway, seq) → the shared fields."""

    packs: dict[tuple[str, int], dict[str, Any]]
    labels: dict[tuple[str, int], dict[str, Any]]


PACK_FIELDS = ("line", "device", "run_number", "pack_counter", "plu", "net_g", "accepted", "flags")
LABEL_FIELDS = ("line", "run_number", "gtin", "batch", "serial", "net_weight_g")


def _rows(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _pack(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in PACK_FIELDS}
    out["accepted"] = None if row["accepted"] is None else bool(row["accepted"])
    return out


def runs_with_batch(db_path: Path, batch_code: str) -> list[str]:
    """The gateway's runs whose newest version lists ``batch_code``."""
    with read_only(db_path) as db:
        return sorted(
            str(number)
            for number, payload in db.execute("SELECT run_number, payload FROM runs")
            if batch_code in json.loads(payload).get("batch_codes", [])
        )


def recorded_on_runs(db_path: Path, gateway: str, runs: list[str]) -> Recorded:
    """Every pack and label scan the gateway joined to one of ``runs``."""
    packs: dict[tuple[str, int], dict[str, Any]] = {}
    labels: dict[tuple[str, int], dict[str, Any]] = {}
    with read_only(db_path) as db:
        for run in runs:
            for row in _rows(db, "SELECT * FROM packs WHERE run_number = ?", (run,)):
                packs[(gateway, int(row["seq"]))] = _pack(row)
            for row in _rows(db, "SELECT * FROM label_scans WHERE run_number = ?", (run,)):
                labels[(gateway, int(row["seq"]))] = {k: row[k] for k in LABEL_FIELDS}
    return Recorded(packs, labels)


def labels_with_serial(db_path: Path, gateway: str, serial: str) -> dict[tuple[str, int], Any]:
    with read_only(db_path) as db:
        return {
            (gateway, int(row["seq"])): {k: row[k] for k in LABEL_FIELDS}
            for row in _rows(db, "SELECT * FROM label_scans WHERE serial = ?", (serial,))
        }


def a_label_serial(db_path: Path, run: str) -> str:
    """A serial scanned exactly once on ``run`` whose pack was recorded too (a pack the
    gateway missed still has its label read): the middle one of the run's scans."""
    with read_only(db_path) as db:
        serials = [
            str(s)
            for (s,) in db.execute(
                "SELECT l.serial FROM label_scans l JOIN packs p ON p.line = l.line "
                "AND p.run_number = l.run_number AND p.label_seq = CAST(l.serial AS INTEGER) "
                "WHERE l.run_number = ? AND l.serial IS NOT NULL "
                "GROUP BY l.serial HAVING count(*) = 1 ORDER BY min(l.seq)",
                (run,),
            )
        ]
    assert serials, f"no label scanned on {run}"
    return serials[len(serials) // 2]


def pack_of_label(db_path: Path, gateway: str, serial: str) -> dict[tuple[str, int], Any]:
    """The pack whose label number is ``serial`` (the labeller numbers labels with AI 21)."""
    with read_only(db_path) as db:
        return {
            (gateway, int(row["seq"])): _pack(row)
            for row in _rows(db, "SELECT * FROM packs WHERE label_seq = ?", (int(serial),))
        }


def trace_recorded(trace: dict[str, Any]) -> Recorded:
    """The packs and labels of a trace as the API gave them, keyed like :class:`Recorded`."""
    packs: dict[tuple[str, int], dict[str, Any]] = {}
    labels: dict[tuple[str, int], dict[str, Any]] = {}
    for run in trace["runs"]:
        for pack in run["packs"]:
            packs[(pack["gateway"], int(pack["seq"]))] = {k: pack[k] for k in PACK_FIELDS}
        for label in run["labels"]:
            labels[(label["gateway"], int(label["seq"]))] = {k: label[k] for k in LABEL_FIELDS}
    return Recorded(packs, labels)
