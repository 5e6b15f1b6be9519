"""Operator commands to the running gateway over a local UNIX socket.

The store has exactly one writer, the gateway. Commands from the line (start or end a run
where the ERP lags; later: acknowledge alerts from the TUI) therefore go to the gateway over
a UNIX stream socket beside the database, one JSON object per line each way. Access is by
file permissions (mode 0660: the gateway's user and group).

Request:  ``{"command": "start_run", "line": "L1", "run_number": "R42", "operator": "Ann"}``
Response: ``{"ok": true, "seq": 123}`` or ``{"ok": false, "error": "..."}``

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
import functools
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

from adapters.erp.model import ProductionRun, RunStatus, run_to_json
from gateway.clock import Clock
from gateway.errors import StoreInUseError
from gateway.records import Record, RunVersion
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex, from_us
from gateway.store import Store

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 16 * MAX_REQUEST_BYTES
COMMAND_TIMEOUT_S = 5.0
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
T = TypeVar("T")


class CommandError(Exception):
    """A command that cannot be carried out; the message goes back to the operator."""


def _optional(request: dict[str, Any], key: str) -> str | None:
    value = request.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise CommandError(f"{key} must be text")
    return value.strip()


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CommandError(f"{key} is required")
    return value.strip()


class RunControl:
    """Starting and ending runs from the line."""

    def __init__(self, store: Store, index: RunIndex, clock: Clock, lines: set[str]) -> None:
        self.store = store
        self.index = index
        self.clock = clock
        self.lines = lines

    async def start_run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Start a run on a line now (creating it if the ERP does not know it yet)."""
        line, number, operator = (
            _text(request, "line"),
            _text(request, "run_number"),
            _text(request, "operator"),
        )
        if line not in self.lines:
            raise CommandError(f"unknown line {line!r}")
        now = self.clock.wall_us()
        when = from_us(now)
        known = self.index.get(number)
        if known is not None and known.line != line:
            raise CommandError(f"run {number} belongs to line {known.line}, not {line}")
        if known is None:
            run = ProductionRun(
                run_number=number,
                line=line,
                batch_codes=(),
                description="",
                species=None,
                product_type=None,
                products=(),
                raw_material_kg=None,
                pack_date=when.astimezone(UTC).date(),
                shelf_life_adjust=0,
                planned_start=None,
                planned_end=None,
                actual_start=when,
                actual_end=None,
                status=RunStatus.RUNNING,
                updated=when,
            )
        else:
            run = dataclasses.replace(
                known, actual_start=when, actual_end=None, status=RunStatus.RUNNING
            )
        return await self._record(run, operator, now)

    async def end_run(self, request: dict[str, Any]) -> dict[str, Any]:
        """End a run now."""
        number, operator = _text(request, "run_number"), _text(request, "operator")
        known = self.index.get(number)
        if known is None:
            raise CommandError(f"unknown run {number!r}")
        now = self.clock.wall_us()
        run = dataclasses.replace(known, actual_end=from_us(now), status=RunStatus.FINISHED)
        return await self._record(run, operator, now)

    async def _record(self, run: ProductionRun, operator: str, now: int) -> dict[str, Any]:
        seq = await self.store.write(
            RunVersion(
                ts_us=now,
                run_number=run.run_number,
                line=run.line,
                status=str(run.status),
                source="operator",
                payload=run_to_json(run),
                actor=operator,
            )
        )
        self.index.put(run)
        log.info("run %s %s on line %s by %s", run.run_number, run.status, run.line, operator)
        return {"ok": True, "seq": seq}


class AlertControl:
    """Acknowledging and shelving alerts, and setting line modes, from the line."""

    def __init__(self, engine: RulesEngine, store: Store, lines: set[str]) -> None:
        self.engine = engine
        self.store = store
        self.lines = lines

    def _selected(self, request: dict[str, Any], *, to_shelve: bool) -> list[str]:
        """The alert ids a request names (``alert_id``, or ``rule`` and/or ``line``)."""
        names = {k: _optional(request, k) for k in ("alert_id", "rule", "line")}
        if names["line"] is not None and names["line"] not in self.lines:
            raise CommandError(f"unknown line {names['line']!r}")
        if names["alert_id"] is not None and (names["rule"] or names["line"]):
            raise CommandError("name one alert (alert_id), or a rule and/or a line, not both")
        if not any(names.values()):
            raise CommandError("alert_id, rule or line is required")
        return self._call(
            lambda: self.engine.select(
                alert=names["alert_id"],
                rule=names["rule"],
                line=names["line"],
                to_shelve=to_shelve,
            )
        )

    async def acknowledge(self, request: dict[str, Any]) -> dict[str, Any]:
        """Acknowledge one alert, or every alert of a rule and/or line awaiting it
        (operator name required, comment optional): one acknowledgement per alert."""
        operator = _text(request, "operator")
        comment = str(request.get("comment") or "")
        chosen = self._selected(request, to_shelve=False)
        records: list[Record] = []
        for alert_id in chosen:
            records += self._call(
                functools.partial(self.engine.acknowledge, alert_id, operator, comment)
            )
        return {**await self._store(records), "alerts": chosen}

    async def shelve(self, request: dict[str, Any]) -> dict[str, Any]:
        """Shelve one alert, or every active alert of a rule and/or line, for ``minutes``."""
        operator = _text(request, "operator")
        minutes = request.get("minutes")
        if not isinstance(minutes, int | float) or not 0 < minutes <= 24 * 60:
            raise CommandError("minutes must be a number from 1 to 1440")
        comment = str(request.get("comment") or "")
        chosen = self._selected(request, to_shelve=True)
        records: list[Record] = []
        for alert_id in chosen:
            records += self._call(
                functools.partial(self.engine.shelve, alert_id, operator, minutes, comment)
            )
        return {**await self._store(records), "alerts": chosen}

    async def line_mode(self, request: dict[str, Any]) -> dict[str, Any]:
        """Set a line to production, changeover or washdown; who did it is recorded."""
        line, mode = _text(request, "line"), _text(request, "mode")
        operator = _text(request, "operator")
        if line not in self.lines:
            raise CommandError(f"unknown line {line!r}")
        if mode not in ("production", "changeover", "washdown"):
            raise CommandError("mode must be production, changeover or washdown")
        return await self._store(
            self._call(lambda: self.engine.set_line_mode(line, mode, operator=operator))
        )

    @staticmethod
    def _call(action: Callable[[], list[T]]) -> list[T]:
        try:
            return action()
        except KeyError as exc:
            what = exc.args[0] if exc.args else ""
            if isinstance(what, str) and what.startswith("no alert"):
                raise CommandError(what) from None
            raise CommandError(f"unknown alert {what!r}") from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    async def _store(self, records: list[Record]) -> dict[str, Any]:
        seqs = [await self.store.write(record) for record in records]
        return {"ok": True, "seqs": seqs}


def _answers(path: Path) -> bool:
    """Whether a process accepts connections on the UNIX socket at ``path`` (a local
    connect: it succeeds or fails at once)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


class ControlServer:
    """The UNIX socket the gateway listens on for operator commands."""

    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers

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
        server = await asyncio.start_unix_server(
            self._client, path=str(self.path), limit=MAX_REQUEST_BYTES
        )
        os.chmod(self.path, 0o660)
        ours = self.path.stat().st_ino
        try:
            async with server:
                await server.serve_forever()
        finally:
            # Only our own socket: never one that replaced it.
            with contextlib.suppress(FileNotFoundError):
                if self.path.stat().st_ino == ours:
                    self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                response = await self._handle(line)
                writer.write(json.dumps(response).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.warning("control client dropped: %s", exc)
        finally:
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {"ok": False, "error": "not a JSON object"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "not a JSON object"}
        handler = self.handlers.get(str(request.get("command")))
        if handler is None:
            return {"ok": False, "error": f"unknown command; known: {sorted(self.handlers)}"}
        try:
            return await handler(request)
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception:
            # A fault in answering one operator request must not stop the gateway's intake
            # (the TUI is optional); it is logged with its traceback and reported back.
            log.exception("control command %r failed", request.get("command"))
            return {"ok": False, "error": "internal error in the gateway; see its log"}


async def send_command(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send one command to a running gateway and return its answer (5 s at most)."""
    async with asyncio.timeout(COMMAND_TIMEOUT_S):
        # Answers (a status snapshot) can be far larger than requests.
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_ANSWER_BYTES)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            answer = json.loads(await reader.readline())
        finally:
            writer.close()
    if not isinstance(answer, dict):
        raise ValueError("the gateway answered with something other than a JSON object")
    return answer
