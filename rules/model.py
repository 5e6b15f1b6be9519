"""What rules take and give. Pure data: no I/O, no asyncio, no clock reads.

Rules observe records (pack events, temperature readings, label scans: the dataclasses of
:mod:`gateway.core.records`, which are plain data) in the context of their production run
(:class:`RunContext`), with the time passed in. They report **findings**: "this condition
holds now for this subject" or "it no longer holds". The alert book (:mod:`rules.alerts`)
turns findings into alert transitions with one active alert per rule and subject,
acknowledgement, shelving and suppression.

A run's products are the ERP's own :class:`~gateway.core.runs.Product` and
:class:`~gateway.core.runs.Tier` (re-exported here): one product type from the ERP row to
the rule, so nothing is copied field by field on the way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from gateway.core.records import Severity
from gateway.core.runs import Product, Tier

__all__ = [
    "AlertEvent",
    "AlertTransition",
    "Finding",
    "Product",
    "RunContext",
    "Severity",
    "Tier",
]


@dataclass(frozen=True, slots=True)
class RunContext:
    """A production run, as the rules need it (built by the gateway from the ERP's run)."""

    run_number: str
    line: str
    batch_codes: tuple[str, ...]
    species: str | None
    products: tuple[Product, ...]
    pack_date: date | None
    shelf_life_adjust: int = 0
    """0 standard, +1 rubber clock, +2/+3 superchill (days)."""
    raw_material_kg: Decimal | None = None
    description: str = ""
    batch_species: Mapping[str, str] = field(default_factory=dict)
    """Species declared per batch code, where known."""
    batch_tiers: Mapping[str, Tier] = field(default_factory=dict)
    """Certification tier per batch code (e.g. GG-certified material), where known."""

    def product(self, plu: str) -> Product | None:
        """A product of this run by PLU."""
        return next((p for p in self.products if p.plu == plu), None)


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's observation about one subject at one time.

    ``active=True``: the condition holds (raise, or update the open alert);
    ``active=False``: it no longer holds (clear the open alert, if any).
    """

    rule: str
    """Stable rule id, e.g. ``emark_t2``, ``haccp_upper``, ``label_gap``."""
    subject: str
    """What the condition is about, e.g. ``L1/R42/10120/batch-3`` or ``tt1/T1``."""
    active: bool
    severity: Severity
    message: str
    ts_us: int
    line: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)
    value: float | None = None
    """The figure the message shows (giveaway %, running mean in g, °C, packs below T2,
    labels still missing), where there is one. An open alert is published again (UPDATED)
    when it moves by at least ``deadband`` from the value last published; smaller moves are
    kept in the book (the live view shows them) and go out with the next transition. Without
    a value, the occurrence count decides (see :mod:`rules.alert_updates`)."""
    deadband: float = 0.0
    """How far ``value`` must move to matter. 0: it is a count of discrete things (labels
    missing, packs below T2), and every change matters at once; above 0 it is a measurement,
    and its updates are also held off for a minute after the last one (a noisy signal
    crossing its deadband back and forth must not flood the operator)."""
    event: bool = False
    """Each active finding is one more occurrence of the condition (a label, a read), not a
    new look at a lasting state: the occurrence count is published on a 1-2-5 series."""


class AlertEvent(StrEnum):
    """What happened to an alert (ISA-18.2 style life cycle)."""

    RAISED = "raised"
    UPDATED = "updated"
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"
    SHELVED = "shelved"
    UNSHELVED = "unshelved"
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One change of one alert; the gateway stores it (and syncs it) as an alert record."""

    alert_id: str
    rule: str
    subject: str
    event: AlertEvent
    severity: Severity
    message: str
    ts_us: int
    line: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)
    """The finding's detail, plus ``config`` (the rule settings it was evaluated with) and,
    for acknowledgements and shelving, ``operator``, ``comment`` and ``until_us``."""
