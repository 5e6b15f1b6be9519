"""The rows the warehouse reader answers with: plain, frozen, JSON-able.

Every field carries a docstring: docs/warehouse-analytics.md and the API's OpenAPI
descriptions are generated from them. Times are timezone-aware UTC datetimes; grams and
kilograms measured by a checkweigher are floats (the edge's doubles, bit for bit); the ℮
figures the edge keeps as decimal strings are Decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from central.series_rows import (
    BreachInterval,
    ProductWeights,
    TemperaturePoint,
    TemperatureSeries,
    WeightSample,
)

__all__ = [
    "AlertRow",
    "BreachInterval",
    "BreachRow",
    "ComplianceCheck",
    "FleetRow",
    "GiveawayRow",
    "LineRow",
    "ProductSummary",
    "ProductWeights",
    "RunRow",
    "RunSummary",
    "ShelfLifeRow",
    "SiteRow",
    "TemperaturePoint",
    "TemperatureSeries",
    "Trace",
    "TraceLabel",
    "TracePack",
    "TraceRun",
    "TraceTemperature",
    "WeightSample",
]


@dataclass(frozen=True, slots=True)
class SiteRow:
    """One site: the gateways reporting under one site id."""

    site: str
    """The site id the gateways are configured with."""
    name: str | None
    """The site's name as configured on its gateways (None until one reports it)."""
    first_seen: datetime
    """When the warehouse first stored a record of the site."""
    last_seen: datetime
    """When the warehouse last stored a record of the site."""
    gateways: int
    """Gateways of the site."""
    lines: int
    """Lines of the site (a line is per gateway)."""


@dataclass(frozen=True, slots=True)
class LineRow:
    """One packing line of one gateway."""

    gateway: str
    """The gateway the line belongs to."""
    line: str
    """The line id (unique within its gateway)."""
    site: str
    """The gateway's site."""
    name: str | None
    """The line's name as configured on the gateway (None until reported)."""
    first_seen: datetime
    """First record of the line in the warehouse."""
    last_seen: datetime
    """Last record of the line in the warehouse."""


@dataclass(frozen=True, slots=True)
class RunRow:
    """One production run, at its newest version."""

    gateway: str
    """The gateway that recorded the run."""
    site: str
    """The gateway's site."""
    run_number: str
    """The run number (the ERP's, or the gateway's own for a provisional run)."""
    line: str
    """The line the run ran on."""
    status: str
    """The run's status (planned, active, ended, ...)."""
    source: str
    """Where the newest version came from (erp, operator, ...)."""
    provisional: bool
    """A run the gateway opened itself, not (yet) confirmed by the ERP."""
    description: str
    """The run's description."""
    species: str | None
    """The run's declared species."""
    product_type: str | None
    """The run's product type."""
    pack_date: date | None
    """The pack date printed on the run's labels."""
    planned_start: datetime | None
    """Planned start."""
    planned_end: datetime | None
    """Planned end."""
    actual_start: datetime | None
    """Actual start."""
    actual_end: datetime | None
    """Actual end (None while the run is open)."""
    batch_codes: tuple[str, ...]
    """The raw-material batch codes fed into the run."""


@dataclass(frozen=True, slots=True)
class ProductSummary:
    """One product of a run: its packs and giveaway (the figures of the run report)."""

    plu: str
    """The product's PLU."""
    description: str
    """The product's description."""
    nominal_g: Decimal | None
    """Qn, the nominal quantity (None for catch weight)."""
    catch_weight: bool
    """Sold at its own weight: no Qn, no ℮ limits, no giveaway."""
    packs: int
    """Accepted packs tied to their values."""
    kg: float
    """Their net kilograms."""
    mean_g: float | None
    """Mean net grams."""
    sd_g: float | None
    """Sample standard deviation of net grams."""
    giveaway_g: float | None
    """Mean minus Qn, grams per pack."""
    giveaway_pct: float | None
    """Giveaway as a percentage of Qn."""
    giveaway_kg: float | None
    """Kilograms given away over the run (sum of net minus Qn per pack)."""
    below_t1: int
    """Packs below T1 (℮ rule 2 allows 2.5 % of a batch)."""
    below_t2: int
    """Packs below T2 (℮ allows none)."""
    rejected: int
    """Packs the checkweigher rejected."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The per-run analytics row, taken from the run report so its figures agree with it."""

    gateway: str
    """The gateway that recorded the run."""
    site: str
    """The gateway's site."""
    line: str
    """The run's line."""
    run_number: str
    """The run number."""
    status: str
    """The run's status."""
    packs: int
    """Accepted packs of the run (all products, uncertain values included)."""
    kg: float
    """Their net kilograms."""
    uncertain_packs: int
    """Packs flagged VALUES_UNCERTAIN (in packs and kg, not in the product figures)."""
    packs_without_product: int
    """Packs not matched to a product of the run."""
    products: tuple[ProductSummary, ...]
    """Per product: packs, mean, sd, giveaway g / % / kg, T1/T2."""
    mean_g: float | None
    """Mean net grams over the products' packs (None without packs)."""
    sd_g: float | None
    """Standard deviation of net grams when the run has one product, else None."""
    giveaway_g: float | None
    """Mean giveaway per fixed-weight pack over all fixed-weight products."""
    giveaway_pct: float | None
    """Giveaway as a percentage of the fixed-weight packs' summed Qn."""
    giveaway_kg: float | None
    """Kilograms given away over all fixed-weight products."""
    emark_batches: int
    """℮ inspection batches closed on the run."""
    emark_failed: int
    """Of those, batches that failed (rule 1, rule 2 or a pack below T2)."""
    emark_verdict: str | None
    """'pass' when every batch passed, 'fail' when any failed, None without batches."""
    below_t2: int
    """Packs below T2 over the run (any is a ℮ failure)."""
    yield_pct: float | None
    """Packed kg against the raw material kg, percent."""
    missed_packs: int
    """Pack-counter gaps: packs the line counted and the gateway never received."""
    label_gaps: int
    """Label gaps raised on the run."""
    use_by_errors: int
    """Use-by errors raised on the run's labels."""
    haccp_breaches: int
    """Temperature (HACCP) breaches raised during the run."""
    haccp_breach_s: float
    """Summed duration of those breaches, seconds (an open breach counts to the run's end)."""
    use_by: date | None
    """The use-by the run's labels must carry."""


@dataclass(frozen=True, slots=True)
class TracePack:
    """One pack recorded on a traced run."""

    gateway: str
    """The gateway that recorded the pack."""
    seq: int
    """The record's sequence number on its gateway."""
    ts: datetime
    """When it was weighed."""
    line: str
    """Its line."""
    device: str
    """The checkweigher."""
    run_number: str | None
    """Its run."""
    pack_counter: int | None
    """The checkweigher's pack counter."""
    plu: str | None
    """Its product, when decided."""
    net_g: float
    """Net grams."""
    accepted: bool | None
    """Whether the checkweigher accepted it."""
    flags: int
    """The record's flags (docs/warehouse-analytics.md)."""


@dataclass(frozen=True, slots=True)
class TraceLabel:
    """One label scanned on a traced run."""

    gateway: str
    """The gateway that recorded the scan."""
    seq: int
    """The record's sequence number on its gateway."""
    ts: datetime
    """When it was scanned."""
    line: str
    """Its line."""
    run_number: str | None
    """Its run."""
    gtin: str | None
    """GS1 GTIN (01)."""
    batch: str | None
    """GS1 batch/lot (10)."""
    serial: str | None
    """GS1 serial (21)."""
    pack_date: date | None
    """GS1 pack date (13), when a valid date."""
    use_by: date | None
    """GS1 use-by (17), when a valid date."""
    net_weight_g: float | None
    """GS1 net weight, grams."""
    raw: str
    """The scanned text."""


@dataclass(frozen=True, slots=True)
class TraceTemperature:
    """One temperature reading on a traced run's line while it ran."""

    gateway: str
    """The gateway."""
    ts: datetime
    """When it was read."""
    line: str
    """The line."""
    probe: str
    """The probe."""
    location: str
    """Where the probe is."""
    celsius: float
    """Degrees Celsius."""


@dataclass(frozen=True, slots=True)
class TraceRun:
    """One run reached by a trace, with its products, packs, labels and temperatures."""

    run: RunRow
    """The run."""
    products: tuple[str, ...]
    """The PLUs of the run's products."""
    packs: tuple[TracePack, ...]
    """Every pack recorded on the run."""
    labels: tuple[TraceLabel, ...]
    """Every label scanned on the run (for a serial trace: the scans of that serial)."""
    temperatures: tuple[TraceTemperature, ...]
    """The temperature record of the run's line during the run."""


@dataclass(frozen=True, slots=True)
class Trace:
    """A batch code or a label serial traced through the runs it reached."""

    kind: str
    """'batch' or 'serial'."""
    key: str
    """The batch code or serial traced."""
    batch_codes: tuple[str, ...]
    """The batch codes reached (for a serial: its runs' batch codes)."""
    runs: tuple[TraceRun, ...]
    """The runs reached."""
    unmatched_labels: tuple[TraceLabel, ...] = ()
    """For a serial: its scans not joined to any run (no run was active on the line)."""


@dataclass(frozen=True, slots=True)
class ComplianceCheck:
    """One compliance check of a run."""

    check: str
    """The check: gg_in_premium, tails_in_premium, species_mismatch, scanback_orphan,
    yield, temperature_breach, giveaway, label_gaps (docs/warehouse-analytics.md)."""
    subject: str
    """What was judged: '{line}/{run}' or '{line}/{run}/{plu}'."""
    passed: bool
    """True when the run passes this check."""
    severity: str
    """Severity when it fails (critical, major, warning)."""
    message: str
    """Why, in words."""


@dataclass(frozen=True, slots=True)
class BreachRow:
    """One temperature (HACCP) breach: from its raise to its clearing."""

    gateway: str
    """The gateway."""
    site: str
    """The site."""
    line: str | None
    """The line."""
    alert_id: str
    """The alert's id on its gateway."""
    rule: str
    """The HACCP rule."""
    subject: str
    """The probe or location."""
    severity: str
    """Severity."""
    raised_at: datetime
    """When it was raised."""
    cleared_at: datetime | None
    """When it cleared (None while active)."""
    duration_s: float | None
    """Seconds from raise to clearing (None while active)."""
    message: str
    """The alert's message when raised."""


@dataclass(frozen=True, slots=True)
class GiveawayRow:
    """Giveaway over one group: a run, a line-hour, a line-shift or a product-day."""

    by: str
    """The grouping: run, line_hour, line_shift or product_day."""
    gateway: str
    """The gateway."""
    site: str
    """The site."""
    line: str | None
    """The line (None for product_day)."""
    run_number: str | None
    """The run (for by='run')."""
    plu: str | None
    """The product (for by='run' and by='product_day')."""
    period_start: datetime | None
    """Start of the hour, shift or day (UTC)."""
    packs: int
    """Accepted, certain, fixed-weight packs."""
    kg: float
    """Their net kilograms."""
    mean_g: float | None
    """Mean net grams."""
    giveaway_g: float | None
    """Mean giveaway per pack, grams."""
    giveaway_pct: float | None
    """Giveaway against Qn, percent."""
    giveaway_kg: float | None
    """Kilograms given away."""


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert's current state."""

    gateway: str
    """The gateway."""
    site: str
    """The site."""
    line: str | None
    """The line."""
    alert_id: str
    """The alert's id on its gateway."""
    rule: str
    """The rule that raised it."""
    subject: str
    """What it is about."""
    severity: str
    """Severity."""
    state: str
    """Its state (raised, acknowledged, shelved, ...)."""
    message: str
    """Its latest message."""
    raised_at: datetime | None
    """When it was last raised."""
    ts: datetime
    """Its latest transition."""


@dataclass(frozen=True, slots=True)
class ShelfLifeRow:
    """A run's product nearing its use-by or due to be frozen down."""

    gateway: str
    """The gateway."""
    site: str
    """The site."""
    line: str
    """The line."""
    run_number: str
    """The run."""
    pack_date: date
    """Pack date."""
    use_by: date
    """The use-by its labels carry."""
    day: int
    """Day of life on the asked date (pack day = day 1)."""
    days_left: int
    """Days until the use-by (negative: past it)."""
    expired: bool
    """Past its use-by."""
    freeze_down_due: bool
    """Day 13 or later: must be frozen down (rules/shelf_life.py)."""
    freeze_down_on: date | None = None
    """The day it must be frozen down from: day 13 of life, pack date + 12."""


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One gateway's sync and alert state."""

    gateway: str
    """The gateway."""
    site: str
    """Its site."""
    site_name: str | None
    """The site's name."""
    last_contact: datetime
    """When the warehouse last committed a batch of it."""
    sync_lag_s: float | None
    """Seconds between its newest record's time and when the warehouse received it."""
    since_contact_s: float
    """Seconds since the last contact at the asked time."""
    last_seq: int
    """Highest sequence number stored."""
    records: int
    """Records stored."""
    backlog: int | None
    """Records the gateway still held unsent when it last reported it with a batch (None:
    unknown, a gateway without ``[sync] report_backlog``)."""
    backlog_at: datetime | None
    """When the gateway counted that backlog, by its own clock."""
    active_alerts: int
    """Alerts active now."""
    raised_24h: int
    """Alerts raised in the 24 hours before the asked time."""
    per_10_min: float
    """Average alerts raised per ten minutes over those 24 hours (ISA-18.2)."""
    peak_10_min: int
    """Most raised in one ten-minute period."""
    flood_pct: float
    """Share of ten-minute periods in flood (more than 10 raised), percent."""
    stale: int
    """Alerts active more than a day."""
