"""The cyclic garbage collector's settings for the central ingest (``lineside ingest``),
applied once when the process starts, by its command, not by the code tests run in their own
process.

Why: the ingest allocates many short-lived objects per record (a decoded batch of 2,000
records is some 20,000 dicts, strings and tuples alive at once), and CPython's default first
threshold of 700 allocations runs a collection many times over each batch, each one walking
the whole batch and moving it to an older generation, only for reference counting to free it
a moment later. Records hold no reference cycles, so those walks find nothing. A threshold
of 20,000 lets a batch live and die between collections. Measured in the ingest's commit of
2,000-temperature batches: about 1 µs less CPU per record (5 %); bench/optimisations.json.

``gc.freeze()`` moves what exists at start (modules, classes, settings) out of the
collector's sight, so a full collection no longer walks it again and again.

Not for the gateway (``lineside run``): there the same settings held cyclic garbage longer
and its RSS grew 2.5 MiB instead of 1.4 in the bench's 120 s memory window, against a memory
goal it meets with little room (docs/benchmarks.md).
"""

from __future__ import annotations

import gc

FIRST_THRESHOLD = 20_000
"""Allocations (less deallocations) between collections of the youngest generation."""


def settle_collector() -> None:
    """Freeze what the process has built so far and widen the first threshold."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_THRESHOLD, second, third)


__all__ = ["FIRST_THRESHOLD", "settle_collector"]
