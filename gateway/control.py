"""Operator commands to the running gateway over a local UNIX socket.

The store has exactly one writer, the gateway. Commands from the line (start or end a run
where the ERP lags, acknowledge or shelve alerts, set a line's mode, re-queue records the
warehouse refused) therefore go to the gateway over a UNIX stream socket beside the
database, one JSON object per line each way.

Request:  ``{"command": "start_run", "line": "L1", "run_number": "R42", "operator": "Ann"}``
Response: ``{"ok": true, "seq": 123}`` or ``{"ok": false, "error": "..."}``

Local access control
--------------------
* **Who may connect**: the socket file's permissions. The gateway gives it the group
  ``gateway.control_socket_group`` (the operators' group, e.g. ``lineside-operators``) and
  the mode ``gateway.control_socket_mode`` (0660 by default; never any access for others).
  That group reaches only the socket: the store, the keys and the config's secrets stay
  with the gateway's own user.
* **Who did it**: the kernel's credentials of the connecting process (``SO_PEERCRED``). Every
  record an operator command writes carries the OS user name (``os_user``) beside the name
  the operator typed (``operator``), so a typed name can be checked against the login.
* **How much**: at most ``max_connections`` at once. When all are taken, the connection idle
  longest (for at least :data:`EVICT_IDLE_S`) is closed to make room; if none is, the new one
  is refused at once with ``{"ok": false, "error": "busy ..."}``. A connection that sends no
  complete request for ``idle_timeout_s`` is closed, and so is one that does not read its
  answer. A request line above :data:`MAX_REQUEST_BYTES` gets an error answer and the
  connection is closed. Each of these is counted and logged at most once per
  :data:`LOG_INTERVAL_S` (with how many were not logged), never with a traceback.
* **What is accepted**: each command's request model in :mod:`gateway.api` (its field rules
  in gateway/api_fields.py). Text fields are bounded (operator names ``MAX_OPERATOR_CHARS``,
  comments and reasons ``MAX_COMMENT_CHARS``, identifiers ``MAX_ID_CHARS``) and may
  not hold control or format characters (terminal escapes, bidirectional overrides); numbers
  must be JSON numbers (``true`` is not one). A refusal says which field and why.

Alerts are named by ``alert_id`` (the id or its short reference, as ``lineside alerts``
shows it), or by ``rule`` and/or ``line`` for every alert of them awaiting acknowledgement
(to shelve: every active one):
``{"command": "acknowledge", "rule": "label_weight", "line": "L1", "operator": "Ann"}``
answers ``{"ok": true, "alerts": [ids...], "seqs": [...]}``. A line-mode change names its
``operator`` too; it is recorded with the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import grp
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.api import MAX_ANSWER_BYTES, MAX_REQUEST_BYTES
from gateway.api_answers import Refused
from gateway.control_client import COMMAND_TIMEOUT_S, ControlClientError, send_command
from gateway.control_commands import (
    AlertControl,
    CommandError,
    DeadLetterControl,
    ReportControl,
    RunControl,
)
from gateway.control_peer import CONNECTION_PEER, Peer, current_peer, peer_of
from gateway.core.clock import Clock, SystemClock
from gateway.core.errors import ControlSocketError, StoreInUseError
from gateway.rate_limited_log import LOG_INTERVAL_S, RateLimitedLog

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 16
"""Connections served at once (the TUIs hold one each; a CLI command holds one for a moment)."""
IDLE_TIMEOUT_S = 60.0
"""A connection without a complete request for this long is closed (TUIs ask every second)."""
EVICT_IDLE_S = 5.0
"""When every slot is taken, a connection idle at least this long makes room for a new one."""
REFUSALS_LOGGED = 20
"""Refused commands logged one by one per :data:`LOG_INTERVAL_S`; beyond, counted."""
SOCKET_MODE = 0o660

Handler = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]]]
"""Answers one command: its answer type is in gateway/api_answers.py."""

__all__ = [
    "COMMAND_TIMEOUT_S",
    "LOG_INTERVAL_S",
    "MAX_ANSWER_BYTES",
    "MAX_REQUEST_BYTES",
    "AlertControl",
    "CommandError",
    "ControlClientError",
    "ControlServer",
    "DeadLetterControl",
    "Handler",
    "ReportControl",
    "RunControl",
    "send_command",
]

# ---------------------------------------------------------------------------- the socket


def refused(error: str) -> Refused:
    """The answer to a request the gateway does not carry out."""
    return {"ok": False, "error": error}


def _answers(path: Path) -> bool:
    """Whether a process accepts connections on the UNIX socket at ``path`` (a local
    connect: it succeeds or fails at once)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


@dataclasses.dataclass
class ControlStats:
    """What the control socket refused or closed, since start."""

    accepted: int = 0
    refused_busy: int = 0
    evicted_idle: int = 0
    closed_idle: int = 0
    too_large: int = 0
    dropped: int = 0


@dataclasses.dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    peer: Peer
    idle_since: float | None
    """When it last finished an answer (monotonic); ``None`` while a command runs."""


class ControlServer:
    """The UNIX socket the gateway listens on for operator commands."""

    def __init__(
        self,
        path: Path,
        handlers: dict[str, Handler],
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        evict_idle_s: float = EVICT_IDLE_S,
        group: str | None = None,
        mode: int = SOCKET_MODE,
        clock: Clock | None = None,
    ) -> None:
        if max_connections < 1 or idle_timeout_s <= 0 or evict_idle_s < 0:
            raise ValueError("max_connections and idle_timeout_s must be positive")
        if mode & 0o007 or mode & 0o600 != 0o600 or mode & ~0o777:
            raise ValueError(f"control socket mode {mode:o}: owner rw, nothing for others")
        self.path = path
        self.handlers = handlers
        self._clients: set[asyncio.Task[Any]] = set()
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.evict_idle_s = evict_idle_s
        self.group = group
        self.mode = mode
        self.stats = ControlStats()
        self._connections: set[_Connection] = set()
        self._log = RateLimitedLog()
        self._clock: Clock = clock or SystemClock()
        """Whose ``monotonic`` times the connections' idleness (a test moves it)."""

    async def serve(self) -> None:
        """Serve until cancelled; removes its own socket file on exit.

        A socket file left by a killed gateway is replaced; one that a live process answers
        on is never removed (StoreInUseError): that is another gateway's.
        """
        if _answers(self.path):
            raise StoreInUseError(
                f"the control socket {self.path} is in use by a running gateway; "
                "one gateway per store and socket"
            )
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a killed gateway
        try:
            server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_REQUEST_BYTES
            )
        except OSError as exc:
            raise ControlSocketError(
                f"cannot create the control socket {self.path}: {exc.strerror or exc} "
                "(gateway.control_socket; its folder must be writable by the gateway's user)"
            ) from exc
        ours = self.path.stat().st_ino
        try:
            self._set_access()
            async with server:
                await server.serve_forever()
        finally:
            server.close()
            self._log.flush()
            # A client still connected (a TUI) is ended here, before the event loop's end
            # would cancel it (see _client).
            clients = [task for task in self._clients if not task.done()]
            for task in clients:
                task.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
            # Only our own socket: never one that replaced it.
            with contextlib.suppress(FileNotFoundError):
                if self.path.stat().st_ino == ours:
                    self.path.unlink()

    def _set_access(self) -> None:
        """The socket's group (the operators') and mode."""
        if self.group is not None:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise ControlSocketError(
                    f"gateway.control_socket_group: no group {self.group!r} on this machine "
                    f"(create it: groupadd --system {self.group})"
                ) from None
            try:
                os.chown(self.path, -1, gid)
            except OSError as exc:
                raise ControlSocketError(
                    f"cannot give the control socket {self.path} to group {self.group!r}: "
                    f"{exc.strerror}; the gateway's user must be a member of that group "
                    f"(SupplementaryGroups={self.group} in its unit)"
                ) from None
        os.chmod(self.path, self.mode)
        info = self.path.stat()
        log.info(
            "control socket %s: mode %s, group %s, at most %d connections",
            self.path,
            stat.filemode(info.st_mode),
            self.group or info.st_gid,
            self.max_connections,
        )

    # ---------------------------------------------------------------- connections

    def _make_room(self) -> bool:
        """Whether a new connection fits, closing the longest idle one if that helps."""
        if len(self._connections) < self.max_connections:
            return True
        now = self._clock.monotonic()
        idle = [c for c in self._connections if c.idle_since is not None]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since or 0.0)
        if oldest.idle_since is None or now - oldest.idle_since < self.evict_idle_s:
            return False
        self._connections.discard(oldest)
        oldest.writer.close()
        self.stats.evicted_idle += 1
        self._log.warning(
            "evict",
            "control socket: all %d connections taken; closed one of %s idle for %.0f s "
            "to make room",
            self.max_connections,
            oldest.peer.user,
            now - oldest.idle_since,
        )
        return True

    def _refuse(self, writer: asyncio.StreamWriter, peer: Peer) -> None:
        self.stats.refused_busy += 1
        self._log.warning(
            "busy",
            "control socket: refused a connection from %s: all %d connections taken",
            peer.user,
            self.max_connections,
        )
        answer = {
            "ok": False,
            "error": f"the gateway is busy: all {self.max_connections} control connections "
            "are taken; try again shortly",
        }
        with contextlib.suppress(OSError, RuntimeError):
            writer.write(json.dumps(answer).encode() + b"\n")
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
            task.add_done_callback(self._clients.discard)
        peer = peer_of(writer.get_extra_info("socket"))
        if not self._make_room():
            self._refuse(writer, peer)
            return
        self.stats.accepted += 1
        connection = _Connection(writer, peer, self._clock.monotonic())
        self._connections.add(connection)
        CONNECTION_PEER.set(peer)  # this task's context: the handlers see who asks
        try:
            await self._converse(reader, writer, connection)
        except (ConnectionError, OSError) as exc:
            self.stats.dropped += 1
            self._log.warning("dropped", "control client %s dropped: %s", peer.user, exc)
        except asyncio.CancelledError:
            # The server is stopping (serve() cancels its clients). Ending normally, not
            # cancelled: Python 3.11's stream server asks a cancelled handler task for its
            # exception, which raises and is logged as an error with a traceback (3.12
            # checks for cancellation first).
            pass
        finally:
            self._connections.discard(connection)
            writer.close()

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection
    ) -> None:
        while True:
            connection.idle_since = self._clock.monotonic()
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    line = await reader.readline()
            except TimeoutError:
                self.stats.closed_idle += 1
                log.debug("control client %s idle: closed", connection.peer.user)
                return
            except ValueError:  # a line above the reader's limit
                self.stats.too_large += 1
                self._log.warning(
                    "too_large",
                    "control socket: refused a request above %d bytes from %s",
                    MAX_REQUEST_BYTES,
                    connection.peer.user,
                )
                await self._answer(
                    writer,
                    {
                        "ok": False,
                        "error": f"request too large: at most {MAX_REQUEST_BYTES} bytes "
                        "per request; connection closed",
                    },
                )
                return
            if not line:
                return
            if connection not in self._connections:
                return  # evicted while its request was arriving
            connection.idle_since = None
            response = await self._handle(line)
            if not await self._answer(writer, response):
                return

    async def _answer(self, writer: asyncio.StreamWriter, response: Mapping[str, Any]) -> bool:
        """Write one answer; ``False`` when the client does not take it in time."""
        writer.write(json.dumps(response).encode() + b"\n")
        try:
            async with asyncio.timeout(self.idle_timeout_s):
                await writer.drain()
        except TimeoutError:
            self.stats.closed_idle += 1
            self._log.warning("slow", "control socket: a client does not read its answers")
            return False
        return True

    async def _handle(self, line: bytes) -> Mapping[str, Any]:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep, huge numbers
            return refused("not a JSON object")
        if not isinstance(request, dict):
            return refused("not a JSON object")
        handler = self.handlers.get(str(request.get("command")))
        if handler is None:
            return refused(f"unknown command; known: {sorted(self.handlers)}")
        try:
            return await handler(request)
        except CommandError as exc:
            self._log.log(
                logging.INFO,
                "refused",
                "control command %r from %s refused: %s",
                request.get("command"),
                current_peer().user,
                exc,
                burst=REFUSALS_LOGGED,
            )
            return refused(str(exc))
        except Exception:  # noqa: BLE001 (logged below with its traceback)
            # A fault in answering one operator request must not stop the gateway's intake
            # (the TUI is optional); it is logged with its traceback (a few per interval:
            # a client repeating it cannot flood the log) and reported back.
            self._log.log(
                logging.ERROR,
                "internal",
                "control command %r failed",
                request.get("command"),
                burst=3,
                exc_info=True,
            )
            return refused("internal error in the gateway; see its log")
