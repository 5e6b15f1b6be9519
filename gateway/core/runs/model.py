"""The production-run types: a run, its products, its status and its rejection.

One batch of fish feeds one run on one line, and several products come out of it (e.g.
Premium 120 g, Premium 240 g, GG 280 g, Family Pack); exception runs carry several batch
codes. The ERP adapters build these (:func:`gateway.core.runs.parse_run`), the gateway
stores them (:mod:`gateway.core.runs.json_form`) and the rules read the same
:class:`Product` and :class:`Tier` (``rules.model.RunContext``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class Tier(StrEnum):
    """Product tiers; material may cascade Premium -> GG -> Export, never up."""

    PREMIUM = "premium"
    GG = "gg"
    EXPORT = "export"


class RunStatus(StrEnum):
    """Where a run is in its life."""

    PLANNED = "planned"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Product:
    """A sellable item packed in a run (a PLU), as the ERP gives it and the rules read it."""

    plu: str
    nominal_g: Decimal | None
    """Qn, the declared quantity in grams; None for catch-weight products."""
    tier: Tier
    catch_weight: bool = False
    """Catch weight: each pack priced by its own weight; the ℮ rules do not apply."""
    tare_g: Decimal = Decimal(0)
    glaze_pct: Decimal = Decimal(0)
    """Ice glaze as a percentage of the gross frozen weight, excluded from the net weight."""
    species: str | None = None
    gtin: str | None = None
    description: str = ""
    price_per_kg: Decimal | None = None
    """Not an ERP field: the gateway sets it from the rules' ``price_per_kg`` setting when
    it hands a run to the rules, so giveaway can be shown as money. None in a parsed run."""


@dataclass(frozen=True, slots=True)
class ProductionRun:
    """One ERP production run."""

    run_number: str
    line: str
    batch_codes: tuple[str, ...]
    description: str
    species: str | None
    """Normalised species name (``salmon``, ``cod``, ``sea bass`` ...), or None if unknown."""
    product_type: str | None
    """Normalised product type (``fillet``, ``smoked`` ...), or None if unknown."""
    products: tuple[Product, ...]
    raw_material_kg: Decimal | None
    pack_date: date | None
    shelf_life_adjust: int
    """Days added to the standard shelf life: 0 standard, +1 rubber clock, +2/+3 superchill."""
    planned_start: datetime | None
    planned_end: datetime | None
    actual_start: datetime | None
    actual_end: datetime | None
    status: RunStatus
    updated: datetime
    """The ERP's last-modified time of the row: the incremental watermark."""
    extra: Mapping[str, object] = field(default_factory=dict)
    """What the ERP sent beyond the run model, by its own field names (read-only: runs loaded
    from the store share one empty mapping, :mod:`gateway.run_sharing`)."""


@dataclass(frozen=True, slots=True)
class RunRejection:
    """An ERP row that could not be understood; kept with the raw row and the reasons."""

    raw: dict[str, object]
    reasons: tuple[str, ...]
    run_number: str | None = None
