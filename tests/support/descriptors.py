"""Every low descriptor number taken, so the next socket a test opens is numbered above 1023
(where ``select()`` cannot watch it)."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator

from bench.fleet_descriptors import descriptors_kept_low

ABOVE = 1100
"""The next descriptor opened is numbered at least this."""


@contextlib.contextmanager
def low_descriptors_taken() -> Iterator[None]:
    """:func:`~bench.fleet_descriptors.descriptors_kept_low` below :data:`ABOVE`, with the soft
    limit of open files raised for it if need be and restored on the way out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * ABOVE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4 * ABOVE, hard), hard))
    try:
        with descriptors_kept_low(ABOVE):
            yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
