"""A run's stored version record, built once for the poller, the operator and seeded stores.

The version's own columns (number, line, status) are what the ``runs`` table and the
warehouse are keyed on; they must say exactly what its payload says, and the payload must
give the run back.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from gateway.core.runs import Product, ProductionRun, RunStatus, Tier, run_from_json, run_version

RUN = ProductionRun(
    run_number="R-2026-0412",
    line="L2",
    batch_codes=("B7731",),
    description="SALMON FILLET",
    species="salmon",
    product_type="fillet",
    products=(Product(plu="41240", nominal_g=Decimal(120), tier=Tier.PREMIUM, description="A"),),
    raw_material_kg=Decimal("812.5"),
    pack_date=date(2026, 3, 2),
    shelf_life_adjust=0,
    planned_start=datetime(2026, 3, 2, 6, 0, tzinfo=UTC),
    planned_end=datetime(2026, 3, 2, 14, 0, tzinfo=UTC),
    actual_start=None,
    actual_end=None,
    status=RunStatus.PLANNED,
    updated=datetime(2026, 3, 1, 17, 30, tzinfo=UTC),
)


@pytest.mark.parametrize("status", list(RunStatus))
def test_the_columns_say_what_the_payload_says(status: RunStatus) -> None:
    run = dataclasses.replace(RUN, status=status)
    version = run_version(run, 1_772_431_200_000_000)
    assert (version.ts_us, version.run_number, version.line, version.status) == (
        1_772_431_200_000_000,
        "R-2026-0412",
        "L2",
        status.value,
    )
    assert (version.source, version.actor) == ("erp", None)
    assert run_from_json(version.payload) == run


def test_an_operators_version_names_the_operator() -> None:
    version = run_version(RUN, 5, source="operator", actor="kari")
    assert (version.source, version.actor) == ("operator", "kari")
    assert run_from_json(version.payload) == RUN
