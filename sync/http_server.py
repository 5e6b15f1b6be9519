"""What the project's HTTP servers share: uvicorn kept off the process's signals, and a
listening socket bound by us (so a taken port is an error we handle, not uvicorn's exit).

Used by the central ingest (:mod:`sync.ingest.service`) and the gateway's health endpoint
(:mod:`gateway.health`).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn


class QuietServer(uvicorn.Server):
    """uvicorn without its SIGINT/SIGTERM handlers: the process owner handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave the process's signal handlers alone."""
        yield


def bind_tcp(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), for ``Server.serve``.

    ``SO_REUSEADDR``: a restarted process must get its port back while connections of the
    previous one linger in TIME_WAIT.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


__all__ = ["QuietServer", "bind_tcp"]
