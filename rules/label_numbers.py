"""The label numbers of a gap: sorted ranges, so that a long outage's gap is one pair."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from rules.outages import Outage

__all__ = ["LISTED", "LabelNumbers", "PendingGap", "ReportedGap"]

LISTED: Final = 1000
"""At most this many numbers are listed in a gap's ``detail["missing"]``; its
``missing_ranges`` always hold all of them."""


class LabelNumbers:
    """Label numbers as sorted, disjoint, inclusive ranges: a gap of a million numbers (a long
    outage) is one pair, and each late read splits at most one range in two."""

    __slots__ = ("_count", "_ranges")

    def __init__(self, first: int, last: int) -> None:
        self._ranges: list[tuple[int, int]] = [(first, last)] if first <= last else []
        self._count = max(0, last - first + 1)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __contains__(self, n: object) -> bool:
        return isinstance(n, int) and self._index(n) is not None

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self._ranges:
            yield from range(lo, hi + 1)

    def _index(self, n: int) -> int | None:
        i = bisect_right(self._ranges, n, key=lambda r: r[0]) - 1
        return i if i >= 0 and self._ranges[i][1] >= n else None

    def discard(self, n: int) -> bool:
        """Remove ``n``; whether it was there."""
        i = self._index(n)
        if i is None:
            return False
        lo, hi = self._ranges[i]
        self._ranges[i : i + 1] = [(a, b) for a, b in ((lo, n - 1), (n + 1, hi)) if a <= b]
        self._count -= 1
        return True

    def ranges(self) -> list[list[int]]:
        """``[[first, last], ...]``, lowest first."""
        return [[lo, hi] for lo, hi in self._ranges]

    def lowest(self, limit: int) -> list[int]:
        """The lowest ``limit`` numbers."""
        out: list[int] = []
        for lo, hi in self._ranges:
            out.extend(range(lo, min(hi, lo + limit - len(out) - 1) + 1))
            if len(out) >= limit:
                break
        return out

    def highest(self, limit: int) -> list[int]:
        """The highest ``limit`` numbers, lowest first."""
        out: list[int] = []
        for lo, hi in reversed(self._ranges):
            out[:0] = range(max(lo, hi - (limit - len(out)) + 1), hi + 1)
            if len(out) >= limit:
                break
        return out

    def show(self, limit: int = 20) -> str:
        """E.g. ``4, 5, 6`` or ``265–301, 305``: runs of more than three numbers as ranges,
        at most ``limit`` items, then how many numbers are not shown."""
        items: list[str] = []
        shown = 0
        for lo, hi in self._ranges:
            if len(items) >= limit:
                break
            if hi - lo < 3:
                part = [str(n) for n in range(lo, hi + 1)][: limit - len(items)]
                items += part
                shown += len(part)
            else:
                items.append(f"{lo}–{hi}")
                shown += hi - lo + 1
        rest = self._count - shown
        return ", ".join(items) + (f" … (+{rest})" if rest else "")


@dataclass(slots=True)
class PendingGap:
    """Numbers skipped by a jump, not yet reported (within the reorder window)."""

    top: int
    """The highest number of the gap when it opened: the reorder window counts from it."""
    numbers: LabelNumbers
    cause: Outage | None = None
    """The outage the skipped numbers were printed in, if they were printed in one."""


@dataclass(slots=True)
class ReportedGap:
    """A gap reported missing: one finding (and so one alert) of its own."""

    subject: str
    first: int
    last: int
    numbers: LabelNumbers
    """The numbers of the gap still missing."""
    cause: Outage | None
