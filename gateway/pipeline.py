"""The path of every record from an adapter to the store.

Each pack event, temperature reading and label scan is joined to the run active on its line
at its timestamp (see :mod:`gateway.runs`), or stored explicitly with no run and counted.
While the ERP is unreachable the join uses the last known runs and flags the record
``PROVISIONAL_RUN``. Shortly after the wall clock was stepped (:mod:`gateway.clockwatch`)
every record is flagged ``TIME_UNCERTAIN``.

Memory stays bounded however fast the devices send: while ``store.max_pending_rows`` records
wait for the store, device records are shed before the rules see them, counted and alerted
(:mod:`gateway.shedding`); adapters that can slow down await :meth:`Pipeline.wait_for_space`
first so that this rarely happens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import operator
from collections import Counter
from collections.abc import Callable, Iterable

from gateway.core.errors import RecordShedError
from gateway.core.records import (
    LabelScan,
    PackEvent,
    Record,
    RecordFlag,
    TemperatureReading,
)
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex
from gateway.shedding import ShedLedger, device_of, sheddable
from gateway.store import Store

log = logging.getLogger(__name__)

JOINED = (PackEvent, TemperatureReading, LabelScan)
"""Record types that belong to a production run."""


def _copier(kind: type[Record]) -> Callable[[Record, str, int], Record]:
    """``dataclasses.replace(record, run_number=..., flags=...)`` for one record type, at half
    its cost: the field values are read in one call and passed to the constructor by position
    (every record is joined, so this is on the path of every reading)."""
    names = [f.name for f in dataclasses.fields(kind)]
    values = operator.attrgetter(*names)
    run_at, flags_at = names.index("run_number"), names.index("flags")

    def joined(record: Record, run_number: str, flags: int) -> Record:
        fields = list(values(record))
        fields[run_at] = run_number
        fields[flags_at] = flags
        return kind(*fields)

    return joined


_JOIN = {kind: _copier(kind) for kind in JOINED}


class Pipeline:
    """A record sink that joins records to their run before queueing them in the store."""

    def __init__(
        self,
        store: Store,
        runs: RunIndex,
        *,
        provisional: Callable[[], bool] = lambda: False,
        rules: RulesEngine | None = None,
        time_uncertain: Callable[[], bool] = lambda: False,
        observers: Iterable[Callable[[Record], None]] = (),
        shedding: ShedLedger | None = None,
    ) -> None:
        self.store = store
        self.runs = runs
        self.provisional = provisional
        self.time_uncertain = time_uncertain
        self.rules = rules
        self.joined: Counter[str] = Counter()
        self.without_run: Counter[str] = Counter()
        self.observers = list(observers)
        """Called with every joined record as it is queued (the live status, metrics)."""
        self.shedding = shedding if shedding is not None else ShedLedger()
        """Device records shed under intake pressure (counts, alert, evidence)."""
        store.space_listeners.append(self._relieved)

    def join(self, record: Record) -> Record:
        """The record with its run number (and provisional flag), if it belongs to a run."""
        if not isinstance(record, JOINED) or record.run_number is not None:
            return record
        kind = type(record).__name__
        run = self.runs.active_us(record.line, record.ts_us)
        if run is None:
            self.without_run[kind] += 1
            return record
        self.joined[kind] += 1
        flags = record.flags | (RecordFlag.PROVISIONAL_RUN if self.provisional() else 0)
        copy = _JOIN.get(type(record))
        if copy is None:  # a subclass of a record type
            return dataclasses.replace(record, run_number=run.run_number, flags=flags)
        return copy(record, run.run_number, flags)

    async def wait_for_space(self) -> None:
        """Return once the store has room for more intake (see :meth:`Store.wait_for_space`)."""
        await self.store.wait_for_space()

    def submit(self, record: Record) -> asyncio.Future[int]:
        """Join, queue for the next group commit, and queue what the rules make of it.

        The alerts a record causes are queued right behind it and committed in its
        transaction: after a crash the store never holds a pack without the alert it raised,
        which the restart's replay (gateway/rules_replay.py) relies on. A device record that
        arrives while the store holds ``max_pending_rows`` is shed instead: its future fails
        with :class:`RecordShedError` (already retrieved, so it needs no handling) and it
        never reaches the rules.
        """
        if self.store.over_limit and sheddable(record):
            self._shed(record)
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            future.set_exception(
                RecordShedError(f"shed: {self.store.config.max_pending_rows} records were pending")
            )
            # Retrieved here: the shed is counted and alerted, so a caller that never looks
            # at its future must not make asyncio log "exception was never retrieved".
            future.exception()
            return future
        joined = self._prepared(record)
        future = self.store.submit(joined)
        self._follow(joined)
        return future

    def enqueue(self, record: Record) -> None:
        """:meth:`submit` for a caller that does not wait for the commit (the adapters'
        readings): the same join, rules and shedding, without a future per record."""
        if self.store.over_limit and sheddable(record):
            self._shed(record)
            return
        joined = self._prepared(record)
        self.store.enqueue(joined)
        self._follow(joined)

    def _prepared(self, record: Record) -> Record:
        """The record as it is stored: joined, its product decided, its time flagged."""
        joined = self.join(record)
        if self.rules is not None and isinstance(joined, PackEvent):
            joined = self.rules.decide_product(joined)
        if self.time_uncertain():
            joined = dataclasses.replace(joined, flags=joined.flags | RecordFlag.TIME_UNCERTAIN)
        return joined

    def _follow(self, joined: Record) -> None:
        """What a queued record causes: the observers told, the rules' consequences queued
        right behind it, in its transaction."""
        for observer in self.observers:
            observer(joined)
        if self.rules is not None:
            for consequence in self.rules.evaluate(joined):
                self.store.enqueue(consequence, with_previous=True)

    def _shed(self, record: Record) -> None:
        store = self.store
        first = not self.shedding.raised
        limit = store.config.max_pending_rows
        for evidence in self.shedding.shed(
            record, store.clock.wall_us(), store.pending_count, limit
        ):
            store.enqueue(evidence)
        if first:
            log.error(
                "intake: %d records wait for the store (limit %d); shedding device records "
                "until it catches up, starting with a %s of device %s (counted per device in "
                "records_shed events)",
                store.pending_count,
                limit,
                type(record).__name__,
                device_of(record) or "unknown",
                extra={"device": device_of(record)},
            )

    def _relieved(self) -> None:
        """The store fell back under the backpressure level: close the shedding episode."""
        store = self.store
        was_shedding = self.shedding.raised
        for record in self.shedding.relieved(store.clock.wall_us(), store.pending_count):
            store.submit(record)
        if was_shedding:
            log.warning(
                "intake: the store keeps up again; %d device records shed since start",
                self.shedding.total,
            )

    def submit_all(self, records: list[Record]) -> None:
        """Queue records that need no join (alerts from operators or timers)."""
        for record in records:
            self.store.submit(record)
