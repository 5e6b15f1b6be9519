"""Traceability: a batch code through its runs to the packs, labels and temperatures, and a
label's serial back to its run and batch codes (docs/warehouse-analytics.md, "Trace").

Exactly what was recorded: the packs, labels and readings the gateway joined to each run
(their ``run_number``), read by the facts' (gateway, run_number) indexes; nothing inferred.
"""

from __future__ import annotations

from typing import Any

from central import catalog
from central import db as conv
from central.db import Db
from central.errors import NotFound
from central.rows import RunRow, Trace, TraceLabel, TracePack, TraceRun, TraceTemperature
from rules.label_subjects import sequence_number

_LABEL_COLUMNS = (
    "gateway, seq, ts, line, run_number, gtin, batch, serial, pack_date, use_by, net_weight_g, raw"
)


def trace_batch(db: Db, batch_code: str) -> Trace:
    keys = [
        (str(g), str(r))
        for g, r in db.rows(
            "SELECT gateway, run_number FROM run_batch_codes WHERE batch_code = ? "
            "ORDER BY gateway, run_number",
            (batch_code,),
        )
    ]
    runs = _runs(db, keys)
    if not runs:
        raise NotFound(f"no run used batch code {batch_code!r}")
    traced = tuple(
        TraceRun(
            run=run,
            products=_products(db, run),
            packs=_packs(db, run),
            labels=_labels(
                db,
                f"SELECT {_LABEL_COLUMNS} FROM label_scans "  # noqa: S608 (fixed columns)
                "WHERE gateway = ? AND run_number = ? ORDER BY ts, seq",
                (run.gateway, run.run_number),
            ),
            temperatures=_temperatures(db, run),
        )
        for run in runs
    )
    return Trace(kind="batch", key=batch_code, batch_codes=(batch_code,), runs=traced)


def trace_serial(db: Db, serial: str) -> Trace:
    scans = _labels(
        db,
        f"SELECT {_LABEL_COLUMNS} FROM label_scans WHERE serial = ? "  # noqa: S608
        "ORDER BY gateway, ts, seq",
        (serial,),
    )
    if not scans:
        raise NotFound(f"no label with serial {serial!r} was scanned")
    keys = sorted({(s.gateway, s.run_number) for s in scans if s.run_number is not None})
    runs = _runs(db, [(g, r) for g, r in keys if r is not None])
    number = sequence_number(serial)
    traced = []
    for run in runs:
        labels = tuple(
            s for s in scans if (s.gateway, s.run_number) == (run.gateway, run.run_number)
        )
        # The label's pack: the one its line's checkweigher numbered with the label's
        # number, as the gateway pairs them (rules/products.py).
        packs = tuple(
            pack
            for line in sorted({s.line for s in labels})
            if number is not None
            for pack in _packs(db, run, labelled=(line, number))
        )
        traced.append(
            TraceRun(
                run=run,
                products=_products(db, run),
                packs=packs,
                labels=labels,
                temperatures=_temperatures(db, run),
            )
        )
    known = {(r.gateway, r.run_number) for r in runs}
    codes = sorted({code for r in runs for code in r.batch_codes})
    return Trace(
        kind="serial",
        key=serial,
        batch_codes=tuple(codes),
        runs=tuple(traced),
        unmatched_labels=tuple(s for s in scans if (s.gateway, s.run_number) not in known),
    )


def _runs(db: Db, keys: list[tuple[str, str]]) -> list[RunRow]:
    found = [catalog.run_row(db, g, r) for g, r in keys]
    return [r for r in found if r is not None]


def _products(db: Db, run: RunRow) -> tuple[str, ...]:
    return tuple(
        str(plu)
        for (plu,) in db.rows(
            "SELECT plu FROM run_products WHERE gateway = ? AND run_number = ? ORDER BY plu",
            (run.gateway, run.run_number),
        )
    )


def _packs(
    db: Db, run: RunRow, *, labelled: tuple[str, int] | None = None
) -> tuple[TracePack, ...]:
    """The run's packs; with ``labelled`` (line, label number) only that label's pack."""
    where = "gateway = ? AND run_number = ?"
    params: tuple[Any, ...] = (run.gateway, run.run_number)
    if labelled is not None:
        where, params = f"{where} AND line = ? AND label_seq = ?", (*params, *labelled)
    return tuple(
        TracePack(
            gateway=r[0],
            seq=int(r[1]),
            ts=conv.ts(r[2]),
            line=r[3],
            device=r[4],
            run_number=r[5],
            pack_counter=r[6],
            plu=r[7],
            net_g=float(r[8]),
            accepted=conv.boolean(r[9]),
            flags=int(r[10]),
        )
        for r in db.rows(
            "SELECT gateway, seq, ts, line, device, run_number, pack_counter, plu, net_g, "  # noqa: S608
            f"accepted, flags FROM pack_products WHERE {where} ORDER BY ts, seq",
            params,
        )
    )


def _labels(db: Db, sql: str, params: tuple[Any, ...]) -> tuple[TraceLabel, ...]:
    return tuple(
        TraceLabel(
            gateway=r[0],
            seq=int(r[1]),
            ts=conv.ts(r[2]),
            line=r[3],
            run_number=r[4],
            gtin=r[5],
            batch=r[6],
            serial=r[7],
            pack_date=conv.day(r[8]),
            use_by=conv.day(r[9]),
            net_weight_g=None if r[10] is None else float(r[10]),
            raw=r[11] if isinstance(r[11], str) else bytes(r[11]).decode("utf-8", "replace"),
        )
        for r in db.rows(sql, params)
    )


def _temperatures(db: Db, run: RunRow) -> tuple[TraceTemperature, ...]:
    return tuple(
        TraceTemperature(
            gateway=r[0],
            ts=conv.ts(r[1]),
            line=r[2],
            probe=r[3],
            location=r[4],
            celsius=float(r[5]),
        )
        for r in db.rows(
            "SELECT gateway, ts, line, probe, location, celsius FROM temperatures "
            "WHERE gateway = ? AND run_number = ? ORDER BY ts, seq",
            (run.gateway, run.run_number),
        )
    )
