"""Clocks. Code that needs the time takes a :class:`Clock`, so tests can drive it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall time for timestamps, monotonic time for timers and timeouts."""

    def wall_us(self) -> int:
        """Microseconds since the Unix epoch (UTC); may jump when the clock is stepped."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def wall_us(self) -> int:
        """Microseconds since the Unix epoch from ``time.time_ns``."""
        return time.time_ns() // 1000

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, wall_us: int = 1_767_225_600_000_000, monotonic: float = 0.0) -> None:
        self._wall_us = wall_us
        self._monotonic = monotonic

    def wall_us(self) -> int:
        """The current manual wall time."""
        return self._wall_us

    def monotonic(self) -> float:
        """The current manual monotonic time."""
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self._monotonic += seconds
        self._wall_us += round(seconds * 1_000_000)

    def step_wall(self, seconds: float) -> None:
        """Step only the wall clock (as NTP does), forwards or backwards."""
        self._wall_us += round(seconds * 1_000_000)
