"""The settings of a ℮ inspection batch, checked in one place.

The batch, the tracker that opens batches and the configuration's ``[rules]`` section all
take these settings; each calls the checks here, so they agree on what can make a batch.
A check is unit-free where it can be (a window is positive and finite in minutes as in
seconds), so the configuration checks its keys under their own names.
"""

from __future__ import annotations

import math

__all__ = [
    "check_batch_max_packs",
    "check_batch_settings",
    "check_batch_window",
    "check_min_packs",
]


def check_batch_window(window: float, name: str = "batch_seconds") -> None:
    """A batch's time window must be positive and finite (any unit); ValueError if not."""
    if not 0 < window < math.inf:
        raise ValueError(f"{name} must be positive and finite, got {window}")


def check_batch_max_packs(packs: int | None, name: str = "batch_max_packs") -> None:
    """A cap on a batch's packs, when given, must be positive; ValueError if not."""
    if packs is not None and packs <= 0:
        raise ValueError(f"{name} must be positive, got {packs}")


def check_min_packs(packs: int, name: str = "min_packs") -> None:
    """The packs before a running batch is judged: at least one; ValueError if not."""
    if packs < 1:
        raise ValueError(f"{name} must be at least 1, got {packs}")


def check_batch_settings(
    *, batch_seconds: float, batch_max_packs: int | None, min_packs: int
) -> None:
    """Check every setting of a batch; ValueError naming the first one that is wrong."""
    check_batch_window(batch_seconds)
    check_batch_max_packs(batch_max_packs)
    check_min_packs(min_packs)
