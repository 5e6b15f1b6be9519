"""Every low descriptor number taken, so the next socket a test opens is numbered above 1023
(where ``select()`` cannot watch it)."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator

ABOVE = 1100
"""The next descriptor opened is numbered at least this."""


@contextlib.contextmanager
def low_descriptors_taken() -> Iterator[None]:
    """Open ``/dev/null`` until descriptor :data:`ABOVE` - 1 is taken (the soft limit raised
    for it if need be); everything is closed and the limit restored on the way out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * ABOVE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4 * ABOVE, hard), hard))
    held: list[int] = []
    try:
        while not held or held[-1] < ABOVE - 1:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
