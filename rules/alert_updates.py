"""When a change to an open alert is worth publishing (an UPDATED transition).

An alert stands for a condition, not for each event or pack that shows it (docs/alarms.md
§2). The book folds every finding into its open alert (the live view always shows the
latest message, value and occurrence count), but the store, the alerts topic and the
warehouse get an UPDATED transition only for a change that matters:

* a new **severity** (an escalation is a new demand on the operator): at once;
* a finding with a **value** (the figure its message shows): when the value has moved by
  at least the finding's ``deadband`` from the value last published. A deadband of 0 marks
  a count of discrete things (labels still missing, packs below T2): every change, at once.
  A deadband above 0 marks a measurement (giveaway %, running mean, °C), whose updates are
  also held off for :data:`UPDATE_HOLDOFF_US` after the last one, so a noisy signal crossing
  its deadband back and forth publishes at most once a minute; a move still standing when
  the hold-off ends is published then (at the next finding or tick);
* an **event** finding (each one is one more occurrence: a label, a read): when the
  occurrence count reaches the next step of the 1-2-5 series (2, 5, 10, 20, 50, 100, ...),
  so a condition repeated 600 times is published 8 times, not 600;
* any other finding (a condition reported on its own transitions, e.g. a sensor's set of
  faults): when its message, severity or detail changed, at once (as before).

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from rules.model import Severity

__all__ = ["UPDATE_HOLDOFF_US", "Published", "count_steps_crossed", "update_due"]

UPDATE_HOLDOFF_US: Final = 60_000_000
"""A measured value's updates are at least this far apart (docs/alarms.md §2)."""

Due = Literal["now", "later", "no"]
_EPSILON: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Published:
    """What the last RAISED or UPDATED transition of an alert said."""

    severity: Severity
    value: float | None
    occurrences: int
    ts_us: int


def _next_step(n: int) -> int:
    """The smallest step of the 1-2-5 series above ``n`` (n >= 0)."""
    decade = 1
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * decade > n:
                return mantissa * decade
        decade *= 10


def count_steps_crossed(before: int, after: int) -> bool:
    """Whether a count went from ``before`` to ``after`` through a 1-2-5 step
    (1, 2, 5, 10, 20, 50, ...): ``before < step <= after``."""
    return after > before and _next_step(before) <= after


def update_due(
    published: Published,
    *,
    severity: Severity,
    value: float | None,
    deadband: float,
    event: bool,
    occurrences: int,
    changed: bool,
    now_us: int,
) -> Due:
    """Whether the alert's latest state is to be published: ``"now"``, ``"later"`` (a
    measured move inside the hold-off: ask again at the next finding or tick) or ``"no"``.

    ``changed`` says whether the message or detail differ from the last published ones;
    it decides only for findings without a value that are not events.
    """
    if severity != published.severity:
        return "now"
    if value is not None:
        if published.value is None:
            moved = True
        elif deadband > 0:
            # Values are decimals shown as floats: 4.1 - 3.6 is 0.4999… in binary.
            moved = abs(value - published.value) >= deadband - _EPSILON
        else:
            moved = value != published.value
        if not moved:
            return "no"
        if deadband > 0 and now_us - published.ts_us < UPDATE_HOLDOFF_US:
            return "later"
        return "now"
    if event:
        return "now" if count_steps_crossed(published.occurrences, occurrences) else "no"
    return "now" if changed else "no"
