"""One line's runs as a timeline: which run is active from each moment to the next change.

:class:`gateway.runs.RunIndex` answers "which run is active on this line at this time" for
every reading. Scanning every known run per reading cost time in proportion to the plant's
history: the store keeps every run it was ever told about, so a gateway a year into service
with four lines and a few runs a shift per line (thousands of runs) spent milliseconds per
reading on the scan alone, more than a reading's whole budget at 10,000 readings a second.

The answer only changes where a run starts or ends, so it is worked out once per segment
between those moments (a sweep over the sorted starts and ends) and each lookup is a binary
search: the cost per reading no longer depends on how many runs are known. The rules it
follows are :mod:`gateway.runs`'s, unchanged: a window ``[start, end)``, and when windows
overlap, the latest start wins; of runs with the same start, the one the index learnt of
first (tests/unit/test_run_index.py holds it to the plain scan).
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.core.runs import ProductionRun


@dataclass(frozen=True, slots=True)
class Window:
    """When a run is active: ``start_us <= t < end_us`` (no end: still going)."""

    start_us: int
    end_us: int | None


@dataclass(frozen=True, slots=True, eq=False)
class Timeline:
    """The run active on one line from ``starts[i]`` until ``starts[i + 1]`` is
    ``runs[i]`` (None: no run); before ``starts[0]`` none is.

    ``starts`` is an array of 64-bit integers, 8 bytes a moment where a tuple of ints costs
    40: a line with years of runs has thousands of moments (docs/operations.md, sizing)."""

    starts: array[int]
    runs: tuple[ProductionRun | None, ...]

    def at(self, ts_us: int) -> ProductionRun | None:
        """The run active at ``ts_us`` (µs since the epoch), or None."""
        i = bisect_right(self.starts, ts_us) - 1
        return self.runs[i] if i >= 0 else None


EMPTY = Timeline(array("q"), ())


def build_timeline(runs: Iterable[tuple[int, ProductionRun, Window]]) -> Timeline:
    """The timeline of one line's runs, each given as (the order the index learnt of it, the
    run, its window).

    A sweep over the distinct starts and ends: at each, the runs starting then join a heap
    ordered by (latest start, earliest learnt), the runs ending then leave it (lazily, when
    they reach its top), and the top is the run active until the next moment. A window that
    ends at or before it starts is never active and is left out. Consecutive segments with the
    same run are merged. O(n log n) for n runs, done again only after the line's runs change.
    """
    starting: dict[int, list[tuple[int, int, ProductionRun]]] = {}
    ending: dict[int, list[int]] = {}
    for order, run, window in runs:
        if window.end_us is not None and window.end_us <= window.start_us:
            continue
        starting.setdefault(window.start_us, []).append((-window.start_us, order, run))
        if window.end_us is not None:
            ending.setdefault(window.end_us, []).append(order)
    active: list[tuple[int, int, ProductionRun]] = []
    ended: set[int] = set()
    starts: list[int] = []
    answers: list[ProductionRun | None] = []
    for moment in sorted(starting.keys() | ending.keys()):
        ended.update(ending.get(moment, ()))
        for entry in starting.get(moment, ()):
            heapq.heappush(active, entry)
        while active and active[0][1] in ended:
            heapq.heappop(active)
        current = active[0][2] if active else None
        if answers and answers[-1] is current:
            continue
        starts.append(moment)
        answers.append(current)
    return Timeline(array("q", starts), tuple(answers))


__all__ = ["EMPTY", "Timeline", "Window", "build_timeline"]
