"""Which production run is active on a line at a given time: the join of every reading.

A run is active on its line from its start until its end:

* start: ``actual_start``; or, for a run the ERP says is ``running`` but has no actual start
  yet, its ``planned_start`` (the ERP often lags the line);
* end: ``actual_end``; an open end means the run is still going;
* a cancelled run is never active.

When runs overlap on one line (the ERP closed one late), the one that started last wins: the
line packs one run at a time, and the newer start is what the operator set up. Operators can
start and end runs from the line for lines whose ERP lags; those versions carry who and when.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from gateway.core.runs import ProductionRun, RunStatus

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch for an aware datetime."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_us(ts_us: int) -> datetime:
    """An aware UTC datetime from microseconds since the epoch."""
    return datetime.fromtimestamp(ts_us / 1_000_000, UTC)


def run_window(run: ProductionRun) -> tuple[datetime, datetime | None] | None:
    """(start, end) of a run, or None if it is not (yet) active at any time."""
    if run.status is RunStatus.CANCELLED:
        return None
    start = run.actual_start
    if start is None and run.status is RunStatus.RUNNING:
        start = run.planned_start
    if start is None:
        return None
    return start, run.actual_end


class RunIndex:
    """The newest version of every known run, searchable by line and time."""

    def __init__(self, runs: Iterable[ProductionRun] = ()) -> None:
        self._runs: dict[str, ProductionRun] = {}
        for run in runs:
            self.put(run)

    def put(self, run: ProductionRun) -> ProductionRun | None:
        """Add or replace a run; returns the version it replaced."""
        previous = self._runs.get(run.run_number)
        self._runs[run.run_number] = run
        return previous

    def get(self, run_number: str) -> ProductionRun | None:
        """A run by number."""
        return self._runs.get(run_number)

    def __len__(self) -> int:
        return len(self._runs)

    def runs(self) -> list[ProductionRun]:
        """Every known run."""
        return list(self._runs.values())

    def active(self, line: str, at: datetime) -> ProductionRun | None:
        """The run active on ``line`` at ``at``, or None."""
        best: tuple[datetime, ProductionRun] | None = None
        for run in self._runs.values():
            if run.line != line:
                continue
            window = run_window(run)
            if window is None:
                continue
            start, end = window
            if start <= at and (end is None or at < end) and (best is None or start > best[0]):
                best = (start, run)
        return best[1] if best else None
