"""Row types of a run's series: its pack weights and its temperatures (for the charts).

Re-exported by :mod:`central.rows`, where every row type of the reader is found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class ProductWeights:
    """The net weights of one product's accepted, certain packs, with its ℮ limits."""

    plu: str
    """The PLU."""
    description: str
    """Its description."""
    catch_weight: bool
    """Catch weight (no limits)."""
    nominal_g: Decimal | None
    """Qn."""
    t1_g: Decimal | None
    """T1 = Qn - TNE."""
    t2_g: Decimal | None
    """T2 = Qn - 2 TNE."""
    net_g: tuple[float, ...]
    """Every pack's net grams, in the order weighed."""


@dataclass(frozen=True, slots=True)
class WeightSample:
    """A run's pack weights per product (for a histogram against Qn, T1, T2)."""

    gateway: str
    """The gateway."""
    run_number: str
    """The run."""
    products: tuple[ProductWeights, ...]
    """Per product."""


@dataclass(frozen=True, slots=True)
class TemperaturePoint:
    """One reading."""

    ts: datetime
    """When."""
    celsius: float
    """Degrees Celsius."""


@dataclass(frozen=True, slots=True)
class BreachInterval:
    """One HACCP breach of a probe during a run."""

    rule: str
    """The HACCP rule."""
    severity: str
    """Severity."""
    start: datetime
    """Raised."""
    end: datetime | None
    """Cleared (None: still active at the run's end)."""
    side: str | None = None
    """Which limit it crossed, ``upper`` or ``lower``, from the alert's detail (None: a
    sensor fault)."""
    limit_c: float | None = None
    """The probe's critical limit it crossed, °C, from the alert's detail (rules/haccp.py
    records it there; None: a sensor fault)."""


@dataclass(frozen=True, slots=True)
class TemperatureSeries:
    """One probe's readings during a run and its breaches."""

    probe: str
    """The probe."""
    location: str
    """Where it is."""
    line: str
    """The line."""
    points: tuple[TemperaturePoint, ...]
    """Its readings during the run."""
    breaches: tuple[BreachInterval, ...]
    """Its breaches during the run."""
    lower_limit_c: float | None = None
    """The probe's lower critical limit, °C, as its latest breach of it records (None: no
    such breach overlaps the run; the limits themselves are the gateway's config)."""
    upper_limit_c: float | None = None
    """The probe's upper critical limit, °C, as its latest breach of it records (None: no
    such breach overlaps the run)."""
