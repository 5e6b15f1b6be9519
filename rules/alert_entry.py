"""The alert book's state of one alert, and what it makes: transitions and read-only views.

Kept apart from the life cycle (:mod:`rules.alerts`) so that the book's rules read on their
own; everything here is a plain function of one entry.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field

from rules.alert_model import Alert, AlertState, AndonColour
from rules.alert_updates import Published, update_due
from rules.model import AlertEvent, AlertTransition, Finding, Severity

__all__ = [
    "AlertEntry",
    "alert_view",
    "andon_colour",
    "entry_from_view",
    "new_alert_id",
    "operator_name",
    "publish_due",
    "transition",
]

_RANK = {Severity.WARNING: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}


@dataclass(slots=True)
class AlertEntry:
    """The book's mutable state of one alert; :func:`alert_view` is its read-only view."""

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

    def fold(self, finding: Finding) -> tuple[bool, bool]:
        """Fold another active finding of the condition into the entry: whether its
        message, severity or detail changed, and whether its severity rose."""
        if self.detail is None and (finding.message, finding.severity) == (
            self.message,
            self.severity,
        ):
            # Restored from a view without detail: adopt it rather than flood after a restart.
            self.detail = dict(finding.detail)
        changed = (finding.message, finding.severity, dict(finding.detail)) != (
            self.message,
            self.severity,
            self.detail,
        )
        escalated = _RANK[finding.severity] > _RANK[self.severity]
        self.occurrences += 1
        self.last_us = max(self.last_us, finding.ts_us)
        self.message = finding.message
        self.severity = finding.severity
        self.detail = dict(finding.detail)
        self.value, self.deadband, self.event = finding.value, finding.deadband, finding.event
        if escalated:
            # A higher priority is a new demand on the operator (ISA-18.2 re-annunciation).
            self.acknowledged_by = None
            self.acknowledged_us = None
        return changed, escalated

    def publish(self, ts_us: int) -> None:
        """Note that the alert's current state went out in a RAISED or UPDATED transition."""
        self.published = Published(self.severity, self.value, self.occurrences, ts_us)


def publish_due(entry: AlertEntry, now_us: int, *, changed: bool) -> str:
    """When the entry's next UPDATED may go out (:func:`rules.alert_updates.update_due`)."""
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


def transition(
    entry: AlertEntry,
    event: AlertEvent,
    ts_us: int,
    cfg: Mapping[str, object],
    detail: Mapping[str, object] | None = None,
    *,
    message: str | None = None,
) -> AlertTransition:
    """A transition of the entry as it is now, with its figures and the rule's settings
    (``message``: the finding's own, when it has one, else the entry's)."""
    return AlertTransition(
        alert_id=entry.id,
        rule=entry.rule,
        subject=entry.subject,
        event=event,
        severity=entry.severity,
        message=entry.message if message is None else message,
        ts_us=ts_us,
        line=entry.line,
        detail={**(detail or {}), **entry.figures(), "config": dict(cfg)},
    )


def andon_colour(entries: Iterable[AlertEntry]) -> AndonColour:
    """The andon colour a line's active, unshelved alerts give.

    Red: any CRITICAL alert that is not suppressed; amber: any such MAJOR or WARNING; else
    green. Cleared alerts do not light it, acknowledged active ones do (the andon shows the
    condition, not the paperwork). A line mode never hides an active CRITICAL alert nobody
    has acknowledged: a wrong use-by latched before a changeover still holds the andon red
    through it (a mode suppresses *new* production noise, not a demand already made on the
    operator).
    """
    colour: AndonColour = "green"
    for entry in entries:
        if entry.suppressed and not (
            entry.severity is Severity.CRITICAL and entry.acknowledged_by is None
        ):
            continue
        if entry.severity is Severity.CRITICAL:
            return "red"
        colour = "amber"
    return colour


def alert_view(entry: AlertEntry, shelf: int | None) -> Alert:
    """The read-only view of an entry; ``shelf`` is the expiry of its shelf, if shelved."""
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


def entry_from_view(alert: Alert, seq: int) -> AlertEntry:
    """Rebuild an entry from a stored view (after a restart), as the ``seq``-th in the book.

    Raises:
        ValueError: the view has a state this book does not know.
    """
    try:
        state = AlertState(alert.state)
    except ValueError:
        msg = f"alert {alert.id} has an unknown state {alert.state!r}"
        raise ValueError(msg) from None
    entry = AlertEntry(
        id=alert.id,
        rule=alert.rule,
        subject=alert.subject,
        line=alert.line,
        severity=Severity(alert.severity),
        message=alert.message,
        raised_us=alert.raised_us,
        seq=seq,
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
    return entry


def new_alert_id(taken: Container[str], rule: str, subject: str, ts_us: int) -> str:
    """``rule:subject:ts_us``, with ``#2``, ``#3``... when that id is taken already."""
    base = f"{rule}:{subject}:{ts_us}"
    alert_id, n = base, 1
    while alert_id in taken:
        n += 1
        alert_id = f"{base}#{n}"
    return alert_id


def operator_name(operator: str) -> str:
    """The operator's name as given, stripped; ValueError when there is none."""
    who = operator.strip()
    if not who:
        msg = "an operator name is required"
        raise ValueError(msg)
    return who
