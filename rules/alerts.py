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

from rules.alert_entry import (
    AlertEntry,
    alert_view,
    andon_colour,
    entry_from_view,
    new_alert_id,
    operator_name,
    publish_due,
    transition,
)
from rules.alert_line_modes import LineModes
from rules.alert_model import (
    DEFAULT_NEVER_SUPPRESS,
    LINE_MODES,
    Alert,
    AlertState,
    AndonColour,
    LineMode,
)
from rules.model import AlertEvent, AlertTransition, Finding

__all__ = [
    "DEFAULT_NEVER_SUPPRESS",
    "LINE_MODES",
    "Alert",
    "AlertBook",
    "AlertState",
    "AndonColour",
    "LineMode",
]


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
        self._modes = LineModes(never_suppress, suppressible_rules)
        self._max_history = max_history
        self._alerts: dict[str, AlertEntry] = {}
        self._open: dict[tuple[str, str], str] = {}
        self._latest: dict[tuple[str, str], str] = {}
        self._shelves: dict[tuple[str, str], int] = {}
        """Shelf expiry per (rule, subject): it covers that subject's re-raises too."""
        self._held: dict[tuple[str, str], tuple[Finding, Mapping[str, object]]] = {}
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
        suppress = self._modes.suppresses(finding.rule, finding.line)
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
            out.append(transition(entry, AlertEvent.SUPPRESSED, finding.ts_us, cfg))
        elif entry.suppressed and not suppress:
            entry.suppressed = False
            out.append(transition(entry, AlertEvent.UNSUPPRESSED, finding.ts_us, cfg))

        changed, escalated = entry.fold(finding)
        if entry.suppressed or self._shelf_of(entry) is not None:
            return out
        if publish_due(entry, finding.ts_us, changed=changed) != "now":
            return out
        extra: dict[str, object] = {"escalated": True} if escalated else {}
        entry.publish(finding.ts_us)
        out.append(
            transition(entry, AlertEvent.UPDATED, finding.ts_us, cfg, {**finding.detail, **extra})
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
        who = operator_name(operator)
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
        acknowledged = transition(
            entry,
            AlertEvent.ACKNOWLEDGED,
            ts_us,
            entry.config,
            {"operator": who, "comment": comment},
        )
        if entry.cleared_us is not None:
            self._close(entry)
        return acknowledged

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
        who = operator_name(operator)
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
        return transition(
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
            if publish_due(entry, ts_us, changed=False) == "now":
                entry.publish(ts_us)
                out.append(
                    transition(entry, AlertEvent.UPDATED, ts_us, entry.config, entry.detail or {})
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
                transition(
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
        previous = self._modes.set(line, mode)
        extra: dict[str, object] = {"mode": mode, "previous_mode": previous}
        if operator is not None:
            extra["operator"] = operator
        out: list[AlertTransition] = []
        for key in sorted(self._open):
            entry = self._alerts[self._open[key]]
            if entry.line != line:
                continue
            suppress = self._modes.suppresses(entry.rule, entry.line)
            if suppress and not entry.suppressed:
                entry.suppressed = True
                out.append(transition(entry, AlertEvent.SUPPRESSED, ts_us, entry.config, extra))
            elif entry.suppressed and not suppress:
                entry.suppressed = False
                out.append(transition(entry, AlertEvent.UNSUPPRESSED, ts_us, entry.config, extra))
        for key in sorted(self._held):
            finding, cfg = self._held[key]
            if finding.line == line and not self._modes.suppresses(finding.rule, finding.line):
                del self._held[key]
                out.append(self._raise(finding, cfg, ts_us, {"first_seen_us": finding.ts_us}))
        return out

    def line_mode(self, line: str) -> LineMode:
        """The line's mode (``production`` until told otherwise)."""
        return self._modes.mode(line)

    def is_suppressible(self, rule: str) -> bool:
        """Whether line modes suppress this rule."""
        return self._modes.is_suppressible(rule)

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
        """The andon colour for a line, from its active alerts that are not shelved
        (:func:`rules.alert_entry.andon_colour` says which light it)."""
        entries = (self._alerts[alert_id] for alert_id in self._open.values())
        return andon_colour(e for e in entries if e.line == line and self._shelf_of(e) is None)

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
            entry = entry_from_view(alert, self._seq + 1)
            old = self._alerts.pop(alert.id, None)
            if old is not None and self._open.get(old.key) == old.id:
                del self._open[old.key]
            self._seq = entry.seq
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

    def _shelf_of(self, entry: AlertEntry) -> int | None:
        if self._latest.get(entry.key) != entry.id:
            return None
        return self._shelves.get(entry.key)

    def _entry(self, alert_id: str) -> AlertEntry:
        try:
            return self._alerts[alert_id]
        except KeyError:
            msg = f"no alert {alert_id!r} in the book (unknown, or aged out of its history)"
            raise KeyError(msg) from None

    def _raise(
        self,
        finding: Finding,
        cfg: Mapping[str, object],
        ts_us: int,
        extra: Mapping[str, object] | None = None,
    ) -> AlertTransition:
        self._seq += 1
        entry = AlertEntry(
            id=new_alert_id(self._alerts, finding.rule, finding.subject, ts_us),
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
        return transition(entry, AlertEvent.RAISED, ts_us, cfg, detail)

    def _clear(
        self,
        entry: AlertEntry,
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
        message = finding.message if finding is not None and finding.message else None
        cleared = transition(entry, AlertEvent.CLEARED, when, cfg, detail, message=message)
        if entry.acknowledged_by is not None:
            self._close(entry)
        return cleared

    def _close(self, entry: AlertEntry) -> None:
        self._closed.append(entry.id)
        while len(self._closed) > self._max_history:
            gone = self._alerts.pop(self._closed.popleft(), None)
            if gone is not None and self._latest.get(gone.key) == gone.id:
                del self._latest[gone.key]

    def _view(self, entry: AlertEntry) -> Alert:
        return alert_view(entry, self._shelf_of(entry))
