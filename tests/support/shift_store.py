"""A store holding one busy shift, as the gateway would have written it.

:class:`tests.support.line_shift.LineShift` drives the real rules engine through the
shift (packs with their labels, a probe that goes above its limit every 10 minutes, labels
missing now and then, the checkweigher's counter skipping packs); every record and every
alert transition is then written through the real :class:`gateway.store.Store`, with the run
as the ERP sent it. The result has hundreds of alert transitions, as a real line has.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.core.records import DeviceEvent, PackEvent
from gateway.core.runs import run_version
from gateway.runs import to_us
from gateway.store import Store
from tests.support.line_shift import RUN, START, LineShift

SHIFT_HOURS = 8
PACK_EVERY_S = 12
MISSED_EVERY = 400
"""Every this many packs the checkweigher's counter skips :data:`MISSED_AT_ONCE` packs."""
MISSED_AT_ONCE = 2


@dataclasses.dataclass(frozen=True)
class ShiftFacts:
    """What the shift put in the store, for the tests' expectations."""

    packs: int
    missed_packs: int
    alert_transitions: int
    run_number: str


def play_shift() -> tuple[LineShift, int]:
    """The shift through the rules engine; returns it and the packs the counter skipped."""
    shift = LineShift()
    missed = 0
    packs = SHIFT_HOURS * 3600 // PACK_EVERY_S
    for n in range(1, packs + 1):
        minute = (n * PACK_EVERY_S) // 60
        # The chiller door left open for 3 minutes in every 10: a HACCP excursion each time.
        shift.temperature(7.5 if minute % 10 < 3 else 3.0)
        # Every 25th pack's label is not read: a label gap each time.
        shift.pack(236.0 + (n % 9), labelled=n % 25 != 0)
        if n % MISSED_EVERY == 0:
            shift.counter += MISSED_AT_ONCE
            missed += MISSED_AT_ONCE
            shift.link(
                "cw1",
                "missed_packs",
                missed=MISSED_AT_ONCE,
                previous=shift.counter - MISSED_AT_ONCE,
                counter=shift.counter + 1,
            )
        shift.advance(PACK_EVERY_S, tick_every=PACK_EVERY_S / 2)
    return shift, missed


async def write_shift(db_path: Path) -> ShiftFacts:
    """Play the shift and write it into a new store at ``db_path``."""
    shift, missed = play_shift()
    records = [run_version(RUN, to_us(START)), *shift.records, *shift.out]
    records.sort(key=lambda r: getattr(r, "ts_us", 0))
    async with Store(StoreSection(path=db_path), SystemClock()) as store:
        for record in records:
            store.submit(record)
        while store.pending_count:
            await store.commit_pending()
    transitions = sum(1 for r in shift.alerts())
    packs = sum(1 for r in shift.records if isinstance(r, PackEvent))
    assert any(isinstance(r, DeviceEvent) and r.kind == "missed_packs" for r in shift.records)
    return ShiftFacts(
        packs=packs,
        missed_packs=missed,
        alert_transitions=transitions,
        run_number=RUN.run_number,
    )
