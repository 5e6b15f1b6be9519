"""One product type from the ERP row to the rule: the rules read the ERP's own Product."""

from __future__ import annotations

import dataclasses
from datetime import UTC
from decimal import Decimal

import gateway.core.runs
import rules.model
from gateway.config import RulesSection
from gateway.core.runs import ProductionRun, parse_run
from gateway.rules_engine import run_context

ROW = {
    "RunNumber": "R42",
    "Line": "L1",
    "BatchCode": "SAL-2611-07",
    "Description": "Premium Salmon Fillets",
    "Updated": "2026-11-23T06:00:00Z",
    "Products": [
        {
            "PLU": "10120",
            "Description": "Premium Salmon 120g",
            "NominalWeight": "120",
            "Tier": "Premium",
            "Tare": "4.5",
            "Glaze": "2",
            "GTIN": "5012345678900",
        },
        {"PLU": "30900", "Description": "Family Pack", "Tier": "GG", "CatchWeight": "Y"},
    ],
}


def _run() -> ProductionRun:
    run = parse_run(ROW, tz=UTC)
    assert isinstance(run, ProductionRun), run
    return run


def test_the_rules_name_the_erps_product_and_tier() -> None:
    assert rules.model.Product is gateway.core.runs.Product
    assert rules.model.Tier is gateway.core.runs.Tier


def test_the_rules_see_every_field_the_erp_gave_and_the_configured_price() -> None:
    run = _run()
    settings = RulesSection.model_validate({"products": [{"plu": "10120", "price_per_kg": 18.5}]})

    context = run_context(run, settings)

    priced, unpriced = context.products
    assert priced == dataclasses.replace(run.products[0], price_per_kg=Decimal("18.5"))
    assert priced.gtin == "05012345678900"
    assert priced.glaze_pct == Decimal(2)
    assert unpriced == run.products[1]
    assert unpriced.price_per_kg is None


def test_a_parsed_product_has_no_price_until_the_rules_are_given_one() -> None:
    assert all(product.price_per_kg is None for product in _run().products)
