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
* **What is accepted**: text fields are bounded (operator names :data:`MAX_OPERATOR_CHARS`,
  comments and reasons :data:`MAX_COMMENT_CHARS`, identifiers :data:`MAX_ID_CHARS`) and may
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
import functools
import grp
import json
import logging
import math
import os
import pwd
import socket
import stat
import struct
import time
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

from adapters.erp.model import ProductionRun, RunStatus, run_to_json
from gateway.alert_listing import MAX_LIST_ALERTS, MAX_LISTING_BYTES, alert_listing
from gateway.clock import Clock
from gateway.errors import ControlSocketError, StoreError, StoreInUseError
from gateway.records import AlertRecord, DeviceEvent, Record, RunVersion
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex, from_us
from gateway.store import Store
from sync.outbox import Outbox, quarantine_cleared_alerts
from sync.protocol import seq_ranges

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 16 * MAX_REQUEST_BYTES
COMMAND_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 16
"""Connections served at once (the TUIs hold one each; a CLI command holds one briefly)."""
IDLE_TIMEOUT_S = 60.0
"""A connection without a complete request for this long is closed (TUIs ask every second)."""
EVICT_IDLE_S = 5.0
"""When every slot is taken, a connection idle at least this long makes room for a new one."""
LOG_INTERVAL_S = 10.0
"""Refusals and closures of one kind are logged at most once per this many seconds."""
REFUSALS_LOGGED = 20
"""Refused commands logged one by one per :data:`LOG_INTERVAL_S`; beyond, counted."""
SOCKET_MODE = 0o660

MAX_OPERATOR_CHARS = 64
MAX_COMMENT_CHARS = 500
MAX_ID_CHARS = 128
MAX_REQUEUE_RECORDS = 100_000
"""Records one ``dead-letter requeue`` may release (a range is narrowed to those quarantined)."""
MAX_SEQ_ITEMS = 1000
"""Sequence numbers or ranges in one request."""
MAX_LIST_RECORDS = 1000
MAX_SEQ = 2**63 - 1
"""The largest sequence number SQLite can hold."""
MAX_RANGES_SHOWN = 200
"""Ranges of sequence numbers written out in a record or an answer; beyond, a count."""

OPERATOR_DEVICE = "operator"
"""The ``device`` of events an operator caused (the rules engine's line modes use it too)."""

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Control, format (bidirectional overrides, zero-width), surrogate, private-use and line or
paragraph separator characters: nothing a name or a comment needs, and what terminal
escapes and spoofed log lines are made of."""

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
T = TypeVar("T")


class CommandError(Exception):
    """A command that cannot be carried out; the message goes back to the operator."""


# ---------------------------------------------------------------------------- who asks


@dataclasses.dataclass(frozen=True, slots=True)
class Peer:
    """The process at the other end of a control connection, as the kernel reports it."""

    uid: int | None
    gid: int | None
    pid: int | None
    user: str
    """The OS user name; ``uid N`` for a uid without a name, ``unknown`` without credentials."""


UNKNOWN_PEER = Peer(uid=None, gid=None, pid=None, user="unknown")

_PEER: ContextVar[Peer] = ContextVar("control_peer", default=UNKNOWN_PEER)
"""The peer of the connection whose command is being handled (each connection is a task)."""


def current_peer() -> Peer:
    """Who sent the command being handled (``UNKNOWN_PEER`` outside a control connection)."""
    return _PEER.get()


@functools.lru_cache(maxsize=256)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def peer_of(sock: socket.socket | None) -> Peer:
    """The connecting process's credentials (``SO_PEERCRED``, Linux)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return UNKNOWN_PEER
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return UNKNOWN_PEER
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(uid=uid, gid=gid, pid=pid, user=_user_name(uid))


@dataclasses.dataclass(frozen=True, slots=True)
class Operator:
    """Who gives a command: the name typed and the OS user the kernel vouches for."""

    name: str
    """As typed (may be empty where a name is optional)."""
    peer: Peer

    @property
    def label(self) -> str:
        """``Ann (os:alice)``, for log lines and messages."""
        return f"{self.name} (os:{self.peer.user})" if self.name else f"os:{self.peer.user}"

    def detail(self) -> dict[str, Any]:
        """The attribution every record of the command carries."""
        out: dict[str, Any] = {"os_user": self.peer.user, "os_uid": self.peer.uid}
        if self.name:
            out["operator"] = self.name
        return out


# ---------------------------------------------------------------------------- fields


def _field(request: dict[str, Any], key: str, max_chars: int, *, required: bool = True) -> str:
    """A text field, stripped: bounded, without control characters; ``""`` when optional
    and absent."""
    value = request.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CommandError(f"{key} is required")
        return ""
    if not isinstance(value, str):
        raise CommandError(f"{key} must be text")
    text = value.strip()
    if len(text) > max_chars:
        raise CommandError(f"{key} is {len(text)} characters long; at most {max_chars}")
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise CommandError(
                f"{key} contains a control character (U+{ord(char):04X}, e.g. a terminal "
                "escape); refused"
            )
    return text


def _text(request: dict[str, Any], key: str) -> str:
    """A required identifier (line, run number, alert id)."""
    return _field(request, key, MAX_ID_CHARS)


def _optional(request: dict[str, Any], key: str) -> str | None:
    """An optional identifier (bounded, no control characters); None when absent."""
    return _field(request, key, MAX_ID_CHARS, required=False) or None


def _operator(request: dict[str, Any], *, required: bool = True) -> Operator:
    return Operator(
        _field(request, "operator", MAX_OPERATOR_CHARS, required=required), current_peer()
    )


def _number(value: object) -> float | None:
    """A JSON number as a float; ``None`` for anything else (``true`` is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _seq(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SEQ:
        raise CommandError(f"{key} must be a sequence number (a positive integer)")
    return value


def _seq_items(request: dict[str, Any], key: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Sequence numbers and inclusive ranges (``[first, last]``) from a request list."""
    items = request.get(key)
    if not isinstance(items, list) or not items:
        raise CommandError(f"{key} must be a list of sequence numbers or [first, last] ranges")
    if len(items) > MAX_SEQ_ITEMS:
        raise CommandError(f"{key}: at most {MAX_SEQ_ITEMS} numbers or ranges per request")
    single: list[int] = []
    ranges: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, list) and len(item) == 2:
            first, last = _seq(item[0], key), _seq(item[1], key)
            if first > last:
                raise CommandError(f"{key}: range {first}-{last} runs backwards")
            ranges.append((first, last))
        else:
            single.append(_seq(item, key))
    return single, ranges


def _attributed(record: Record, operator: Operator) -> Record:
    """``record`` with the operator's attribution beside what it already says."""
    if isinstance(record, AlertRecord):
        return dataclasses.replace(record, detail={**operator.detail(), **record.detail})
    if isinstance(record, DeviceEvent):
        return dataclasses.replace(record, detail={**record.detail, **operator.detail()})
    return record


def _ranges_text(seqs: Iterable[int]) -> str:
    """``1-5, 9, 12-13``; past :data:`MAX_RANGES_SHOWN` ranges, how many more."""
    ranges = seq_ranges(list(seqs))
    text = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges[:MAX_RANGES_SHOWN])
    if len(ranges) > MAX_RANGES_SHOWN:
        text += f" and {len(ranges) - MAX_RANGES_SHOWN} more ranges"
    return text


# ---------------------------------------------------------------------------- commands


class RunControl:
    """Starting and ending runs from the line."""

    def __init__(self, store: Store, index: RunIndex, clock: Clock, lines: set[str]) -> None:
        self.store = store
        self.index = index
        self.clock = clock
        self.lines = lines

    async def start_run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Start a run on a line now (creating it if the ERP does not know it yet)."""
        line, number = _text(request, "line"), _text(request, "run_number")
        operator = _operator(request)
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
        number = _text(request, "run_number")
        operator = _operator(request)
        known = self.index.get(number)
        if known is None:
            raise CommandError(f"unknown run {number!r}")
        now = self.clock.wall_us()
        run = dataclasses.replace(known, actual_end=from_us(now), status=RunStatus.FINISHED)
        return await self._record(run, operator, now)

    async def _record(self, run: ProductionRun, operator: Operator, now: int) -> dict[str, Any]:
        # ``actor`` is the name typed; the version's payload says who the OS vouches for
        # (``recorded_by``; run_from_json reads only the run's own keys).
        payload = {**run_to_json(run), "recorded_by": operator.detail()}
        seq = await self.store.write(
            RunVersion(
                ts_us=now,
                run_number=run.run_number,
                line=run.line,
                status=str(run.status),
                source="operator",
                payload=payload,
                actor=operator.name,
            )
        )
        self.index.put(run)
        log.info("run %s %s on line %s by %s", run.run_number, run.status, run.line, operator.label)
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
        operator = _operator(request)
        comment = _field(request, "comment", MAX_COMMENT_CHARS, required=False)
        chosen = self._selected(request, to_shelve=False)
        records: list[Record] = []
        for alert_id in chosen:
            records += self._call(
                functools.partial(self.engine.acknowledge, alert_id, operator.name, comment)
            )
        what = f"acknowledged {', '.join(chosen)}"
        return {**await self._store(records, operator, what), "alerts": chosen}

    async def shelve(self, request: dict[str, Any]) -> dict[str, Any]:
        """Shelve one alert, or every active alert of a rule and/or line, for ``minutes``."""
        operator = _operator(request)
        minutes = _number(request.get("minutes"))
        if minutes is None or not 1 <= minutes <= 24 * 60:
            raise CommandError("minutes must be a number from 1 to 1440")
        comment = _field(request, "comment", MAX_COMMENT_CHARS, required=False)
        chosen = self._selected(request, to_shelve=True)
        records: list[Record] = []
        for alert_id in chosen:
            records += self._call(
                functools.partial(self.engine.shelve, alert_id, operator.name, minutes, comment)
            )
        what = f"shelved {', '.join(chosen)} for {minutes:g} min"
        return {**await self._store(records, operator, what), "alerts": chosen}

    async def list_alerts(self, request: dict[str, Any]) -> dict[str, Any]:
        """The alerts active or awaiting acknowledgement (what ``ack`` may name), optionally
        of one ``line`` and/or ``rule``: most urgent first, :data:`MAX_LIST_ALERTS` at most.

        Read from the gateway's alert book, so an operator who may use the socket but not
        read the store can list them (``lineside alerts --socket``).
        """
        line, rule = _optional(request, "line"), _optional(request, "rule")
        if line is not None and line not in self.lines:
            raise CommandError(f"unknown line {line!r}")
        limit = request.get("limit", MAX_LIST_ALERTS)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise CommandError("limit must be a positive integer")
        limit = min(limit, MAX_LIST_ALERTS)  # the answer stays below MAX_ANSWER_BYTES
        book = self.engine.book
        standing = {a.id: a for a in (*book.active(), *book.unacknowledged())}
        chosen = [
            a
            for a in standing.values()
            if (line is None or a.line == line) and (rule is None or a.rule == rule)
        ]
        return {"ok": True, **alert_listing(chosen, self.engine.refs(), self.engine.config, limit)}

    async def line_mode(self, request: dict[str, Any]) -> dict[str, Any]:
        """Set a line to production, changeover or washdown; who did it is recorded."""
        line, mode = _text(request, "line"), _text(request, "mode")
        operator = _operator(request)
        if line not in self.lines:
            raise CommandError(f"unknown line {line!r}")
        if mode not in ("production", "changeover", "washdown"):
            raise CommandError("mode must be production, changeover or washdown")
        records = self._call(lambda: self.engine.set_line_mode(line, mode, operator=operator.name))
        return await self._store(records, operator, f"set line {line} to {mode}")

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

    async def _store(self, records: list[Record], operator: Operator, what: str) -> dict[str, Any]:
        # Queued together (in order: gather starts them in turn), committed in one group
        # commit: acknowledging a rule's hundreds of alerts must not wait one commit interval
        # per alert (the client gives up after 5 s).
        seqs = list(
            await asyncio.gather(*(self.store.write(_attributed(r, operator)) for r in records))
        )
        log.info("operator %s %s", operator.label, what)
        return {"ok": True, "seqs": seqs}


class ReportControl:
    """A run's report for ``lineside report --socket``: the operator reads neither the store
    nor the config; the gateway reads its store (read-only, beside its writer)."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path

    async def report(self, request: dict[str, Any]) -> dict[str, Any]:
        """The report document of ``run_number`` (docs/command-output.md), its standing
        alerts trimmed to fit one answer."""
        from gateway.report import ReportError, build_report  # noqa: PLC0415
        from gateway.report_output import (  # noqa: PLC0415
            fit_standing,
            report_document,
            run_alerts,
            run_losses,
        )

        run_number = _text(request, "run_number")

        def build() -> dict[str, Any]:
            report = build_report(self.store_path, run_number)
            losses = run_losses(self.store_path, report)
            alerts = run_alerts(self.store_path, report)
            document = report_document(report, losses, alerts, with_transitions=False)
            # Plain JSON types only (the answer is serialised without a fallback).
            plain: dict[str, Any] = json.loads(json.dumps(document, default=str))
            return fit_standing(plain, MAX_LISTING_BYTES)

        try:
            document = await asyncio.to_thread(build)
        except ReportError as exc:
            raise CommandError(str(exc)) from None
        return {"ok": True, "report": document}


class DeadLetterControl:
    """The sync quarantine: records the warehouse refused, listed and re-queued by an
    operator (``lineside dead-letter``)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.store = outbox.store

    async def list_records(self, request: dict[str, Any]) -> dict[str, Any]:
        """The quarantined records after ``after`` (a sequence number), ``limit`` at most."""
        after = request.get("after", 0)
        if after != 0:
            after = _seq(after, "after")
        limit = request.get("limit", 200)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise CommandError("limit must be a positive integer")
        limit = min(limit, MAX_LIST_RECORDS)
        total = await self.outbox.quarantine_count()
        page = await self.outbox.quarantine_page(after=after, limit=limit + 1)
        return {
            "ok": True,
            "total": total,
            "records": [dataclasses.asdict(entry) for entry in page[:limit]],
            "more": len(page) > limit,
        }

    async def show_record(self, request: dict[str, Any]) -> dict[str, Any]:
        """One quarantined record: why, when, and its stored data."""
        seq = _seq(request.get("seq"), "seq")
        found = await self.outbox.quarantined_record(seq)
        if found is None:
            raise CommandError(f"record {seq} is not in the quarantine")
        entry, data = found
        return {"ok": True, "record": dataclasses.asdict(entry), "data": data}

    async def requeue(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send quarantined records again; the operator and the reason are recorded."""
        single, ranges = _seq_items(request, "seqs")
        reason = _field(request, "reason", MAX_COMMENT_CHARS)
        operator = _operator(request)
        wanted = set(single)
        if ranges:
            wanted.update(await self.outbox.quarantined_in(ranges, limit=MAX_REQUEUE_RECORDS + 1))
        if not wanted:
            raise CommandError("nothing in the quarantine within the ranges given")
        if len(wanted) > MAX_REQUEUE_RECORDS:
            raise CommandError(
                f"{len(wanted)} records: at most {MAX_REQUEUE_RECORDS} per requeue; "
                "give narrower ranges"
            )
        try:
            moved, refused = await self.outbox.requeue(wanted)
        except StoreError as exc:
            raise CommandError(f"cannot re-queue: {exc}") from None
        if not moved:
            problems = "; ".join(f"{why}: {_ranges_text(s)}" for why, s in refused.items())
            raise CommandError(f"nothing re-queued ({problems})")
        seqs = [entry.seq for entry in moved]
        streams = Counter(entry.stream for entry in moved)
        earlier = Counter(entry.reason for entry in moved)
        event = DeviceEvent(
            ts_us=self.store.clock.wall_us(),
            device=OPERATOR_DEVICE,
            kind="dead_letter_requeued",
            detail={
                **operator.detail(),
                "reason": reason,
                "records": len(seqs),
                "seqs": _ranges_text(seqs),
                "streams": dict(streams),
                "quarantine_reasons": dict(earlier.most_common(20)),
                "not_requeued": {why: _ranges_text(s) for why, s in refused.items()},
            },
        )
        event_seq = await self.store.write(event)
        log.warning(
            "dead letter: %d record(s) re-queued by %s (%s): %s",
            len(seqs),
            operator.label,
            reason,
            _ranges_text(seqs),
        )
        cleared = await quarantine_cleared_alerts(
            self.outbox, f"sync quarantine emptied: records re-queued by {operator.label}"
        )
        for record in cleared:
            await self.store.write(_attributed(record, operator))
        return {
            "ok": True,
            "requeued": len(seqs),
            "seqs": _ranges_text(seqs),
            "not_requeued": {why: _ranges_text(s) for why, s in refused.items()},
            "left": await self.outbox.quarantine_count(),
            "event_seq": event_seq,
        }


# ---------------------------------------------------------------------------- the socket


def _answers(path: Path) -> bool:
    """Whether a process accepts connections on the UNIX socket at ``path`` (a local
    connect: it succeeds or fails at once)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


class _RateLimitedLog:
    """Messages of one kind at most ``burst`` times per interval; those held back are counted
    and the count is logged when the interval ends (a flood costs a few lines per interval)."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._window: dict[str, tuple[float, int]] = {}
        """Per kind: when its interval began and how many were logged in it."""
        self._held: Counter[str] = Counter()
        self._what: dict[str, str] = {}
        self._flushing: dict[str, asyncio.TimerHandle] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        self.log(logging.WARNING, kind, message, *args)

    def log(
        self,
        level: int,
        kind: str,
        message: str,
        *args: object,
        burst: int = 1,
        exc_info: bool = False,
    ) -> None:
        now = time.monotonic()
        began, logged = self._window.get(kind, (now - self.interval_s, 0))
        if now - began >= self.interval_s:
            began, logged = now, 0
        if logged >= burst:
            self._held[kind] += 1
            if kind not in self._flushing:
                with contextlib.suppress(RuntimeError):  # no running loop: counted only
                    self._flushing[kind] = asyncio.get_running_loop().call_later(
                        began + self.interval_s - now, self.flush, kind
                    )
            return
        self._window[kind] = (began, logged + 1)
        self._what[kind] = message % args if args else message
        log.log(level, message, *args, exc_info=exc_info)

    def flush(self, kind: str | None = None) -> None:
        """Log how many messages of ``kind`` (or of every kind) were held back."""
        for name in [kind] if kind is not None else list(self._held):
            timer = self._flushing.pop(name, None)
            if timer is not None:
                timer.cancel()
            held = self._held.pop(name, 0)
            if held:
                # The summary opens the next interval: a flood costs two lines per interval.
                self._window[name] = (time.monotonic(), 1)
                log.warning(
                    "%d more like %r in the last %.0f s (not logged one by one)",
                    held,
                    self._what.get(name, name),
                    self.interval_s,
                )


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
        self._log = _RateLimitedLog()

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
        now = time.monotonic()
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
        connection = _Connection(writer, peer, time.monotonic())
        self._connections.add(connection)
        _PEER.set(peer)  # this task's context: the handlers see who asks
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
            connection.idle_since = time.monotonic()
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

    async def _answer(self, writer: asyncio.StreamWriter, response: dict[str, Any]) -> bool:
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

    async def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep, huge numbers
            return {"ok": False, "error": "not a JSON object"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "not a JSON object"}
        handler = self.handlers.get(str(request.get("command")))
        if handler is None:
            return {"ok": False, "error": f"unknown command; known: {sorted(self.handlers)}"}
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
            return {"ok": False, "error": str(exc)}
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
            return {"ok": False, "error": "internal error in the gateway; see its log"}


# ---------------------------------------------------------------------------- the client


class ControlClientError(ValueError):
    """The request could not be sent or its answer not understood (message for people)."""


async def send_command(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send one command to a running gateway and return its answer (5 s at most).

    Raises :class:`ControlClientError` for a request too large to send or an answer that is
    not a JSON object, ``OSError`` when the gateway cannot be reached, ``TimeoutError``.
    The answer is read even when the gateway closes the connection early (a busy refusal):
    it is in the socket before the close.
    """
    data = json.dumps(request).encode() + b"\n"
    if len(data) > MAX_REQUEST_BYTES:
        raise ControlClientError(
            f"the request is {len(data)} bytes; the gateway takes at most {MAX_REQUEST_BYTES} "
            "(shorten the comment or the reason)"
        )
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(COMMAND_TIMEOUT_S):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, str(path))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await loop.sock_sendall(sock, data)
            answer = bytearray()
            # Answers (a status snapshot) can be far larger than requests.
            while b"\n" not in answer and len(answer) <= MAX_ANSWER_BYTES:
                try:
                    chunk = await loop.sock_recv(sock, 65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
    line = bytes(answer).split(b"\n", 1)[0]
    if not line:
        raise ConnectionResetError("the gateway closed the connection without an answer")
    try:
        parsed = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ControlClientError("the gateway's answer is not JSON") from None
    if not isinstance(parsed, dict):
        raise ControlClientError("the gateway answered with something other than a JSON object")
    return parsed
