"""The poll grid shared by the polling adapters (pure)."""

from __future__ import annotations

import math


def next_due(previous: float, now: float, interval: float) -> float:
    """The next slot on the poll grid after ``now`` (missed slots are skipped, not caught up).

    Slots are ``start + k * interval``, so the schedule never drifts by the time a cycle takes.
    """
    due = previous + interval
    if due <= now:
        due += (math.floor((now - due) / interval) + 1) * interval
    return due
