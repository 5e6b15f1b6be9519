"""The ASGI plumbing of the ERP simulator: message types, plain and JSON answers, a watch
for the client going away, and serving it with the project's one uvicorn set-up
(:mod:`gateway.core.http_server`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from gateway.core.http_server import QuietServer, server_config

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class DisconnectWatch:
    """Sets an event when the client goes away (ASGI ``http.disconnect``)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._gone = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> asyncio.Event:
        self._task = asyncio.create_task(self._watch(), name="simulator[erp].disconnect-watch")
        return self._gone

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._gone.set()
                return


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def respond_json(
    send: Send,
    status: int,
    payload: object,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(payload, allow_nan=False).encode()
    await respond(send, status, body, b"application/json", extra_headers)


async def serve_in_background(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    sock: socket.socket,
    *,
    certfile: Path | str | None,
    keyfile: Path | str | None,
    name: str,
) -> tuple[QuietServer, asyncio.Task[None]]:
    """Serve ``app`` on ``sock`` (HTTPS with ``certfile`` and ``keyfile``) in a task and
    return once uvicorn accepts connections; stop it with ``should_exit`` and await the task."""
    host, port = sock.getsockname()[:2]
    config = server_config(
        app,
        graceful_s=2,
        # A test peer, not a bound on the gateway: wide enough for every fault test's
        # held-open requests.
        limit_concurrency=1000,
        host=host,
        port=port,
        log_level="warning",
        ssl_certfile=str(certfile) if certfile is not None else None,
        ssl_keyfile=str(keyfile) if keyfile is not None else None,
    )
    server = QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name=name)
    # Wait for uvicorn to accept connections; a failed start ends the task early.
    while not server.started:
        if serving.done():
            await serving  # raises the start-up error
            raise RuntimeError("ERP simulator stopped during start-up")
        await asyncio.sleep(0.01)
    return server, serving
