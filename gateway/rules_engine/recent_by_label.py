"""A bounded memory of recent packs by (line, label number), oldest forgotten first.

The rules keep the weight and the product of the last :data:`~gateway.rules_engine.state.
PACKS_REMEMBERED` packs, to check each label against its own pack. A busy gateway holds that
many within its first hour, and again right after every restart (the rules are rebuilt from
the store), so the cost of one entry is part of the gateway's steady memory
(docs/benchmarks.md, figure 6). An ``OrderedDict`` keyed by a ``(line, number)`` tuple cost
about 225 bytes an entry, its number and value included; a plain dict per line keyed by the
number alone, with the order in two queues, costs about 130 (tracemalloc over 10,000
entries held, 5,000 more forgotten), and forgetting stays O(1).

The queue of lines says which line the oldest entry of all belongs to; that line's queue of
numbers says which of its numbers it is. Overwriting a number that is still remembered keeps
its place, as an ``OrderedDict`` does.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

V = TypeVar("V")


class RecentByLabel(Generic[V]):
    """Values by (line, label number); the ``limit`` newest kept."""

    __slots__ = ("_by_line", "_limit", "_order")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be positive")
        self._limit = limit
        self._by_line: dict[str, tuple[dict[int, V], deque[int]]] = {}
        """Per line: its values by number, and its numbers oldest first."""
        self._order: deque[str] = deque()
        """The line of every entry, oldest first."""

    def put(self, line: str, number: int, value: V) -> None:
        """Remember ``value`` for the label ``number`` of ``line``; forget the oldest entry
        when more than ``limit`` are held."""
        held = self._by_line.get(line)
        if held is None:
            held = self._by_line[line] = ({}, deque())
        values, numbers = held
        if number not in values:
            numbers.append(number)
            self._order.append(line)
        values[number] = value
        if len(self._order) > self._limit:
            oldest_line = self._order.popleft()
            oldest_values, oldest_numbers = self._by_line[oldest_line]
            del oldest_values[oldest_numbers.popleft()]
            if not oldest_numbers:
                del self._by_line[oldest_line]

    def get(self, line: str, number: int) -> V | None:
        """The value remembered for that label, if it still is."""
        held = self._by_line.get(line)
        return None if held is None else held[0].get(number)

    def __len__(self) -> int:
        return len(self._order)


__all__ = ["RecentByLabel"]
