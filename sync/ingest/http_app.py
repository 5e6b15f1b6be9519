"""The HTTPS side of the ingest: a plain ASGI application (served by uvicorn).

``POST /v1/ingest``
    ``Authorization: Bearer <token>``: the gateway's own token (:mod:`sync.ingest.auth`),
    checked before the body is read. Body: :func:`~sync.protocol.encode_batch` bytes,
    ``Content-Encoding: deflate``;
    ``Idempotency-Key: <batch_id>`` (draft-ietf-httpapi-idempotency-key-header; a quoted
    structured-field string is accepted too) must equal the body's batch id. The batch is
    committed BEFORE the answer: ``200`` with :func:`~sync.protocol.encode_ack` JSON. A retry
    with the same key after an ambiguous failure commits nothing new and gets the same ack
    (the warehouse dedupes on ``(gateway, seq)``; the ack is derived from what is stored, so
    no response cache is needed).

    Errors (JSON ``{"error": ..., "reason": ...}``): ``401`` (``WWW-Authenticate: Bearer``)
    no token, or one that proves no gateway; ``403`` a batch of another gateway than the
    token's (nothing of it is stored); ``400`` a protocol error (malformed body, missing or
    mismatched Idempotency-Key, an unknown stream); ``422`` an Idempotency-Key already used
    for a batch with other content (draft-ietf-httpapi-idempotency-key-header §2.7; nothing
    stored); ``413`` a body above the limit; ``415`` a body that is not ``deflate``-encoded;
    ``405`` another method (with ``Allow``); ``503`` (``Retry-After``) the warehouse is
    temporarily unavailable; ``500`` it refused the batch. Every refusal is logged (at most
    one line per reason and client address every :data:`LOG_EVERY_S` seconds, with a count).

``GET /v1/healthz``
    ``200 {"status": "ok", ...}`` when the warehouse answers a query, ``503`` otherwise.

Serve it over TLS (``lineside ingest --http-tls-cert/--http-tls-key``, optionally
``--http-tls-client-ca`` to require client certificates as well, or behind a TLS proxy): the
token is a bearer secret and must never cross the network in clear.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from sync.ingest.auth import TokenFile
from sync.ingest.warehouse import (
    IdempotencyKeyReused,
    Warehouse,
    WarehouseError,
    WarehouseUnavailable,
    decode_message,
)
from sync.protocol import MAX_BATCH_BYTES, ProtocolError, encode_ack

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

INGEST_PATH = "/v1/ingest"
HEALTH_PATH = "/v1/healthz"
LOG_EVERY_S = 10.0
"""Refusals of one kind from one address are logged at most this often (with a count)."""
_CHALLENGE = {"www-authenticate": 'Bearer realm="lineside-ingest"'}
_INVALID_TOKEN = {"www-authenticate": 'Bearer realm="lineside-ingest", error="invalid_token"'}


@dataclass(slots=True)
class HttpStats:
    """Counters since start."""

    requests: int = 0
    committed: int = 0
    bad_requests: int = 0
    too_large: int = 0
    unavailable: int = 0
    unauthorized: int = 0
    """401: no token, or one that proves no gateway."""
    forbidden: int = 0
    """403: a batch in another gateway's name than the token's."""
    key_reused: int = 0
    """422: an Idempotency-Key reused for other content."""


class _Reject(Exception):
    def __init__(self, status: int, error: str, reason: str, headers: Mapping[str, str]) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason, self.headers = status, error, reason, headers


def _reject(
    status: int, error: str, reason: str, headers: Mapping[str, str] | None = None
) -> _Reject:
    return _Reject(status, error, reason, headers or {})


class IngestApp:
    """ASGI 3 application: ``IngestApp(warehouse)``."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        tokens: TokenFile | None = None,
        max_body: int = MAX_BATCH_BYTES,
        status: Callable[[], Mapping[str, object]] | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.tokens = tokens
        """Who may post; None: nobody (every POST is answered 401)."""
        self.max_body = max_body
        self.stats = HttpStats()
        self._status = status
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if kind != "http":
            return
        self.stats.requests += 1
        path, method = scope["path"], scope["method"]
        try:
            if path == INGEST_PATH:
                if method != "POST":
                    raise _reject(405, "method_not_allowed", method, {"allow": "POST"})
                await self._ingest(scope, receive, send)
            elif path == HEALTH_PATH:
                if method not in ("GET", "HEAD"):
                    raise _reject(405, "method_not_allowed", method, {"allow": "GET, HEAD"})
                await self._health(send, head=method == "HEAD")
            else:
                raise _reject(404, "not_found", path)
        except _Reject as exc:
            if exc.status in (400, 415):
                self.stats.bad_requests += 1
            if exc.status >= 400 and exc.status not in (404, 405, 503):
                self._log_refusal(scope, exc)
            await _json(send, exc.status, {"error": exc.error, "reason": exc.reason}, exc.headers)

    def _log_refusal(self, scope: Scope, exc: _Reject) -> None:
        client = scope.get("client")
        address = str(client[0]) if client else "?"
        now = time.monotonic()
        last, suppressed = self._logged.get((exc.error, address), (-LOG_EVERY_S, 0))
        if now - last < LOG_EVERY_S:
            self._logged[(exc.error, address)] = (last, suppressed + 1)
            return
        if len(self._logged) > 10_000:  # many addresses: forget the old ones
            self._logged.clear()
        self._logged[(exc.error, address)] = (now, 0)
        more = f" (and {suppressed} more like it)" if suppressed else ""
        logger.warning(
            "refused POST %s from %s: %d %s: %s%s",
            INGEST_PATH,
            address,
            exc.status,
            exc.error,
            exc.reason,
            more,
        )

    async def _authenticate(self, headers: Mapping[str, str]) -> str:
        """The gateway the request's bearer token proves, or a 401."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            self.stats.unauthorized += 1
            raise _reject(401, "unauthorized", "a gateway bearer token is required", _CHALLENGE)
        if self.tokens is None:
            self.stats.unauthorized += 1
            raise _reject(401, "unauthorized", "no gateway tokens are configured", _CHALLENGE)
        # scrypt hashes take tens of milliseconds: off the event loop.
        gateway = await asyncio.to_thread(self.tokens.authenticate, token)
        if gateway is None:
            self.stats.unauthorized += 1
            raise _reject(401, "unauthorized", "the token proves no gateway", _INVALID_TOKEN)
        return gateway

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, headers: Mapping[str, str], receive: Receive) -> bytes | None:
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise _reject(400, "bad_request", "invalid Content-Length")
            if int(length) > self.max_body:
                self.stats.too_large += 1
                raise _reject(413, "too_large", f"body above {self.max_body} bytes")
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body:
                self.stats.too_large += 1
                raise _reject(413, "too_large", f"body above {self.max_body} bytes")
            if not message.get("more_body", False):
                return bytes(body)

    async def _ingest(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1").strip() for k, v in scope["headers"]
        }
        # Who is asking, before anything else is read: an unknown client costs no inflating.
        gateway = await self._authenticate(headers)
        encoding = headers.get("content-encoding", "").lower()
        if encoding != "deflate":
            raise _reject(415, "unsupported_encoding", "Content-Encoding must be deflate")
        key = headers.get("idempotency-key", "")
        if len(key) >= 2 and key[0] == key[-1] == '"':
            key = key[1:-1]
        if not key:
            raise _reject(400, "bad_request", "Idempotency-Key header required")
        body = await self._read_body(headers, receive)
        if body is None:  # the client went away: nothing to answer
            return
        try:
            # Inflating and parsing up to 4 MiB: off the event loop.
            batch = await asyncio.to_thread(decode_message, body)
        except ProtocolError as exc:
            raise _reject(400, "bad_request", str(exc)) from None
        if batch.gateway != gateway:
            self.stats.forbidden += 1
            raise _reject(
                403,
                "forbidden",
                f"gateway {gateway} may not send records of gateway {batch.gateway!r}",
            )
        if key != batch.batch_id:
            raise _reject(
                400,
                "bad_request",
                f"Idempotency-Key {key!r} is not the batch id {batch.batch_id!r}",
            )
        try:
            ack = await self.warehouse.commit_batch(batch, idempotency_key=key)
        except IdempotencyKeyReused as exc:
            self.stats.key_reused += 1
            raise _reject(422, "idempotency_key_reused", str(exc)) from None
        except ProtocolError as exc:
            raise _reject(400, "bad_request", str(exc)) from None
        except WarehouseUnavailable as exc:
            self.stats.unavailable += 1
            logger.warning("batch %s not committed: %s", batch.batch_id, exc)
            raise _reject(
                503, "unavailable", "warehouse unavailable", {"retry-after": "5"}
            ) from None
        except WarehouseError as exc:
            logger.error("batch %s refused by the warehouse: %s", batch.batch_id, exc)
            raise _reject(500, "warehouse_error", "warehouse refused the batch") from None
        self.stats.committed += 1
        await _respond(send, 200, encode_ack(ack), {"content-type": "application/json"})

    async def _health(self, send: Send, *, head: bool) -> None:
        body: dict[str, object] = {"status": "ok", "warehouse": self.warehouse.kind}
        if self._status is not None:
            body.update(self._status())
        status = 200
        try:
            await self.warehouse.ping()
        except WarehouseError as exc:
            status, body["status"], body["reason"] = 503, "unavailable", str(exc)
        payload = json.dumps(body).encode()
        await _respond(
            send,
            status,
            b"" if head else payload,
            {"content-type": "application/json", "cache-control": "no-store"},
            content_length=len(payload),
        )


async def _json(
    send: Send, status: int, body: Mapping[str, object], headers: Mapping[str, str]
) -> None:
    await _respond(
        send, status, json.dumps(body).encode(), {**headers, "content-type": "application/json"}
    )


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    content_length: int | None = None,
) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    length = len(body) if content_length is None else content_length
    raw.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
