"""How the TUI talks to the running gateway: its control socket.

Why the socket and not the store: what an operator watches most (device links and their
errors, the open ℮ batch, the probes' last values, the uplink's connection) lives only in
the gateway's memory, and acknowledging an alert must go through the gateway's alert book
(the store has exactly one writer). The gateway builds one status snapshot at most twice a
second and shares it among all viewers, so any number of TUIs costs it two small queries a
second and never touches the store's write path. A TUI that dies mid-request only closes
its connection.

:class:`GatewayLink` keeps one connection, re-opens it after any failure (and after a
request given up or cancelled half-way, whose answer could otherwise be read as the next
one's), and records the outcome in an explicit :class:`ConnectionState`. The app polls once
a second, which is also its retry interval when the gateway is not running, and decides for
itself when an answer is late (:data:`tui.app.ANSWER_DUE_S`): a request may wait longer than
that for a slow gateway, but the screen says "not answering" meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from gateway.api import MAX_ANSWER_BYTES, GatewayUnavailable

REQUEST_TIMEOUT_S = 3.0
"""A status answer takes milliseconds; this long means the gateway is stuck or gone, and the
connection is dropped and opened afresh. It covers waiting for an earlier request too. (The
TUI marks its data stale much sooner: see :data:`tui.app.ANSWER_DUE_S`.)"""


class ConnectionState(StrEnum):
    """The TUI's link to the gateway, shown in its title bar."""

    CONNECTING = "connecting"
    UP = "connected"
    DOWN = "not answering"
    """Not running, hung, refusing, or answering too late: the screen's data is stale."""


class StatusSource(Protocol):
    """Where the TUI gets live status and sends operator commands (the seam tests fake)."""

    @property
    def address(self) -> str:
        """Where the gateway is expected, for messages."""
        ...

    async def status(self) -> dict[str, Any]:
        """The gateway's current status snapshot (raises :class:`GatewayUnavailable`)."""
        ...

    async def command(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send an operator command; the gateway's answer (``ok``, ``error``)."""
        ...

    async def close(self) -> None:
        """Drop the connection."""
        ...


class GatewayLink:
    """A :class:`StatusSource` over the gateway's UNIX control socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = ConnectionState.CONNECTING
        self.last_error = ""
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    @property
    def address(self) -> str:
        """The socket path."""
        return str(self.path)

    async def status(self) -> dict[str, Any]:
        """The gateway's status snapshot."""
        answer = await self.command({"command": "status"})
        if answer.get("ok") is False:
            raise GatewayUnavailable(str(answer.get("error") or "the gateway refused"))
        return answer

    async def command(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request, one answer; a broken connection is re-opened on the next call."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                async with self._lock:
                    line = await self._exchange(request)
            if not line:
                raise ConnectionResetError("the gateway closed the connection")
            answer = json.loads(line)
        except (OSError, TimeoutError, ValueError) as exc:
            self._drop_now()
            self.state = ConnectionState.DOWN
            self.last_error = _describe(exc)
            raise GatewayUnavailable(self.last_error) from exc
        if not isinstance(answer, dict):
            self._drop_now()
            self.state = ConnectionState.DOWN
            self.last_error = "the gateway answered with something other than an object"
            raise GatewayUnavailable(self.last_error)
        self.state = ConnectionState.UP
        self.last_error = ""
        return answer

    async def _exchange(self, request: dict[str, Any]) -> bytes:
        """Send ``request`` and read one answer line (the caller holds the lock)."""
        try:
            reader, writer = await self._connection()
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            return await reader.readline()
        except BaseException:
            # Timed out, cancelled or failed half-way: an answer may still come on this
            # connection, and the next request must not take it for its own.
            self._drop_now()
            raise

    async def close(self) -> None:
        """Close the connection (the app is quitting)."""
        self._drop_now()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            self._streams = await asyncio.open_unix_connection(
                str(self.path), limit=MAX_ANSWER_BYTES
            )
        return self._streams

    def _drop_now(self) -> None:
        """Close the connection without waiting (safe while being cancelled)."""
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no control socket (the gateway is not running)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (the gateway is not running or is restarting)"
    if isinstance(exc, PermissionError):
        return "permission denied on the control socket (add this user to the gateway's group)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {REQUEST_TIMEOUT_S:.0f} s"
    return str(exc) or type(exc).__name__
