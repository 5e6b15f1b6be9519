"""The alert book: findings in, alert transitions out (an ISA-18.2 style life cycle).

A pure state machine: no I/O, no clock reads; every time comes in as ``ts_us``. The gateway
feeds it the rules' :class:`~rules.model.Finding` s, stores the
:class:`~rules.model.AlertTransition` s it returns, and rebuilds it with :meth:`AlertBook.restore`
after a restart.

Invariants:

* At most **one active alert per (rule, subject)**. A condition that clears and comes back
  raises a new alert (new id); the old one stays in the book, cleared, until acknowledged.
  The rules choose subjects so that an alert is a condition (a rule on a line, run or
  product), not each event that shows it (docs/alarms.md §1).
* No floods: every active finding is folded into its open alert (``occurrences``,
  ``first_us``, ``last_us``, the latest message and value: what the live view shows), but an
  UPDATED transition goes out only for a change that matters (:mod:`rules.alert_updates`:
  severity, a value moved by its deadband, an occurrence count on the 1-2-5 series, or a
  changed message of a condition reported on its own transitions). Every transition
  carries the occurrence figures, so the clearing or the acknowledgement has the final ones.
* Shelving belongs to the (rule, subject), not to one alert instance, so shelving a
  chattering condition also covers its re-raises until the shelf expires.
* Shelved and suppressed alerts are still tracked (raises and clears are recorded), but they
  do not light the andon and their updates are silent.

States (:class:`AlertState`), as ISA-18.2 names them:

* ``active-unacknowledged``: the condition holds, nobody has acknowledged it;
* ``active-acknowledged``: the condition holds, an operator has acknowledged it;
* ``cleared-unacknowledged``: returned to normal before anyone acknowledged it;
* ``cleared``: returned to normal and acknowledged (closed; kept as history);
* ``shelved``: active, hidden by an operator until ``shelved_until_us``;
* ``suppressed``: active, hidden by design while its line is in changeover or washdown.

Line modes: while a line is in ``changeover`` or ``washdown``, findings of suppressible rules
for that line do not raise (they are held; if the condition still holds when the line goes
back to ``production``, it is raised then), alerts already open are SUPPRESSED once, and
they are UNSUPPRESSED on return to production if still active. By default every rule is
suppressible **except** those whose id starts with ``haccp_`` or ``store_``: a cold-chain
breach during washdown still matters (CCP monitoring never stops; see
:data:`DEFAULT_NEVER_SUPPRESS`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from rules.alert_updates import Published, update_due
from rules.model import AlertEvent, AlertTransition, Finding, Severity

__all__ = [
    "DEFAULT_NEVER_SUPPRESS",
    "LINE_MODES",
    "Alert",
    "AlertBook",
    "AlertState",
    "AndonColour",
    "LineMode",
]

LineMode = Literal["production", "changeover", "washdown"]
LINE_MODES: tuple[LineMode, ...] = ("production", "changeover", "washdown")
AndonColour = Literal["green", "amber", "red"]

DEFAULT_NEVER_SUPPRESS: tuple[str, ...] = ("haccp_", "store_")
"""Rule id prefixes that line modes never suppress: HACCP critical limits and cold-store
temperatures must be monitored and recorded whatever the line is doing."""

_RANK = {Severity.WARNING: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}


class AlertState(StrEnum):
    """Where an alert is in its life cycle (the ``state`` of :class:`Alert`)."""

    UNACKNOWLEDGED = "active-unacknowledged"
    ACKNOWLEDGED = "active-acknowledged"
    CLEARED_UNACKNOWLEDGED = "cleared-unacknowledged"
    CLEARED = "cleared"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"


@dataclass(frozen=True, slots=True)
class Alert:
    """A read-only view of one alert, as the TUI, the andon and the store see it.

    ``state`` folds the flags into one name (suppressed before shelved before the
    acknowledgement); ``acknowledged_by``, ``cleared_us`` and ``shelved_until_us`` keep the
    rest, so :meth:`AlertBook.restore` can rebuild the alert from this view alone.
    """

    id: str
    rule: str
    subject: str
    line: str | None
    severity: Severity
    state: AlertState
    raised_us: int
    message: str
    acknowledged_by: str | None = None
    acknowledged_us: int | None = None
    comment: str = ""
    """The last operator comment (acknowledgement or shelving)."""
    shelved_until_us: int | None = None
    cleared_us: int | None = None
    occurrences: int = 1
    """Active findings folded into the alert (labels, reads, observations of the condition)."""
    first_us: int | None = None
    """When the condition was first seen (None: as ``raised_us``)."""
    last_us: int | None = None
    """When it was last seen active (None: as ``raised_us``)."""
    value: float | None = None
    """The latest value of the figure its message shows, where the rule gives one."""
    published: Published | None = None
    """What its last RAISED or UPDATED transition said (severity, value, occurrences,
    time): the next update is judged against it (:mod:`rules.alert_updates`)."""

    @property
    def active(self) -> bool:
        """Whether the condition still holds (not cleared)."""
        return self.cleared_us is None

    @property
    def acknowledged(self) -> bool:
        """Whether an operator has acknowledged the alert."""
        return self.acknowledged_by is not None


@dataclass(slots=True)
class _Entry:
    id: str
    rule: str
    subject: str
    line: str | None
    severity: Severity
    message: str
    raised_us: int
    seq: int
    detail: Mapping[str, object] | None
    """The last finding's detail; None when unknown (restored from a view)."""
    config: Mapping[str, object] = field(default_factory=dict)
    acknowledged_by: str | None = None
    acknowledged_us: int | None = None
    comment: str = ""
    cleared_us: int | None = None
    suppressed: bool = False
    first_us: int = 0
    last_us: int = 0
    occurrences: int = 1
    value: float | None = None
    deadband: float = 0.0
    event: bool = False
    published: Published | None = None
    """What the last RAISED/UPDATED said (set at the raise, or from the stored view when
    restored)."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.subject)

    def figures(self) -> dict[str, object]:
        """The occurrence figures every transition carries."""
        figures: dict[str, object] = {
            "occurrences": self.occurrences,
            "first_us": self.first_us,
            "last_us": self.last_us,
        }
        if self.value is not None:
            figures["value"] = self.value
        return figures

    def publish(self, ts_us: int) -> None:
        """Note that the alert's current state went out in a RAISED or UPDATED transition."""
        self.published = Published(self.severity, self.value, self.occurrences, ts_us)


class AlertBook:
    """The alert life cycle for one gateway: raise, update, clear, acknowledge, shelve, suppress.

    Args:
        never_suppress: rule id prefixes that line modes never suppress (default
            :data:`DEFAULT_NEVER_SUPPRESS`: ``haccp_``, ``store_``).
        suppressible_rules: if given, only these rule ids are suppressible (still minus
            ``never_suppress``); None means every rule not excluded by prefix.
        max_history: closed alerts (cleared and acknowledged) kept for :meth:`recent` and
            :meth:`get`; older ones are forgotten (the store keeps them).
    """

    def __init__(
        self,
        *,
        never_suppress: Iterable[str] = DEFAULT_NEVER_SUPPRESS,
        suppressible_rules: Iterable[str] | None = None,
        max_history: int = 1000,
    ) -> None:
        if max_history < 0:
            msg = f"max_history must be >= 0, not {max_history}"
            raise ValueError(msg)
        self._never_suppress = tuple(never_suppress)
        self._suppressible = None if suppressible_rules is None else frozenset(suppressible_rules)
        self._max_history = max_history
        self._alerts: dict[str, _Entry] = {}
        self._open: dict[tuple[str, str], str] = {}
        self._latest: dict[tuple[str, str], str] = {}
        self._shelves: dict[tuple[str, str], int] = {}
        """Shelf expiry per (rule, subject): it covers that subject's re-raises too."""
        self._held: dict[tuple[str, str], tuple[Finding, Mapping[str, object]]] = {}
        self._modes: dict[str, LineMode] = {}
        self._closed: deque[str] = deque()
        self._seq = 0

    # -- findings -------------------------------------------------------------------------

    def apply(
        self, finding: Finding, config: Mapping[str, object] | None = None
    ) -> list[AlertTransition]:
        """Turn one finding into the transitions it causes (often none).

        Args:
            finding: the rule's observation; ``active=False`` clears the open alert.
            config: the rule settings the finding was evaluated with; copied into the
                ``config`` key of every transition's detail.

        Returns:
            RAISED, UPDATED or CLEARED (and SUPPRESSED/UNSUPPRESSED if the alert's
            suppression disagrees with its line's mode), in order.
        """
        cfg = dict(config or {})
        key = (finding.rule, finding.subject)
        suppress = self._should_suppress(finding.rule, finding.line)
        open_id = self._open.get(key)
        if open_id is None:
            if not finding.active:
                self._held.pop(key, None)
                return []
            if suppress:
                self._held[key] = (finding, cfg)
                return []
            return [self._raise(finding, cfg, finding.ts_us)]

        entry = self._alerts[open_id]
        entry.line = finding.line if finding.line is not None else entry.line
        entry.config = cfg
        if not finding.active:
            return [self._clear(entry, finding, cfg)]
        out: list[AlertTransition] = []
        if suppress and not entry.suppressed:
            entry.suppressed = True
            out.append(self._transition(entry, AlertEvent.SUPPRESSED, finding.ts_us, cfg))
        elif entry.suppressed and not suppress:
            entry.suppressed = False
            out.append(self._transition(entry, AlertEvent.UNSUPPRESSED, finding.ts_us, cfg))

        if entry.detail is None and (finding.message, finding.severity) == (
            entry.message,
            entry.severity,
        ):
            # Restored from a view without detail: adopt it rather than flood after a restart.
            entry.detail = dict(finding.detail)
        changed = (finding.message, finding.severity, dict(finding.detail)) != (
            entry.message,
            entry.severity,
            entry.detail,
        )
        escalated = _RANK[finding.severity] > _RANK[entry.severity]
        entry.occurrences += 1
        entry.last_us = max(entry.last_us, finding.ts_us)
        entry.message = finding.message
        entry.severity = finding.severity
        entry.detail = dict(finding.detail)
        entry.value, entry.deadband, entry.event = finding.value, finding.deadband, finding.event
        if escalated:
            # A higher priority is a new demand on the operator (ISA-18.2 re-annunciation).
            entry.acknowledged_by = None
            entry.acknowledged_us = None
        if entry.suppressed or self._shelf_of(entry) is not None:
            return out
        if self._due(entry, finding.ts_us, changed=changed) != "now":
            return out
        extra: dict[str, object] = {"escalated": True} if escalated else {}
        entry.publish(finding.ts_us)
        out.append(
            self._transition(
                entry, AlertEvent.UPDATED, finding.ts_us, cfg, {**finding.detail, **extra}
            )
        )
        return out

    def apply_all(
        self, findings: Iterable[Finding], config: Mapping[str, object] | None = None
    ) -> list[AlertTransition]:
        """:meth:`apply` each finding in order (same ``config``); all transitions."""
        return [t for f in findings for t in self.apply(f, config)]

    # -- operator actions -----------------------------------------------------------------

    def acknowledge(
        self, alert_id: str, operator: str, comment: str | None, ts_us: int
    ) -> AlertTransition:
        """An operator acknowledges an alert (active, or cleared-unacknowledged).

        Acknowledging a cleared alert closes it (it becomes history).

        Raises:
            KeyError: no such alert in the book.
            ValueError: no operator name, or the alert is already acknowledged.
        """
        entry = self._entry(alert_id)
        who = _operator(operator)
        if entry.acknowledged_by is not None:
            msg = (
                f"alert {alert_id} was already acknowledged by {entry.acknowledged_by} "
                f"at {entry.acknowledged_us}"
            )
            raise ValueError(msg)
        comment = (comment or "").strip()
        entry.acknowledged_by = who
        entry.acknowledged_us = ts_us
        entry.comment = comment
        transition = self._transition(
            entry,
            AlertEvent.ACKNOWLEDGED,
            ts_us,
            entry.config,
            {"operator": who, "comment": comment},
        )
        if entry.cleared_us is not None:
            self._close(entry)
        return transition

    def shelve(
        self, alert_id: str, operator: str, until_us: int, ts_us: int, comment: str = ""
    ) -> AlertTransition:
        """An operator shelves an alert (its rule and subject) until ``until_us``.

        While shelved, raises and clears are still recorded, updates are silent and the
        andon ignores the alert; :meth:`tick` unshelves it. Shelving again moves the expiry.

        Raises:
            KeyError: no such alert in the book.
            ValueError: no operator name, ``until_us`` not after ``ts_us``, or the alert was
                superseded by a newer alert for the same rule and subject.
        """
        entry = self._entry(alert_id)
        who = _operator(operator)
        if until_us <= ts_us:
            msg = f"shelving {alert_id} until {until_us} is not after now ({ts_us})"
            raise ValueError(msg)
        latest = self._latest.get(entry.key)
        if latest != alert_id:
            msg = f"alert {alert_id} was superseded by {latest}; shelve that one"
            raise ValueError(msg)
        self._shelves[entry.key] = until_us
        comment = comment.strip()
        entry.comment = comment
        return self._transition(
            entry,
            AlertEvent.SHELVED,
            ts_us,
            entry.config,
            {"operator": who, "comment": comment, "until_us": until_us},
        )

    def tick(self, ts_us: int) -> list[AlertTransition]:
        """Let time pass: UNSHELVED for every shelf that has expired by ``ts_us``.

        An alert still active when its shelf expires is re-announced: the UNSHELVED
        transition carries its current severity and message and ``reannounced: True``.
        Also UPDATED for open alerts whose measured value moved while its updates were held
        off (:mod:`rules.alert_updates`), once the hold-off is over.
        """
        out: list[AlertTransition] = []
        for open_id in sorted(self._open.values(), key=lambda i: self._alerts[i].seq):
            entry = self._alerts[open_id]
            if entry.value is None or entry.suppressed or self._shelf_of(entry) is not None:
                continue
            if self._due(entry, ts_us, changed=False) == "now":
                entry.publish(ts_us)
                out.append(
                    self._transition(
                        entry, AlertEvent.UPDATED, ts_us, entry.config, entry.detail or {}
                    )
                )
        for key, until_us in sorted(self._shelves.items(), key=lambda kv: (kv[1], kv[0])):
            if until_us > ts_us:
                continue
            del self._shelves[key]
            alert_id = self._latest.get(key)
            if alert_id is None:
                continue  # the alert has left the book (history limit)
            entry = self._alerts[alert_id]
            active = entry.cleared_us is None
            out.append(
                self._transition(
                    entry,
                    AlertEvent.UNSHELVED,
                    ts_us,
                    entry.config,
                    {"reannounced": active and not entry.suppressed, "until_us": until_us},
                )
            )
        return out

    # -- line modes -----------------------------------------------------------------------

    def set_line_mode(
        self, line: str, mode: str, ts_us: int, operator: str | None = None
    ) -> list[AlertTransition]:
        """Put a line into production, changeover or washdown (``operator``: who did it,
        carried in the transitions' detail).

        Always reconciles the line's alerts with the mode (so it is safe to call again after
        :meth:`restore`): SUPPRESSED for open suppressible alerts when leaving production,
        UNSUPPRESSED for suppressed alerts still active on return, and RAISED for conditions
        that began while suppressed and still held at the last finding.

        Raises:
            ValueError: an unknown mode.
        """
        if mode not in LINE_MODES:
            msg = f"line mode must be one of {', '.join(LINE_MODES)}, not {mode!r}"
            raise ValueError(msg)
        previous = self._modes.get(line, "production")
        self._modes[line] = next(m for m in LINE_MODES if m == mode)
        extra: dict[str, object] = {"mode": mode, "previous_mode": previous}
        if operator is not None:
            extra["operator"] = operator
        out: list[AlertTransition] = []
        for key in sorted(self._open):
            entry = self._alerts[self._open[key]]
            if entry.line != line:
                continue
            suppress = self._should_suppress(entry.rule, entry.line)
            if suppress and not entry.suppressed:
                entry.suppressed = True
                out.append(
                    self._transition(entry, AlertEvent.SUPPRESSED, ts_us, entry.config, extra)
                )
            elif entry.suppressed and not suppress:
                entry.suppressed = False
                out.append(
                    self._transition(entry, AlertEvent.UNSUPPRESSED, ts_us, entry.config, extra)
                )
        for key in sorted(self._held):
            finding, cfg = self._held[key]
            if finding.line == line and not self._should_suppress(finding.rule, finding.line):
                del self._held[key]
                out.append(self._raise(finding, cfg, ts_us, {"first_seen_us": finding.ts_us}))
        return out

    def line_mode(self, line: str) -> LineMode:
        """The line's mode (``production`` until told otherwise)."""
        return self._modes.get(line, "production")

    def is_suppressible(self, rule: str) -> bool:
        """Whether line modes suppress this rule."""
        if rule.startswith(self._never_suppress):
            return False
        return self._suppressible is None or rule in self._suppressible

    # -- queries --------------------------------------------------------------------------

    def active(self, line: str | None = None) -> list[Alert]:
        """Active alerts (including shelved and suppressed ones), oldest first."""
        entries = (self._alerts[i] for i in self._open.values())
        return [
            self._view(e)
            for e in sorted(entries, key=lambda e: e.seq)
            if line is None or e.line == line
        ]

    def open_alert(self, rule: str, subject: str) -> Alert | None:
        """The active alert of a rule and subject, if there is one."""
        alert_id = self._open.get((rule, subject))
        return None if alert_id is None else self._view(self._alerts[alert_id])

    def get(self, alert_id: str) -> Alert:
        """One alert by id.

        Raises:
            KeyError: no such alert in the book.
        """
        return self._view(self._entry(alert_id))

    def recent(self, limit: int = 50) -> list[Alert]:
        """The alerts in the book (active, cleared, closed history), newest raise first."""
        entries = sorted(self._alerts.values(), key=lambda e: e.seq, reverse=True)
        return [self._view(e) for e in entries[: max(limit, 0)]]

    def unacknowledged(self) -> list[Alert]:
        """Alerts awaiting acknowledgement (active or cleared), oldest first."""
        entries = sorted(self._alerts.values(), key=lambda e: e.seq)
        return [self._view(e) for e in entries if e.acknowledged_by is None]

    def andon_state(self, line: str) -> AndonColour:
        """The andon colour for a line.

        Red: any active CRITICAL alert that is neither shelved nor suppressed; amber: any
        such MAJOR or WARNING; else green. Cleared alerts do not light it, acknowledged
        active ones do (the andon shows the condition, not the paperwork). A line mode
        never hides an active CRITICAL alert nobody has acknowledged: a wrong use-by latched
        before a changeover still holds the andon red through it (a mode suppresses
        *new* production noise, not a demand already made on the operator).
        """
        colour: AndonColour = "green"
        for alert_id in self._open.values():
            entry = self._alerts[alert_id]
            if entry.line != line or self._shelf_of(entry) is not None:
                continue
            if entry.suppressed and not (
                entry.severity is Severity.CRITICAL and entry.acknowledged_by is None
            ):
                continue
            if entry.severity is Severity.CRITICAL:
                return "red"
            colour = "amber"
        return colour

    # -- restart --------------------------------------------------------------------------

    def restore(self, alerts: Iterable[Alert]) -> list[AlertTransition]:
        """Rebuild the book from stored alert views after a restart.

        Alerts with an id already in the book replace it. Line modes are not part of a view:
        call :meth:`set_line_mode` afterwards with each line's current mode.

        Returns:
            CLEARED for any alert found active alongside a newer active alert for the same
            rule and subject (the invariant is restored by keeping the newer); normally none.
        """
        out: list[AlertTransition] = []
        for alert in sorted(alerts, key=lambda a: (a.raised_us, a.id)):
            try:
                state = AlertState(alert.state)
            except ValueError:
                msg = f"alert {alert.id} has an unknown state {alert.state!r}"
                raise ValueError(msg) from None
            old = self._alerts.pop(alert.id, None)
            if old is not None and self._open.get(old.key) == old.id:
                del self._open[old.key]
            self._seq += 1
            entry = _Entry(
                id=alert.id,
                rule=alert.rule,
                subject=alert.subject,
                line=alert.line,
                severity=Severity(alert.severity),
                message=alert.message,
                raised_us=alert.raised_us,
                seq=self._seq,
                detail=None,
                acknowledged_by=alert.acknowledged_by,
                acknowledged_us=alert.acknowledged_us,
                comment=alert.comment,
                cleared_us=alert.cleared_us,
                suppressed=state is AlertState.SUPPRESSED and alert.cleared_us is None,
                first_us=alert.first_us if alert.first_us is not None else alert.raised_us,
                last_us=alert.last_us if alert.last_us is not None else alert.raised_us,
                occurrences=alert.occurrences,
                value=alert.value,
            )
            # Updates go on from what was last published, as if there had been no restart.
            entry.published = alert.published or Published(
                entry.severity, entry.value, entry.occurrences, entry.last_us
            )
            self._alerts[entry.id] = entry
            self._latest[entry.key] = entry.id
            self._shelves.pop(entry.key, None)
            if alert.shelved_until_us is not None:
                self._shelves[entry.key] = alert.shelved_until_us
            if entry.cleared_us is None:
                previous = self._open.get(entry.key)
                if previous is not None:
                    stale = self._alerts[previous]
                    out.append(
                        self._clear(
                            stale,
                            None,
                            stale.config,
                            ts_us=alert.raised_us,
                            extra={"reason": f"superseded by {entry.id} on restore"},
                        )
                    )
                self._open[entry.key] = entry.id
            elif entry.acknowledged_by is not None:
                self._close(entry)
        return out

    # -- internals ------------------------------------------------------------------------

    def _should_suppress(self, rule: str, line: str | None) -> bool:
        if line is None or self._modes.get(line, "production") == "production":
            return False
        return self.is_suppressible(rule)

    @staticmethod
    def _due(entry: _Entry, now_us: int, *, changed: bool) -> str:
        if entry.published is None:
            return "now"
        return update_due(
            entry.published,
            severity=entry.severity,
            value=entry.value,
            deadband=entry.deadband,
            event=entry.event,
            occurrences=entry.occurrences,
            changed=changed,
            now_us=now_us,
        )

    def _shelf_of(self, entry: _Entry) -> int | None:
        if self._latest.get(entry.key) != entry.id:
            return None
        return self._shelves.get(entry.key)

    def _entry(self, alert_id: str) -> _Entry:
        try:
            return self._alerts[alert_id]
        except KeyError:
            msg = f"no alert {alert_id!r} in the book (unknown, or aged out of its history)"
            raise KeyError(msg) from None

    def _new_id(self, rule: str, subject: str, ts_us: int) -> str:
        base = f"{rule}:{subject}:{ts_us}"
        alert_id, n = base, 1
        while alert_id in self._alerts:
            n += 1
            alert_id = f"{base}#{n}"
        return alert_id

    def _raise(
        self,
        finding: Finding,
        cfg: Mapping[str, object],
        ts_us: int,
        extra: Mapping[str, object] | None = None,
    ) -> AlertTransition:
        self._seq += 1
        entry = _Entry(
            id=self._new_id(finding.rule, finding.subject, ts_us),
            rule=finding.rule,
            subject=finding.subject,
            line=finding.line,
            severity=finding.severity,
            message=finding.message,
            raised_us=ts_us,
            seq=self._seq,
            detail=dict(finding.detail),
            config=cfg,
            first_us=finding.ts_us,
            last_us=finding.ts_us,
            value=finding.value,
            deadband=finding.deadband,
            event=finding.event,
        )
        entry.publish(ts_us)
        self._alerts[entry.id] = entry
        self._open[entry.key] = entry.id
        self._latest[entry.key] = entry.id
        self._held.pop(entry.key, None)
        shelf = self._shelves.get(entry.key)
        detail: dict[str, object] = {**finding.detail, **(extra or {})}
        if shelf is not None:
            detail["shelved_until_us"] = shelf
        return self._transition(entry, AlertEvent.RAISED, ts_us, cfg, detail)

    def _clear(
        self,
        entry: _Entry,
        finding: Finding | None,
        cfg: Mapping[str, object],
        *,
        ts_us: int | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> AlertTransition:
        if finding is not None:
            when = finding.ts_us
        elif ts_us is not None:
            when = ts_us
        else:
            msg = "a clear needs a finding or a time"
            raise ValueError(msg)
        entry.cleared_us = when
        entry.suppressed = False
        del self._open[entry.key]
        detail: dict[str, object] = {
            **(finding.detail if finding is not None else {}),
            **(extra or {}),
        }
        message = finding.message if finding is not None and finding.message else entry.message
        transition = AlertTransition(
            alert_id=entry.id,
            rule=entry.rule,
            subject=entry.subject,
            event=AlertEvent.CLEARED,
            severity=entry.severity,
            message=message,
            ts_us=when,
            line=entry.line,
            detail={**detail, **entry.figures(), "config": dict(cfg)},
        )
        if entry.acknowledged_by is not None:
            self._close(entry)
        return transition

    def _close(self, entry: _Entry) -> None:
        self._closed.append(entry.id)
        while len(self._closed) > self._max_history:
            gone = self._alerts.pop(self._closed.popleft(), None)
            if gone is not None and self._latest.get(gone.key) == gone.id:
                del self._latest[gone.key]

    def _transition(
        self,
        entry: _Entry,
        event: AlertEvent,
        ts_us: int,
        cfg: Mapping[str, object],
        detail: Mapping[str, object] | None = None,
    ) -> AlertTransition:
        return AlertTransition(
            alert_id=entry.id,
            rule=entry.rule,
            subject=entry.subject,
            event=event,
            severity=entry.severity,
            message=entry.message,
            ts_us=ts_us,
            line=entry.line,
            detail={**(detail or {}), **entry.figures(), "config": dict(cfg)},
        )

    def _view(self, entry: _Entry) -> Alert:
        shelf = self._shelf_of(entry)
        if entry.cleared_us is not None:
            state = (
                AlertState.CLEARED
                if entry.acknowledged_by is not None
                else AlertState.CLEARED_UNACKNOWLEDGED
            )
        elif entry.suppressed:
            state = AlertState.SUPPRESSED
        elif shelf is not None:
            state = AlertState.SHELVED
        elif entry.acknowledged_by is not None:
            state = AlertState.ACKNOWLEDGED
        else:
            state = AlertState.UNACKNOWLEDGED
        return Alert(
            id=entry.id,
            rule=entry.rule,
            subject=entry.subject,
            line=entry.line,
            severity=entry.severity,
            state=state,
            raised_us=entry.raised_us,
            message=entry.message,
            acknowledged_by=entry.acknowledged_by,
            acknowledged_us=entry.acknowledged_us,
            comment=entry.comment,
            shelved_until_us=shelf,
            cleared_us=entry.cleared_us,
            occurrences=entry.occurrences,
            first_us=entry.first_us,
            last_us=entry.last_us,
            value=entry.value,
            published=entry.published,
        )


def _operator(operator: str) -> str:
    who = operator.strip()
    if not who:
        msg = "an operator name is required"
        raise ValueError(msg)
    return who
