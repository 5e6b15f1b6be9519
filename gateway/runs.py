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

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from gateway.core.runs import ProductionRun, RunStatus
from gateway.run_timeline import EMPTY, Timeline, Window, build_timeline

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
    """The newest version of every known run, searchable by line and time.

    Lookups by time use each line's :class:`~gateway.run_timeline.Timeline`, rebuilt on the
    first lookup after that line's runs change: a reading costs a binary search, however many
    runs the store has kept over the years. Nothing else is kept per run but the run itself
    and a count of its batch codes (a gateway holds every run it was ever told of: bytes per
    run are what months of history cost, docs/operations.md); the rebuild finds the line's
    runs and their windows again, in the order the index learnt of them.
    """

    def __init__(self, runs: Iterable[ProductionRun] = ()) -> None:
        self._runs: dict[str, ProductionRun] = {}
        """run number → its newest version, in the order the index first learnt of each
        (replacing a version keeps its place): ties go to the first."""
        self._timelines: dict[str, Timeline] = {}
        """line → its timeline; a line missing here is rebuilt at its next lookup."""
        self._batch_codes: Counter[str] = Counter()
        """batch code → how many known runs list it."""
        for run in runs:
            self.put(run)

    def put(self, run: ProductionRun) -> ProductionRun | None:
        """Add or replace a run; returns the version it replaced."""
        number = run.run_number
        previous = self._runs.get(number)
        self._runs[number] = run
        codes = self._batch_codes
        if previous is not None:
            self._timelines.pop(previous.line, None)
            for code in set(previous.batch_codes):
                codes[code] -= 1
                if codes[code] <= 0:
                    del codes[code]
        codes.update(set(run.batch_codes))
        self._timelines.pop(run.line, None)
        return previous

    def get(self, run_number: str) -> ProductionRun | None:
        """A run by number."""
        return self._runs.get(run_number)

    def __len__(self) -> int:
        return len(self._runs)

    def runs(self) -> list[ProductionRun]:
        """Every known run."""
        return list(self._runs.values())

    def knows_batch_code(self, code: str) -> bool:
        """Whether any known run lists ``code`` among its batch codes."""
        return code in self._batch_codes

    def active(self, line: str, at: datetime) -> ProductionRun | None:
        """The run active on ``line`` at ``at``, or None."""
        return self.active_us(line, to_us(at))

    def active_us(self, line: str, ts_us: int) -> ProductionRun | None:
        """The run active on ``line`` at ``ts_us`` (µs since the epoch), or None."""
        timeline = self._timelines.get(line)
        if timeline is None:
            timeline = self._timelines[line] = self._timeline(line)
        return timeline.at(ts_us)

    def _timeline(self, line: str) -> Timeline:
        windows = []
        for order, run in enumerate(self._runs.values()):
            if run.line != line:
                continue
            window = run_window(run)
            if window is not None:
                start, end = window
                windows.append(
                    (order, run, Window(to_us(start), None if end is None else to_us(end)))
                )
        return build_timeline(windows) if windows else EMPTY
