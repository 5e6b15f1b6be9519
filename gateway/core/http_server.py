"""What the project's HTTP servers share: uvicorn kept off the process's signals, one set of
uvicorn options, and a listening socket bound by us (so a taken port is an error we handle,
not uvicorn's exit).

Used by the central ingest (:mod:`sync.ingest.service`), the gateway's health endpoint
(:mod:`gateway.health`) and the ERP simulator (:mod:`adapters.erp.simulator_asgi`). In the
core because the adapters and sync may both use it but not each other.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn


class QuietServer(uvicorn.Server):
    """uvicorn without its SIGINT/SIGTERM handlers: the process owner handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave the process's signal handlers alone."""
        yield


def server_config(
    app: Any, *, graceful_s: int, limit_concurrency: int, **options: Any
) -> uvicorn.Config:
    """A uvicorn config for an ASGI app served on a socket of ours (:func:`bind_tcp`).

    What every server here shares: no lifespan or websockets, uvicorn's logging and access
    log off (our own logging reports what matters, and never a token from a request), no
    ``Server`` header, a bounded graceful shutdown, and ``limit_concurrency``: beyond it a
    request is refused with 503 rather than queued, which bounds the memory. ``options``
    adds the rest (TLS files, keep-alive).
    """
    return uvicorn.Config(
        app,
        interface="asgi3",
        lifespan="off",
        ws="none",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=graceful_s,
        limit_concurrency=limit_concurrency,
        **options,
    )


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


__all__ = ["QuietServer", "bind_tcp", "server_config"]
