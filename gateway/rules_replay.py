"""Rebuilding the rules' state from the store when the gateway starts.

The store holds every pack, temperature reading, label scan, line-mode change and probe
fault code (a rejected input with reason ``sensor_fault_code``), so the state the rules build
from them (open ℮ inspection batches, giveaway statistics, HACCP monitors, label sequence
windows) is not lost with the process: at start the records of the recent past are read
back in store order and replayed through the rules
(:meth:`gateway.rules_engine.RulesEngine.replay`). A crash and a planned stop are the same
to it, so a routine restart does not split an hourly ℮ batch, no rule judges a small
post-restart sample as if it were the batch, and a probe sending its fault code before the
stop is still in fault after it (docs/restarts.md).

How far back: from the start of the oldest run still open (or ended within one ℮ batch
window), and at least one ℮ batch window, but never more than :data:`REPLAY_LIMIT_S`.
Temperatures go back :data:`TEMPERATURE_HISTORY_S` (or the probes' own windows, if longer):
a HACCP monitor needs the current excursion, not the whole day.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from gateway.config import RulesSection
from gateway.core.clock import Clock
from gateway.core.records import (
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    RejectedInput,
    TemperatureReading,
)
from gateway.rules_engine import LINE_MODE_EVENT, OPERATOR_SOURCE, RulesEngine
from gateway.runs import RunIndex, to_us
from gateway.store import Store

log = logging.getLogger(__name__)

REPLAY_LIMIT_S = 24 * 3600
"""The furthest back a restart replays: a day of a line's records replays in seconds."""
TEMPERATURE_HISTORY_S = 2 * 3600
"""How far back temperatures are replayed (at least; longer if a probe's windows are)."""
PAGE_ROWS = 5000

_PACKS = (
    "SELECT seq, ts_us, line, device, net_g, pack_counter, gross_g, tare_g, accepted, "
    "label_seq, run_number, flags, nominal_g, program, catch_weight, plu, product_source "
    "FROM packs "
    "WHERE seq > ? AND ts_us >= ? ORDER BY seq LIMIT ?"
)
_TEMPERATURES = (
    "SELECT seq, ts_us, line, device, probe, celsius, location, run_number, flags "
    "FROM temperatures WHERE seq > ? AND ts_us >= ? ORDER BY seq LIMIT ?"
)
_LABELS = (
    "SELECT seq, ts_us, line, device, raw, gtin, batch, use_by, pack_date, serial, "
    "net_weight_g, parsed, run_number, flags FROM label_scans "
    "WHERE seq > ? AND ts_us >= ? ORDER BY seq LIMIT ?"
)
_EVENTS = (
    "SELECT seq, ts_us, device, kind, line, detail, flags FROM device_events "
    "WHERE seq > ? AND ts_us >= ? ORDER BY seq LIMIT ?"
)
_LABEL_REJECTIONS = (
    "SELECT seq, ts_us, source, tag, raw, reason, detail, line, flags, serial "
    "FROM rejected_inputs WHERE seq > ? AND ts_us >= ? AND serial IS NOT NULL "
    "ORDER BY seq LIMIT ?"
)
_PROBE_FAULTS = (  # the reason is gateway.core.records.SENSOR_FAULT_CODE
    "SELECT seq, ts_us, source, tag, raw, reason, detail, line, flags, serial "
    "FROM rejected_inputs "
    "WHERE reason = 'sensor_fault_code' AND seq > ? AND ts_us >= ? ORDER BY seq LIMIT ?"
)
_RECORDED_BATCHES = "SELECT line, run_number, plu, start_us FROM emark_batches WHERE end_us >= ?"
_LINE_MODES = (
    "SELECT line, detail FROM device_events WHERE seq IN ("
    "SELECT max(seq) FROM device_events WHERE device = ? AND kind = ? GROUP BY line)"
)


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """What a start replayed."""

    since_us: int
    temperatures_since_us: int
    records: int


def _pack(row: tuple[Any, ...]) -> PackEvent:
    (_, ts, line, device, net, counter, gross, tare, accepted, label, run, flags, nominal) = row[
        :13
    ]
    program, catch_weight, plu, source = row[13:17]
    return PackEvent(
        ts_us=ts,
        line=line,
        device=device,
        net_g=net,
        pack_counter=counter,
        gross_g=gross,
        tare_g=tare,
        accepted=None if accepted is None else bool(accepted),
        label_seq=label,
        run_number=run,
        flags=flags,
        nominal_g=nominal,
        program=program,
        catch_weight=None if catch_weight is None else bool(catch_weight),
        plu=plu,
        product_source=source,
    )


def _temperature(row: tuple[Any, ...]) -> TemperatureReading:
    _, ts, line, device, probe, celsius, location, run, flags = row
    return TemperatureReading(
        ts_us=ts,
        line=line,
        device=device,
        probe=probe,
        celsius=celsius,
        location=location,
        run_number=run,
        flags=flags,
    )


def _label(row: tuple[Any, ...]) -> LabelScan:
    _, ts, line, device, raw, gtin, batch, use_by, pack_date, serial, net, parsed = row[:12]
    return LabelScan(
        ts_us=ts,
        line=line,
        device=device,
        raw=bytes(raw),
        gtin=gtin,
        batch=batch,
        use_by=use_by,
        pack_date=pack_date,
        serial=serial,
        net_weight_g=net,
        parsed=json.loads(parsed),
        run_number=row[12],
        flags=row[13],
    )


def _rejection(row: tuple[Any, ...]) -> RejectedInput:
    _, ts, source, tag, raw, reason, detail, line, flags, serial = row
    return RejectedInput(
        ts_us=ts,
        source=source,
        tag=tag,
        raw=raw,
        reason=reason,
        detail=detail,
        line=line,
        flags=flags,
        serial=serial,
    )


def _event(row: tuple[Any, ...]) -> DeviceEvent:
    _, ts, device, kind, line, detail, flags = row
    return DeviceEvent(
        ts_us=ts, device=device, kind=kind, line=line, detail=json.loads(detail), flags=flags
    )


async def _rows(
    store: Store, sql: str, since_us: int, decode: Callable[[tuple[Any, ...]], Record]
) -> AsyncIterator[tuple[int, Record]]:
    """``(seq, record)`` of one table from ``since_us`` on, in store order, a page at a time."""
    last = 0
    while True:
        rows = await store.fetchall(sql, (last, since_us, PAGE_ROWS))
        for row in rows:
            yield row[0], decode(row)
        if len(rows) < PAGE_ROWS:
            return
        last = rows[-1][0]


async def stored_records(
    store: Store, since_us: int, temperatures_since_us: int
) -> AsyncIterator[Record]:
    """The stored records the rules take, merged from their tables in store order."""
    sources = [
        _rows(store, _PACKS, since_us, _pack),
        _rows(store, _TEMPERATURES, temperatures_since_us, _temperature),
        _rows(store, _LABELS, since_us, _label),
        _rows(store, _EVENTS, since_us, _event),
        _rows(store, _LABEL_REJECTIONS, since_us, _rejection),
        # A probe's fault code held across the stop is still a fault after it.
        _rows(store, _PROBE_FAULTS, temperatures_since_us, _rejection),
    ]
    heads: list[tuple[int, int, Record]] = []
    for index, source in enumerate(sources):
        async for seq, record in source:
            heads.append((seq, index, record))
            break
    heapq.heapify(heads)
    while heads:
        _seq, index, record = heapq.heappop(heads)
        yield record
        async for seq, following in sources[index]:
            heapq.heappush(heads, (seq, index, following))
            break


def replay_horizon(runs: RunIndex, rules: RulesSection, now_us: int) -> tuple[int, int]:
    """How far back to replay: ``(records since, temperatures since)`` in µs."""
    batch_us = round(rules.emark_batch_minutes * 60 * 1_000_000)
    oldest_allowed = now_us - REPLAY_LIMIT_S * 1_000_000
    since = now_us - batch_us
    for run in runs.runs():
        if run.actual_start is None:
            continue
        if run.actual_end is not None and to_us(run.actual_end) < now_us - batch_us:
            continue
        since = min(since, to_us(run.actual_start))
    since = max(since, oldest_allowed)
    windows = [max(p.no_data_s, p.debounce_s, p.stuck_s or 0.0) * 2 for p in rules.probes]
    temperature_s = max([float(TEMPERATURE_HISTORY_S), *windows])
    temperatures = max(now_us - round(temperature_s * 1_000_000), oldest_allowed)
    return since, temperatures


async def rebuild_rules(
    store: Store, engine: RulesEngine, runs: RunIndex, rules: RulesSection, clock: Clock
) -> ReplaySummary:
    """Replay the recent past into ``engine`` (before its alert book is restored)."""
    now = clock.wall_us()
    since, temperatures_since = replay_horizon(runs, rules, now)
    taken = 0
    chunk: list[Record] = []
    async for record in stored_records(store, since, temperatures_since):
        chunk.append(record)
        if len(chunk) >= PAGE_ROWS:
            taken += engine.replay(chunk)
            chunk = []
    taken += engine.replay(chunk)
    recorded = {
        (line, run, plu, start)
        for line, run, plu, start in await store.fetchall(_RECORDED_BATCHES, (since,))
    }
    engine.resume(recorded)
    log.info("rules rebuilt from %d stored records", taken)
    return ReplaySummary(since, temperatures_since, taken)


async def last_line_modes(store: Store) -> dict[str, str]:
    """Each line's newest stored mode (a line without one is in production)."""
    rows = await store.fetchall(_LINE_MODES, (OPERATOR_SOURCE, LINE_MODE_EVENT))
    modes: dict[str, str] = {}
    for line, detail in rows:
        mode = json.loads(detail).get("mode")
        if isinstance(line, str) and isinstance(mode, str):
            modes[line] = mode
    return modes


__all__ = [
    "REPLAY_LIMIT_S",
    "TEMPERATURE_HISTORY_S",
    "ReplaySummary",
    "last_line_modes",
    "rebuild_rules",
    "replay_horizon",
    "stored_records",
]
