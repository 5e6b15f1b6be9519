"""The path of every record from an adapter to the store.

Each pack event, temperature reading and label scan is joined to the run active on its line
at its timestamp (see :mod:`gateway.runs`), or stored explicitly with no run and counted.
While the ERP is unreachable the join uses the last known runs and flags the record
``PROVISIONAL_RUN``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable

from gateway.records import (
    LabelScan,
    PackEvent,
    Record,
    RecordFlag,
    TemperatureReading,
)
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex, from_us
from gateway.store import Store

JOINED = (PackEvent, TemperatureReading, LabelScan)
"""Record types that belong to a production run."""


class Pipeline:
    """A record sink that joins records to their run before queueing them in the store."""

    def __init__(
        self,
        store: Store,
        runs: RunIndex,
        *,
        provisional: Callable[[], bool] = lambda: False,
        rules: RulesEngine | None = None,
    ) -> None:
        self.store = store
        self.runs = runs
        self.provisional = provisional
        self.rules = rules
        self.joined: Counter[str] = Counter()
        self.without_run: Counter[str] = Counter()

    def join(self, record: Record) -> Record:
        """The record with its run number (and provisional flag), if it belongs to a run."""
        if not isinstance(record, JOINED) or record.run_number is not None:
            return record
        kind = type(record).__name__
        run = self.runs.active(record.line, from_us(record.ts_us))
        if run is None:
            self.without_run[kind] += 1
            return record
        self.joined[kind] += 1
        flags = record.flags | (RecordFlag.PROVISIONAL_RUN if self.provisional() else 0)
        return dataclasses.replace(record, run_number=run.run_number, flags=flags)

    def submit(self, record: Record) -> asyncio.Future[int]:
        """Join, queue for the next group commit, and queue what the rules make of it.

        The alerts a record causes are queued right behind it, so they normally share its
        transaction; each alert is stored with its outbox row in one transaction regardless.
        """
        joined = self.join(record)
        future = self.store.submit(joined)
        if self.rules is not None:
            for consequence in self.rules.evaluate(joined):
                self.store.submit(consequence)
        return future

    def submit_all(self, records: list[Record]) -> None:
        """Queue records that need no join (alerts from operators or timers)."""
        for record in records:
            self.store.submit(record)
