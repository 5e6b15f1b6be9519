"""Serving the API with uvicorn (``lineside warehouse serve``): our socket, our signals.

The same server setup as the ingest (gateway/core/http_server.py): uvicorn kept off the
process's signals, its access log off (a URL may name a batch code or serial, and the
token must never be logged), ``limit_concurrency`` so a burst is refused with 503 rather
than queued without bound, and TLS from the settings: a certificate and key for HTTPS, and
with ``tls_client_ca`` a client certificate required at the handshake (``CERT_REQUIRED``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from central.api.app import create_app
from central.api.settings import ApiSettings
from central.reader import WarehouseReader
from gateway.core.http_server import QuietServer, bind_tcp, server_config

logger = logging.getLogger(__name__)

CONCURRENT_REQUESTS = 64
"""Requests served at once; beyond, uvicorn answers 503 (each holds a warehouse connection)."""


def tls_options(settings: ApiSettings) -> dict[str, Any]:
    """uvicorn's TLS options for ``settings`` (empty: plain HTTP)."""
    if settings.tls_cert is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_cert),
        "ssl_keyfile": str(settings.tls_key),
    }
    if settings.tls_client_ca is not None:
        options["ssl_ca_certs"] = str(settings.tls_client_ca)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options


async def serve(
    reader_factory: Callable[[], WarehouseReader],
    settings: ApiSettings,
    *,
    bound: Callable[[int], None] | None = None,
) -> None:
    """Serve the API until cancelled; ``bound`` is told the port once it listens."""
    app: Any = create_app(reader_factory, settings)
    sock: socket.socket = bind_tcp(settings.host, settings.port)
    port = int(sock.getsockname()[1])
    config = server_config(
        app, graceful_s=5, limit_concurrency=CONCURRENT_REQUESTS, **tls_options(settings)
    )
    server = QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    scheme = "https" if settings.tls_cert else "http"
    logger.info("warehouse API on %s://%s:%d/api/v1", scheme, settings.host, port)
    if bound is not None:
        bound(port)
    try:
        await asyncio.shield(serving)
    finally:
        if not serving.done():
            server.should_exit = True
            await serving
        sock.close()
