"""Repeated bad values are one rejection with a count, not a row per sample. Pure: the
caller passes each record's own time.

A device that keeps reporting the same bad value (an OPC UA server re-reports NaN at every
sampling, since NaN never equals itself; a Modbus register stuck at its error code) would
otherwise store a rejected input per sample: thousands of identical rows an hour that
drown the one that matters and evict other telemetry at the disk budget. The first
rejection of a streak is stored as it comes; repeats of the same raw value and reason on
the same tag are counted, and one summary row ("repeated N times") closes the streak when
the tag reports another bad value, or once the streak is ``window_us`` old (with the next
record the device sends), so a count is stored within about that long.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gateway.core.records import Record, RejectedInput

__all__ = ["REPEAT_WINDOW_US", "RepeatedRejections"]

REPEAT_WINDOW_US = 60_000_000
"""Longest a streak of identical rejections goes without a stored summary: one minute."""


@dataclass
class _Streak:
    first: RejectedInput
    repeats: int = 0
    last_us: int = 0


class RepeatedRejections:
    """Folds streaks of identical rejections on one tag into the first row plus a count.

    ``suppressed`` counts the rows not stored (each is in some summary's count).
    """

    def __init__(self, window_us: int = REPEAT_WINDOW_US) -> None:
        self.window_us = window_us
        self.suppressed = 0
        self._streaks: dict[tuple[str, str], _Streak] = {}

    def admit(self, records: Iterable[Record]) -> Iterator[Record]:
        """The records to store, in order: everything but the repeats, plus summaries."""
        for record in records:
            if self._streaks:  # (none open is the usual case: nothing to expire)
                yield from self._expire(record.ts_us)
            if not isinstance(record, RejectedInput):
                yield record
                continue
            key = (record.source, record.tag)
            streak = self._streaks.get(key)
            if streak is not None and _same(streak.first, record):
                streak.repeats += 1
                streak.last_us = record.ts_us
                self.suppressed += 1
                continue
            if streak is not None and streak.repeats:
                yield _summary(streak)  # the tag now reports something else
            self._streaks[key] = _Streak(record, 0, record.ts_us)
            yield record

    def _expire(self, now_us: int) -> Iterator[Record]:
        """Close the streaks that began ``window_us`` or more ago (a summary for each with
        repeats); a repeat after that starts a new streak and is stored."""
        for key, streak in list(self._streaks.items()):
            if now_us - streak.first.ts_us >= self.window_us:
                del self._streaks[key]
                if streak.repeats:
                    yield _summary(streak)


def _same(a: RejectedInput, b: RejectedInput) -> bool:
    return (a.raw, a.reason, a.detail) == (b.raw, b.reason, b.detail)


def _summary(streak: _Streak) -> RejectedInput:
    first = streak.first
    seconds = (streak.last_us - first.ts_us) / 1_000_000
    return dataclasses.replace(
        first,
        ts_us=streak.last_us,
        detail=(
            f"repeated {streak.repeats} more time(s) over {seconds:.1f} s after the first"
            + (f"; {first.detail}" if first.detail else "")
        ),
    )
