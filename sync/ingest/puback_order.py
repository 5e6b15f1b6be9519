"""Releasing PUBACKs in the order the PUBLISHes arrived, whatever order their batches commit in.

MQTT 5 §4.6: a client acknowledges QoS 1 PUBLISHes in the order it received them. The
ingest commits several batches at once, and a small one may commit before a large one that
arrived earlier; its PUBACK then waits here until every earlier message is done. Pure: no
I/O, no clock.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class ArrivalOrder(Generic[T]):
    """Numbers messages as they arrive and hands them back, once done, in that order.

    Every number :meth:`arrived` gave out must come back through :meth:`done` (also for a
    message that needs no PUBACK), or the ones after it wait forever.
    """

    def __init__(self) -> None:
        self._next_arrival = 0
        self._next_release = 0
        self._done: dict[int, T] = {}

    def arrived(self) -> int:
        """The arrival number of the next message."""
        number = self._next_arrival
        self._next_arrival += 1
        return number

    def done(self, number: int, item: T) -> list[T]:
        """Message ``number`` is done: the messages that may now be acknowledged, in order."""
        if number < self._next_release or number >= self._next_arrival or number in self._done:
            raise ValueError(f"arrival {number} is not waiting")
        self._done[number] = item
        released: list[T] = []
        while self._next_release in self._done:
            released.append(self._done.pop(self._next_release))
            self._next_release += 1
        return released

    @property
    def waiting(self) -> int:
        """Messages done but held back behind an earlier one still in progress."""
        return len(self._done)


__all__ = ["ArrivalOrder"]
