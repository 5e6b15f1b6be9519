"""The authentication gate in front of the whole app (API and dashboard alike).

A pure ASGI middleware, so it covers every route the app serves, the dashboard's included,
without each route having to ask: a request is let through only when
:func:`central.api.auth.authenticate` names a reader, except on the public paths
(``/api/v1/health``; the dashboard may add its login page). A refusal is ``401`` with a
``WWW-Authenticate: Bearer`` challenge (RFC 6750 §3) and a JSON body; except for a browser
asking for a dashboard page (``Accept: text/html``, not under ``/api/``), which is sent to the
login form (``303``). The token itself is never logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import HTTPConnection

from central.api.auth import Refusal, authenticate
from central.api.settings import ApiSettings

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOG_EVERY_S = 10.0
"""Refusals from one address are logged at most this often."""
READER_KEY = "lineside.reader"
"""Where the authenticated reader's name is left in the request's scope."""


LOGIN_PATH = "/login"
"""Where a browser without a session is sent (the dashboard's login form)."""


def wants_page(scope: Scope) -> bool:
    """A browser asking for a page: ``Accept`` names ``text/html`` and the path is not the
    API's. API clients (``/api/`` paths, or JSON asked for) get the 401 and its challenge."""
    if str(scope.get("path", "")).startswith("/api/") or scope.get("method") not in ("GET", "HEAD"):
        return False
    accept = b",".join(v for k, v in scope.get("headers", ()) if k == b"accept").decode("latin-1")
    return "text/html" in accept.lower()


class AuthGate:
    """``AuthGate(app, settings, public=...)``: only authenticated requests reach ``app``."""

    def __init__(self, app: ASGIApp, *, settings: ApiSettings, public: frozenset[str]) -> None:
        self.app = app
        self.settings = settings
        self.public = public
        self._logged: dict[str, tuple[float, int]] = {}

    def _log_refusal(self, scope: Scope, refusal: Refusal) -> None:
        """At most one line per client address every :data:`LOG_EVERY_S` (with a count of
        the refusals in between): a client retrying without a token must not flood the log."""
        client = scope.get("client")
        address = str(client[0]) if client else "?"
        now = time.monotonic()
        last, suppressed = self._logged.get(address, (-LOG_EVERY_S, 0))
        if now - last < LOG_EVERY_S:
            self._logged[address] = (last, suppressed + 1)
            return
        if len(self._logged) > 10_000:  # many addresses: forget the old ones
            self._logged.clear()
        self._logged[address] = (now, 0)
        more = f" (and {suppressed} more since)" if suppressed else ""
        path = ascii(str(scope["path"])[:200])  # a path is the client's text: never raw in a log
        logger.warning("refused %s from %s: %s%s", path, address, refusal.reason, more)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        outcome = await authenticate(HTTPConnection(scope), self.settings)
        if isinstance(outcome, Refusal):
            await self._refuse(scope, send, outcome)
            return
        scope[READER_KEY] = outcome
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, refusal: Refusal) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        self._log_refusal(scope, refusal)
        if wants_page(scope):
            # A person at a browser: the login form, not a JSON error (docs/dashboard.md).
            headers = [
                (b"location", LOGIN_PATH.encode()),
                (b"content-length", b"0"),
                (b"cache-control", b"no-store"),
            ]
            await send({"type": "http.response.start", "status": 303, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = json.dumps({"error": "unauthorized", "reason": refusal.reason}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", refusal.challenge.encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
