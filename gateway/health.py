"""The gateway's local HTTP endpoint: ``/healthz``, ``/readyz`` and ``/metrics``.

Configured by ``[health]`` (host, default 127.0.0.1, and port); without that section no
port is opened. :meth:`HealthServer.serve` runs as one task of the gateway's TaskGroup and
reads everything from the live :class:`~gateway.status.GatewayStatus`:

``GET /healthz``
    ``200 {"status": "alive"}`` whenever the event loop answers. It touches nothing else:
    a process whose loop is stuck does not answer at all (and systemd's watchdog restarts
    it), a process that answers is alive.
``GET /readyz``
    ``200`` when the store is writable (state ``ok``) and, per ``require_devices`` and
    ``require_uplink``, every enabled device is connected (``up`` or ``degraded``) and the
    uplink is connected; otherwise ``503``. The JSON body lists each check with what is
    wrong (a device's last error, the uplink's state). The MQTT uplink is connected when
    it is ``up`` or ``degraded`` (connected, acks late). The HTTPS uplink has no standing
    connection: it counts as connected unless its last POST got no answer (``down``).
``GET /metrics``
    The Prometheus text format, see :mod:`gateway.metrics`.

Anything else is ``404`` (``405`` for a method other than GET/HEAD). Error texts in the
``/readyz`` body pass through the same redaction as the log, so a configured secret that
ended up in an exception message is not served either.

The server is uvicorn (already a dependency: the central ingest and the ERP simulator use
it) around a small ASGI app, rather than a hand-written HTTP parser: keep-alive, malformed
or slow requests and a concurrency limit are handled by a maintained server. It is kept
from installing signal handlers, which belong to the gateway. A port that cannot be bound
(taken by another program) is logged and retried with backoff: recording must not stop
because the health port is busy, and ``/readyz`` not answering makes the problem visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from gateway.config import HealthSection
from gateway.core.backoff import Backoff
from gateway.core.http_server import QuietServer, bind_tcp, server_config
from gateway.core.link import LinkState
from gateway.logs import REDACTED
from gateway.metrics import CONTENT_TYPE, GatewayMetrics
from gateway.status import GatewayStatus
from gateway.store import StoreState

log = logging.getLogger(__name__)

STATUS_TIMEOUT_S = 5.0
"""``/readyz`` and ``/metrics`` answer 503 when the status takes longer than this (the
store's writer connection is busy or stuck)."""

CONNECTED = frozenset({str(LinkState.UP), str(LinkState.DEGRADED)})
"""Link states that count as connected for readiness."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class HealthServer:
    """Serves ``/healthz``, ``/readyz`` and ``/metrics`` for one running gateway.

    Run :meth:`serve` as a task; cancel it to stop. :attr:`port` is the bound port.
    """

    def __init__(
        self,
        settings: HealthSection,
        status: GatewayStatus,
        *,
        secrets: Iterable[str] = (),
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self.status = status
        self.metrics = GatewayMetrics(status)
        self.backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        self.port: int | None = None
        self._secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    # ---------------------------------------------------------------- serving

    async def serve(self) -> None:
        """Listen and answer until cancelled; binding is retried while the port is taken."""
        host, port = self.settings.host, self.settings.port
        while True:
            try:
                sock = bind_tcp(host, port)
            except OSError as exc:
                delay = self.backoff.next_delay()
                log.error(
                    "health: cannot listen on %s:%d (%s); retrying in %.0f s",
                    host,
                    port,
                    exc.strerror or exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self.backoff.reset()
            self.port = int(sock.getsockname()[1])
            log.info(
                "health: listening on http://%s:%d (/healthz, /readyz, /metrics)", host, self.port
            )
            await self._serve_on(sock)
            # uvicorn stopped by itself (it should not): listen again after a pause.
            log.error("health: the HTTP server stopped; starting it again")
            await asyncio.sleep(self.backoff.next_delay())

    async def _serve_on(self, sock: socket.socket) -> None:
        app: Any = self
        # A scraper and a probe or two: anything beyond is refused, not queued.
        config = server_config(app, graceful_s=1, limit_concurrency=16, timeout_keep_alive=5)
        server = QuietServer(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="health.uvicorn")
        try:
            await asyncio.shield(serving)
        finally:
            if not serving.done():
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await serving
            sock.close()

    # ---------------------------------------------------------------- the app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3 entry point."""
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path not in ("/healthz", "/readyz", "/metrics"):
            await _answer(send, 404, {"error": "not found", "paths": _PATHS})
            return
        if method not in ("GET", "HEAD"):
            await _answer(send, 405, {"error": "method not allowed"}, allow="GET, HEAD")
            return
        head = method == "HEAD"
        if path == "/healthz":
            await _answer(send, 200, {"status": "alive"}, head=head)
            return
        try:
            async with asyncio.timeout(STATUS_TIMEOUT_S):
                if path == "/metrics":
                    body = await self.metrics.render()
                    await _send(send, 200, body, CONTENT_TYPE, head=head)
                    return
                ready, checks = await self.readiness()
        except TimeoutError:
            await _answer(send, 503, {"ready": False, "error": "status not available in time"})
            return
        await _answer(send, 200 if ready else 503, {"ready": ready, "checks": checks}, head=head)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the gateway is ready, and each check with what is wrong."""
        system = (await self.status.snapshot())["system"]
        checks: dict[str, Any] = {}
        store_state = system["store"]["state"]
        checks["store"] = {
            "ok": store_state == str(StoreState.OK),
            "state": store_state,
            "pending": system["store"]["pending"],
        }
        not_connected = [
            {"id": d["id"], "state": d["state"], "last_error": self._redact(d["last_error"])}
            for d in system["devices"]
            if d["state"] != str(LinkState.DISABLED) and d["state"] not in CONNECTED
        ]
        checks["devices"] = {
            "ok": not (self.settings.require_devices and not_connected),
            "required": self.settings.require_devices,
            "not_connected": not_connected,
        }
        uplink = system["uplink"]
        if uplink is None:
            checks["uplink"] = {"ok": True, "required": False, "state": "not configured"}
        else:
            state = uplink["state"]
            if uplink["kind"] == "https":
                # No standing connection: only a POST that got no answer says it is down.
                connected = state != str(LinkState.DOWN)
            else:
                connected = state in CONNECTED
            checks["uplink"] = {
                "ok": connected or not self.settings.require_uplink,
                "required": self.settings.require_uplink,
                "kind": uplink["kind"],
                "state": state,
                "last_error": self._redact(uplink["last_error"]),
            }
        return all(check["ok"] for check in checks.values()), checks

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


_PATHS = ["/healthz", "/readyz", "/metrics"]


async def _answer(
    send: Send, status: int, body: dict[str, Any], *, head: bool = False, allow: str = ""
) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode() + b"\n"
    await _send(send, status, payload, "application/json", head=head, allow=allow)


async def _send(
    send: Send, status: int, body: bytes, content_type: str, *, head: bool, allow: str = ""
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


__all__ = ["HealthServer"]
