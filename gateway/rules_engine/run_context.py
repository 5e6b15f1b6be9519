"""The rules' view of the gateway's inputs: an ERP run as a :class:`rules.model.RunContext`,
a probe's config as HACCP limits."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from decimal import Decimal

from gateway.config import ProbeRules, RulesSection
from gateway.core.runs import ProductionRun
from rules.haccp import ProbeLimits
from rules.model import RunContext, Tier

log = logging.getLogger(__name__)


def run_context(run: ProductionRun, rules: RulesSection) -> RunContext:
    """The rules' view of an ERP run."""
    products = []
    for product in run.products:
        price = rules.threshold("price_per_kg", line=run.line, plu=product.plu)
        # The ERP's product is the rules' product; only the price comes from the config.
        products.append(
            dataclasses.replace(
                product, price_per_kg=Decimal(str(price)) if price is not None else None
            )
        )
    tiers: dict[str, Tier] = {}
    for code, tier in _extra_mapping(run, "batchtiers").items():
        try:
            tiers[code] = Tier(tier.strip().lower())
        except ValueError:
            log.warning("run %s: batch %s has unknown tier %r", run.run_number, code, tier)
    return RunContext(
        batch_species={
            k: v.strip().lower() for k, v in _extra_mapping(run, "batchspecies").items()
        },
        batch_tiers=tiers,
        run_number=run.run_number,
        line=run.line,
        batch_codes=run.batch_codes,
        species=run.species,
        products=tuple(products),
        pack_date=run.pack_date,
        shelf_life_adjust=run.shelf_life_adjust,
        raw_material_kg=run.raw_material_kg,
        description=run.description,
    )


def _extra_mapping(run: ProductionRun, key: str) -> dict[str, str]:
    """A batch-code -> text mapping the ERP sent beyond the run model, e.g. ``BatchTiers``
    (the certification of each batch: Premium/GG/Export) or ``BatchSpecies``."""
    for name, value in run.extra.items():
        if name.replace("_", "").lower() == key and isinstance(value, Mapping):
            return {str(k): str(v) for k, v in value.items()}
    return {}


def probe_limits(probe: ProbeRules) -> ProbeLimits:
    """The HACCP rule's limits from the config."""
    return ProbeLimits(
        upper_c=Decimal(str(probe.upper_c)) if probe.upper_c is not None else None,
        lower_c=Decimal(str(probe.lower_c)) if probe.lower_c is not None else None,
        debounce_s=probe.debounce_s,
        hysteresis_c=Decimal(str(probe.hysteresis_c)),
        no_data_s=probe.no_data_s,
        stuck_s=probe.stuck_s,
    )


__all__ = ["probe_limits", "run_context"]
