"""The operator commands the control socket carries out (gateway/control.py serves them).

Each handler takes the request's JSON object, reads it with its :mod:`gateway.api` model
(which refuses a bad field with the sentence the operator sees) and answers a JSON object;
a command that cannot be carried out raises :class:`CommandError`, answered as
``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

from gateway import api
from gateway import api_answers as answers
from gateway.alert_listing import MAX_LISTING_BYTES, alert_listing
from gateway.control_peer import Operator, current_peer
from gateway.core.clock import Clock
from gateway.core.errors import ControlError, StoreError
from gateway.core.records import AlertRecord, DeviceEvent, Record, RunVersion
from gateway.core.runs import ProductionRun, RunStatus, run_to_json
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex, from_us
from gateway.store import Store
from sync.outbox import Outbox, quarantine_cleared_alerts
from sync.protocol import seq_ranges

log = logging.getLogger(__name__)

MAX_REQUEUE_RECORDS = 100_000
"""Records one ``dead-letter requeue`` may release (a range is narrowed to those quarantined)."""
MAX_LIST_RECORDS = 1000
MAX_RANGES_SHOWN = 200
"""Ranges of sequence numbers written out in a record or an answer; beyond, a count."""

OPERATOR_DEVICE = "operator"
"""The ``device`` of events an operator caused (the rules engine's line modes use it too)."""

T = TypeVar("T")


R = TypeVar("R", bound=api.Request)


class CommandError(ControlError):
    """A command that cannot be carried out; the message goes back to the operator."""


def parse(kind: type[R], request: dict[str, Any]) -> R:
    """``request`` read as a ``kind``; a refused field is the operator's error."""
    try:
        return kind.from_wire(request)
    except api.InvalidRequest as exc:
        raise CommandError(str(exc)) from None


def _operator(name: str) -> Operator:
    return Operator(name, current_peer())


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

    async def start_run(self, request: dict[str, Any]) -> answers.RunRecorded:
        """Start a run on a line now (creating it if the ERP does not know it yet)."""
        wanted = parse(api.StartRun, request)
        line, number = wanted.line, wanted.run_number
        operator = _operator(wanted.operator)
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

    async def end_run(self, request: dict[str, Any]) -> answers.RunRecorded:
        """End a run now."""
        wanted = parse(api.EndRun, request)
        number = wanted.run_number
        operator = _operator(wanted.operator)
        known = self.index.get(number)
        if known is None:
            raise CommandError(f"unknown run {number!r}")
        now = self.clock.wall_us()
        run = dataclasses.replace(known, actual_end=from_us(now), status=RunStatus.FINISHED)
        return await self._record(run, operator, now)

    async def _record(
        self, run: ProductionRun, operator: Operator, now: int
    ) -> answers.RunRecorded:
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

    def _selected(self, request: api.Acknowledge | api.Shelve, *, to_shelve: bool) -> list[str]:
        """The alert ids a request names (``alert_id``, or ``rule`` and/or ``line``)."""
        names = {"alert_id": request.alert_id, "rule": request.rule, "line": request.line}
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

    async def acknowledge(self, request: dict[str, Any]) -> answers.AlertsChanged:
        """Acknowledge one alert, or every alert of a rule and/or line awaiting it
        (operator name required, comment optional): one acknowledgement per alert."""
        wanted = parse(api.Acknowledge, request)
        operator, comment = _operator(wanted.operator), wanted.comment
        chosen = self._selected(wanted, to_shelve=False)
        records: list[Record] = []
        for alert_id in chosen:
            records += self._call(
                functools.partial(self.engine.acknowledge, alert_id, operator.name, comment)
            )
        what = f"acknowledged {', '.join(chosen)}"
        stored = await self._store(records, operator, what)
        return {"ok": True, "seqs": stored["seqs"], "alerts": chosen}

    async def shelve(self, request: dict[str, Any]) -> answers.AlertsChanged:
        """Shelve one alert, or every active alert of a rule and/or line, for ``minutes``."""
        wanted = parse(api.Shelve, request)
        operator, minutes, comment = _operator(wanted.operator), wanted.minutes, wanted.comment
        chosen = self._selected(wanted, to_shelve=True)
        records: list[Record] = []
        for alert_id in chosen:
            records += self._call(
                functools.partial(self.engine.shelve, alert_id, operator.name, minutes, comment)
            )
        what = f"shelved {', '.join(chosen)} for {minutes:g} min"
        stored = await self._store(records, operator, what)
        return {"ok": True, "seqs": stored["seqs"], "alerts": chosen}

    async def list_alerts(self, request: dict[str, Any]) -> dict[str, Any]:
        """The alerts active or awaiting acknowledgement (what ``ack`` may name), optionally
        of one ``line`` and/or ``rule``: most urgent first, :data:`MAX_LIST_ALERTS` at most.

        Read from the gateway's alert book, so an operator who may use the socket but not
        read the store can list them (``lineside alerts --socket``).
        """
        wanted = parse(api.Alerts, request)
        line, rule = wanted.line, wanted.rule
        if line is not None and line not in self.lines:
            raise CommandError(f"unknown line {line!r}")
        limit = min(wanted.limit, api.MAX_LIST_ALERTS)  # the answer stays below MAX_ANSWER_BYTES
        book = self.engine.book
        standing = {a.id: a for a in (*book.active(), *book.unacknowledged())}
        chosen = [
            a
            for a in standing.values()
            if (line is None or a.line == line) and (rule is None or a.rule == rule)
        ]
        return {"ok": True, **alert_listing(chosen, self.engine.refs(), self.engine.config, limit)}

    async def line_mode(self, request: dict[str, Any]) -> answers.Recorded:
        """Set a line to production, changeover or washdown; who did it is recorded."""
        wanted = parse(api.LineMode, request)
        line, mode = wanted.line, wanted.mode
        operator = _operator(wanted.operator)
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
            raise CommandError(
                f"unknown alert {what!r}: no standing alert has it (an alert cleared and "
                "acknowledged is closed; `lineside alerts` lists the standing ones)"
            ) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    async def _store(
        self, records: list[Record], operator: Operator, what: str
    ) -> answers.Recorded:
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

    async def report(self, request: dict[str, Any]) -> answers.ReportAnswer:
        """The report document of ``run_number`` (docs/command-output.md), its standing
        alerts trimmed to fit one answer."""
        from gateway.report import ReportError, build_report  # noqa: PLC0415
        from gateway.report_output import (  # noqa: PLC0415
            fit_standing,
            report_document,
            run_alerts,
            run_losses,
        )

        run_number = parse(api.Report, request).run_number

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

    async def list_records(self, request: dict[str, Any]) -> answers.DeadLetterPage:
        """The quarantined records after ``after`` (a sequence number), ``limit`` at most."""
        wanted = parse(api.DeadLetterList, request)
        after, limit = wanted.after, min(wanted.limit, MAX_LIST_RECORDS)
        total = await self.outbox.quarantine_count()
        page = await self.outbox.quarantine_page(after=after, limit=limit + 1)
        return {
            "ok": True,
            "total": total,
            "records": [dataclasses.asdict(entry) for entry in page[:limit]],
            "more": len(page) > limit,
        }

    async def show_record(self, request: dict[str, Any]) -> answers.DeadLetterRecord:
        """One quarantined record: why, when, and its stored data."""
        seq = parse(api.DeadLetterShow, request).seq
        found = await self.outbox.quarantined_record(seq)
        if found is None:
            raise CommandError(f"record {seq} is not in the quarantine")
        entry, data = found
        return {"ok": True, "record": dataclasses.asdict(entry), "data": data}

    async def requeue(self, request: dict[str, Any]) -> answers.Requeued:
        """Send quarantined records again; the operator and the reason are recorded."""
        asked = parse(api.DeadLetterRequeue, request)
        reason, operator = asked.reason, _operator(asked.operator)
        ranges = [item for item in asked.seqs if isinstance(item, tuple)]
        wanted = {item for item in asked.seqs if isinstance(item, int)}
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
