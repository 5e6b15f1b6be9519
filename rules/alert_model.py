"""The alert book's public types: an alert as the TUI, the andon and the store see it, its
states (ISA-18.2 names) and the line modes. The life cycle itself is :mod:`rules.alerts`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from rules.alert_updates import Published
from rules.model import Severity

__all__ = [
    "DEFAULT_NEVER_SUPPRESS",
    "LINE_MODES",
    "Alert",
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
