"""Open descriptors for a fleet of MQTT clients in one process.

paho's own network loop waits on its sockets with ``select()``, which cannot watch a
descriptor numbered 1024 or above: a client whose socket got such a number never received its
CONNACK and retried for ever. Lineside's clients now give paho a ``select()`` on ``poll()``
(:mod:`sync.paho_poll`), so that limit no longer binds them; the fleet still opens its stores
while the low numbers are held (:func:`descriptors_kept_low`), which is harmless, and the
tests use the same helper to put a client's sockets above 1023 (docs/fleet-load.md).
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator

SELECT_LIMIT = 1024
"""paho's network loop waits with ``select()``, which cannot watch a descriptor numbered
this or higher: such a client never connects. Real gateways have one client each; a fleet
in one process has hundreds, so it opens its stores above the numbers its sockets need."""

SOCKETS_PER_CLIENT = 3
"""An MQTT client's connection plus the socket pair paho wakes its loop with."""


@contextlib.contextmanager
def descriptors_kept_low(below: int) -> Iterator[None]:
    """Hold every free descriptor number under ``below`` while the block runs, so the files
    it opens (and keeps open) get higher numbers; the low ones are free again after it, for
    the sockets opened later (a new descriptor always takes the lowest free number)."""
    held: list[int] = []
    try:
        while below > 0:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd >= below - 1:
                break
        yield
    finally:
        for fd in held:
            os.close(fd)


def raise_fd_limit() -> int:
    """Lift the soft limit of open files to the hard one; the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def sockets_below(gateways: int) -> int:
    """The descriptor numbers to keep free for ``gateways`` MQTT clients' sockets."""
    return min(SELECT_LIMIT - 64, SOCKETS_PER_CLIENT * gateways + 64)
