"""paho's network loop without ``select()``'s descriptor limit.

paho 2.x waits for its socket and its wake-up socket pair with ``select.select``, which cannot
watch a descriptor numbered 1024 (``FD_SETSIZE``) or above: it raises ``ValueError``, and
paho's loop takes that for a lost connection *without* calling ``on_disconnect`` or
``on_connect_fail``. The client then opens a new socket every reconnect delay, never sends its
CONNECT and reports nothing. A process holding more than about 1,000 descriptors (an ingest
with many HTTPS connections under a raised ``LimitNOFILE``, a fleet generator, a long test
process) had an MQTT client that silently never connected (docs/fleet-load.md).

:func:`install` gives paho's client module a ``select`` whose ``select()`` is built on
``poll(2)``, which has no such limit, with ``select``'s contract: the same arguments, the
objects passed in returned in the order given, readable and writable as Linux's ``select``
reports them (an error or hang-up counts as readable, an error as writable), ``TypeError``
for something that is not a descriptor, ``ValueError`` for a negative one (a closed socket),
and ``OSError(EBADF)`` for one that is not open. Everything else paho reads from ``select``
is the real module's.
"""

from __future__ import annotations

import errno
import math
import os
import select
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho_client

_READABLE = select.POLLIN | select.POLLRDNORM | select.POLLRDBAND | select.POLLHUP | select.POLLERR
_WRITABLE = select.POLLOUT | select.POLLWRNORM | select.POLLWRBAND | select.POLLERR
_EXCEPTIONAL = select.POLLPRI


def _descriptor(obj: Any) -> int:
    """``obj``'s descriptor, as ``select`` finds it: an int, or what ``fileno()`` returns."""
    fd = obj if isinstance(obj, int) else getattr(obj, "fileno", None)
    if callable(fd):
        fd = fd()
    if not isinstance(fd, int) or isinstance(fd, bool):
        raise TypeError(f"argument must be an int, or have a fileno() method: {obj!r}")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def poll_select(
    rlist: Sequence[Any],
    wlist: Sequence[Any],
    xlist: Sequence[Any],
    timeout: float | None = None,
) -> tuple[list[Any], list[Any], list[Any]]:
    """``select.select(rlist, wlist, xlist, timeout)``, for descriptors of any number."""
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be non-negative")
    wanted: dict[int, int] = {}
    for objects, events in ((rlist, select.POLLIN), (wlist, select.POLLOUT), (xlist, _EXCEPTIONAL)):
        for obj in objects:
            fd = _descriptor(obj)
            wanted[fd] = wanted.get(fd, 0) | events
    poller = select.poll()
    for fd, events in wanted.items():
        poller.register(fd, events)
    # poll counts milliseconds: round up, so a short wait is not a busy loop.
    ready = dict(poller.poll(None if timeout is None else math.ceil(timeout * 1000)))
    if any(events & select.POLLNVAL for events in ready.values()):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    return (
        [obj for obj in rlist if ready.get(_descriptor(obj), 0) & _READABLE],
        [obj for obj in wlist if ready.get(_descriptor(obj), 0) & _WRITABLE],
        [obj for obj in xlist if ready.get(_descriptor(obj), 0) & _EXCEPTIONAL],
    )


class _SelectOnPoll:
    """What paho's client module sees as ``select``: :func:`poll_select`, then the module."""

    select = staticmethod(poll_select)

    def __getattr__(self, name: str) -> Any:
        return getattr(select, name)


def install() -> None:
    """Make every paho client in this process wait on its sockets with ``poll`` (idempotent;
    call it before a client's network loop starts)."""
    if not isinstance(getattr(paho_client, "select"), _SelectOnPoll):  # noqa: B009
        setattr(paho_client, "select", _SelectOnPoll())  # noqa: B010 (a module's global)


__all__ = ["install", "poll_select"]
