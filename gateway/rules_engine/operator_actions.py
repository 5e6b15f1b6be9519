"""What operators do to alerts and lines: select, acknowledge, shelve, set a line's mode,
and the andon board's summary."""

from __future__ import annotations

from typing import Any

from gateway.core.records import (
    DeviceEvent,
    Record,
)
from gateway.rules_engine.events import LINE_MODE_EVENT, OPERATOR_SOURCE
from gateway.rules_engine.state import EngineState
from rules.alert_refs import resolve_ref, short_refs
from rules.alerts import Alert
from rules.emark import RULE_T2
from rules.ids import LATCHING_RULES
from rules.model import Finding


class OperatorActions(EngineState):
    """The rules engine's part that operators drive (through the control socket)."""

    def refs(self) -> dict[str, str]:
        """A short reference for each alert that is active or awaits acknowledgement
        (:mod:`rules.alert_refs`), unique among them."""
        return short_refs([a.id for a in (*self.book.active(), *self.book.unacknowledged())])

    def select(
        self,
        *,
        alert: str | None = None,
        rule: str | None = None,
        line: str | None = None,
        to_shelve: bool = False,
    ) -> list[str]:
        """The ids of the alerts an operator command names: one alert (by id or short
        reference), or every alert of a rule and/or a line awaiting acknowledgement
        (``to_shelve``: every active one), oldest first.

        Raises:
            KeyError: no alert matches.
            ValueError: nothing to select by, or a reference naming several alerts.
        """
        if alert is None and rule is None and line is None:
            raise ValueError("name an alert (id or reference), a rule or a line")
        candidates = self.book.active() if to_shelve else self.book.unacknowledged()
        if alert is not None:
            try:
                self.book.get(alert)
            except KeyError:
                pool = {a.id for a in (*self.book.active(), *self.book.unacknowledged())}
                alert = resolve_ref(alert, pool)
            chosen = [alert]
        else:
            chosen = [
                a.id
                for a in candidates
                if (rule is None or a.rule == rule) and (line is None or a.line == line)
            ]
        if not chosen:
            what = " and ".join(
                f"{k} {v}" for k, v in (("rule", rule), ("line", line)) if v is not None
            )
            state = "active" if to_shelve else "awaiting acknowledgement"
            raise KeyError(f"no alert {state} for {what}")
        return chosen

    def acknowledge(self, alert_id: str, operator: str, comment: str) -> list[Record]:
        """An operator acknowledges an alert (by id or short reference); latching alerts,
        and an ``emark_t2`` of a batch already closed, clear with it."""
        now = self.clock.wall_us()
        [alert_id] = self.select(alert=alert_id)
        transitions = [self.book.acknowledge(alert_id, operator, comment or None, now)]
        alert = self.book.get(alert_id)
        if alert is not None and alert.active and self._latched(alert):
            transitions += self.book.apply(
                Finding(
                    rule=alert.rule,
                    subject=alert.subject,
                    active=False,
                    severity=alert.severity,
                    message=f"acknowledged by {operator}",
                    ts_us=now,
                    line=alert.line,
                )
            )
        return self._records(transitions)

    def _latched(self, alert: Alert) -> bool:
        """Whether an active alert waits only for its acknowledgement to clear."""
        if alert.rule in LATCHING_RULES:
            return True
        # An emark_t2 whose batch has closed (its clear was held back for the operator).
        return alert.rule == RULE_T2 and all(
            b.subject != alert.subject for b in self.emark.open_batches()
        )

    def shelve(self, alert_id: str, operator: str, minutes: float, comment: str) -> list[Record]:
        """An operator shelves an alert (by id or short reference) for a while."""
        now = self.clock.wall_us()
        [alert_id] = self.select(alert=alert_id, to_shelve=True)
        until = now + round(minutes * 60_000_000)
        return self._records([self.book.shelve(alert_id, operator, until, now, comment)])

    def set_line_mode(
        self, line: str, mode: str, *, operator: str | None = None, ts_us: int | None = None
    ) -> list[Record]:
        """Set a line to production, changeover or washdown (suppresses production alerts).

        The change is itself a record (a ``line_mode`` event of the ``operator`` source,
        naming the ``operator`` who made it): it closes the line's ℮ batch, so a restart
        must see it to rebuild the same batches, and the line's mode must outlive the
        process. ``ts_us`` is given when replaying. Closing the batch leaves an
        ``emark_t2`` alert nobody has acknowledged active (see :meth:`_apply`).
        """
        now = self.clock.wall_us() if ts_us is None else ts_us
        previous = str(self.book.line_mode(line))
        out: list[Record] = []
        if not self._replaying:
            detail: dict[str, Any] = {"mode": mode, "previous_mode": previous}
            if operator is not None:
                detail["operator"] = operator
            out.append(
                DeviceEvent(
                    ts_us=now,
                    device=OPERATOR_SOURCE,
                    kind=LINE_MODE_EVENT,
                    line=line,
                    detail=detail,
                )
            )
        out += self._records(self.book.set_line_mode(line, mode, now, operator))
        if mode != "production":
            result = self.emark.close_line(line, now)
            out += self._apply(result.findings, self._emark_config())
            out += [self._batch_record(r) for r in result.closed_records]
        return out

    def summary(self, line: str, limit: int = 10) -> list[dict[str, object]]:
        """The active alerts of a line, most severe first, for the andon board."""
        order = {"critical": 0, "major": 1, "warning": 2}
        active = sorted(self.book.active(line), key=lambda a: (order[str(a.severity)], a.raised_us))
        refs = self.refs()
        return [
            {
                "id": a.id,
                "ref": refs.get(a.id, ""),
                "rule": a.rule,
                "subject": a.subject,
                "severity": str(a.severity),
                "message": a.message,
                "acknowledged": a.acknowledged,
                "occurrences": a.occurrences,
            }
            for a in active[:limit]
        ]


__all__ = ["OperatorActions"]
