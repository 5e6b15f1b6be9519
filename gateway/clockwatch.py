"""Noticing a stepped wall clock (docs/reference/reliability.md §7 row 14).

NTP (or an operator, or a box that booted without a real-time clock) can step the wall clock
backwards or forwards at any moment. Timers, retries and timeouts use the monotonic clock and
are not affected; record timestamps are wall time and are. :class:`ClockWatch` wraps the
gateway's :class:`~gateway.core.clock.Clock` and compares the two on every wall-clock read: the
offset between them moves slowly when NTP slews the clock, and jumps when the clock is
stepped. A jump larger than ``threshold_s`` is a step:

* ``on_step`` is called once with a :class:`ClockStep` (the service records a ``clock_step``
  device event, flagged ``TIME_UNCERTAIN`` itself, and logs a warning);
* for a while afterwards :meth:`ClockWatch.time_uncertain` is true, and the pipeline flags
  every record it queues with :attr:`~gateway.core.records.RecordFlag.TIME_UNCERTAIN`: for
  ``uncertain_s`` after a forward step, and after a backward step for as long as the
  repeated stretch of wall time lasts (the step's size, at least ``uncertain_s``, at most
  :data:`MAX_UNCERTAIN_S`), since those timestamps overlap ones already stored.

Nothing is dropped, reordered or re-stamped: records keep the wall time they were stamped
with, and the sequence number (not the time) stays their identity and order. The wall clock
is read by every adapter and by the rules tick once a second, so a step is noticed within
about a second even on an idle line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from gateway.core.clock import Clock

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD_S = 2.0
"""A change in the wall-minus-monotonic offset beyond this is a step, not a slew (NTP slews
at most 500 ppm: 0.03 s a minute)."""
DEFAULT_UNCERTAIN_S = 60.0
MAX_UNCERTAIN_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ClockStep:
    """One step of the wall clock, as noticed."""

    step_s: float
    """How far the wall clock jumped (negative: backwards)."""
    before_us: int
    """The wall time it would have read without the step."""
    after_us: int
    """The wall time it read after the step."""
    uncertain_s: float
    """How long records are flagged ``TIME_UNCERTAIN`` from now on."""


class ClockWatch:
    """A :class:`~gateway.core.clock.Clock` that notices steps of the wall clock it wraps."""

    def __init__(
        self,
        clock: Clock,
        *,
        threshold_s: float = DEFAULT_THRESHOLD_S,
        uncertain_s: float = DEFAULT_UNCERTAIN_S,
        on_step: Callable[[ClockStep], object] | None = None,
    ) -> None:
        self.clock = clock
        self.threshold_us = round(threshold_s * 1_000_000)
        self.uncertain_s = uncertain_s
        self.on_step = on_step
        self.steps: list[ClockStep] = []
        self._offset_us: int | None = None
        self._uncertain_until = float("-inf")

    def wall_us(self) -> int:
        """The wrapped clock's wall time; a step since the last read is noticed here."""
        wall = self.clock.wall_us()
        mono = self.clock.monotonic()
        offset = wall - round(mono * 1_000_000)
        previous, self._offset_us = self._offset_us, offset
        if previous is not None and abs(offset - previous) > self.threshold_us:
            self._stepped(offset - previous, wall, mono)
        return wall

    def monotonic(self) -> float:
        """The wrapped clock's monotonic time."""
        return self.clock.monotonic()

    def time_uncertain(self) -> bool:
        """Whether records stamped now are to be flagged ``TIME_UNCERTAIN``."""
        return self.clock.monotonic() < self._uncertain_until

    def _stepped(self, step_us: int, wall: int, mono: float) -> None:
        step_s = step_us / 1_000_000
        window = self.uncertain_s
        if step_s < 0:
            window = min(max(window, -step_s), MAX_UNCERTAIN_S)
        self._uncertain_until = max(self._uncertain_until, mono + window)
        step = ClockStep(step_s, wall - step_us, wall, window)
        self.steps.append(step)
        log.warning(
            "the wall clock was stepped by %+.3f s; records of the next %.0f s are flagged "
            "time_uncertain",
            step_s,
            window,
        )
        if self.on_step is not None:
            self.on_step(step)
