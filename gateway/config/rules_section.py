"""``[rules]``: thresholds of the on-device rules and HACCP limits per probe."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from gateway.config.base import Identifier, StrictModel
from gateway.config.hints import did_you_mean
from rules.actions import DEFAULT_ACTIONS, RULES_WITH_ACTIONS
from rules.emark_settings import check_batch_window, check_min_packs


class RuleThresholds(StrictModel):
    """Rule settings that can be overridden per line and per product (PLU)."""

    giveaway_warn_pct: float | None = Field(default=None, ge=0, le=100)
    """Giveaway above this % of Qn raises a WARNING (default 3 %)."""
    label_weight_tolerance_g: float | None = Field(default=None, ge=0)
    """Label net weight (AI 310n) may differ from the checkweigher by this much."""
    price_per_kg: float | None = Field(default=None, ge=0)
    """Product price, to put giveaway in money."""


class LineRules(RuleThresholds):
    """Overrides for one line."""

    line: Identifier
    """The line (one of ``[[lines]]``)."""


class ProductRules(RuleThresholds):
    """Overrides for one product."""

    plu: str
    """The product's PLU as the ERP names it."""


class ProbeRules(StrictModel):
    """HACCP limits of one probe (a critical control point)."""

    device: Identifier
    """The device id."""
    probe: Identifier
    """The probe (tag) name."""
    upper_c: float | None = None
    """Upper critical limit, °C (e.g. 5 for chilled fish products; 2 for fresh fish on ice)."""
    lower_c: float | None = None
    """Lower critical limit, °C (e.g. -18 as an upper bound is written upper_c for frozen)."""
    debounce_s: float = Field(default=60.0, ge=0, le=86_400)
    """A breach counts when the value stays beyond the limit this long."""
    hysteresis_c: float = Field(default=0.5, ge=0, le=20)
    """A breach clears only this far back inside the limit."""
    no_data_s: float = Field(default=300.0, gt=0)
    """No reading for this long is a sensor fault."""
    stuck_s: float | None = Field(default=None, gt=0)
    """An unchanged value for this long is a sensor fault."""

    @model_validator(mode="after")
    def _has_a_limit(self) -> Self:
        if self.upper_c is None and self.lower_c is None:
            raise ValueError("give upper_c, lower_c or both")
        if self.upper_c is not None and self.lower_c is not None and self.lower_c >= self.upper_c:
            raise ValueError("lower_c must be below upper_c")
        return self


class RulesSection(StrictModel):
    """On-device rules; numbers default to the law or the house standard they cite."""

    giveaway_warn_pct: float = Field(default=3.0, ge=0, le=100)
    """Giveaway above this % of Qn raises a WARNING."""
    giveaway_min_packs: int = Field(default=20, ge=1)
    """Packs before giveaway is judged."""
    emark_batch_minutes: float = Field(default=60.0, le=24 * 60)
    """℮ inspection batch: the line's output in this long (SI 2006/659 Sch 2 para 2.6: one
    hour of maximum output when checked at the end of the line)."""
    emark_min_packs: int = 10
    """Packs in a batch before the running mean and T1 share are judged."""
    label_reorder_window: int = Field(default=3, ge=0, le=100)
    """Label numbers may arrive this far out of order before a gap is reported."""
    label_weight_tolerance_g: float = Field(default=2.0, ge=0)
    """Label net weight may differ from the checkweigher by this much."""
    shelf_life_base_days: int = Field(default=9, ge=1, le=60)
    """Use-by = pack date + this + the run's adjustment (0, +1 rubber clock, +2/+3 superchill)."""
    freeze_down_day: int = Field(default=13, ge=1, le=60)
    """Product reaching this day after packing must be frozen down."""
    yield_warn_pct: float = Field(default=90.0, ge=0, le=100)
    """Packed kg over raw material kg below this raises a WARNING."""
    lines: tuple[LineRules, ...] = ()
    """Per-line overrides."""
    products: tuple[ProductRules, ...] = ()
    """Per-product overrides."""
    probes: tuple[ProbeRules, ...] = ()
    """HACCP limits per probe; a probe without limits is recorded but not judged."""
    actions: dict[str, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict)
    """Corrective action per rule id, shown with its alerts, e.g. ``haccp_upper = "Move
    product to chill, check probe, notify QA"``. Replaces the default text of that rule
    (HACCP, ℮, use-by, batch and device_down rules have defaults: rules/actions.py); an
    empty text removes it."""

    # The ℮ batch settings are checked by the rules that use them (rules/emark_settings.py),
    # so a configuration that loads always makes a valid batch.
    @field_validator("emark_batch_minutes")
    @classmethod
    def _emark_window(cls, minutes: float) -> float:
        check_batch_window(minutes, "emark_batch_minutes")
        return minutes

    @field_validator("emark_min_packs")
    @classmethod
    def _emark_min_packs(cls, packs: int) -> int:
        check_min_packs(packs, "emark_min_packs")
        return packs

    @field_validator("actions")
    @classmethod
    def _known_rules(cls, actions: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(actions) - RULES_WITH_ACTIONS)
        if unknown:
            known = ", ".join(sorted(RULES_WITH_ACTIONS))
            hint = did_you_mean(unknown[0], RULES_WITH_ACTIONS)
            raise ValueError(f"no such rule: {', '.join(unknown)}{hint or ';'} rules: {known}")
        return actions

    def action(self, rule: str) -> str:
        """The corrective action for a rule's alerts ("" for none)."""
        return self.actions.get(rule, DEFAULT_ACTIONS.get(rule, "")).strip()

    def threshold(self, name: str, *, line: str | None, plu: str | None) -> float | None:
        """A threshold for a line and product: product beats line beats the default."""
        for override in (
            next((p for p in self.products if p.plu == plu), None),
            next((x for x in self.lines if x.line == line), None),
        ):
            value = getattr(override, name, None) if override is not None else None
            if value is not None:
                return float(value)
        value = getattr(self, name, None)
        return float(value) if value is not None else None
