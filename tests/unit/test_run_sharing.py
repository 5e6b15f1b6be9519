"""Stored runs loaded at start share equal values without changing a character of them.

:class:`gateway.run_sharing.ValueSharing` hands back one object for values of the same type
and text: runs after runs name the same line, products and times. Values that are equal but
written differently (200 and 200.0 g, 10:00 UTC and 11:00+01:00) must each keep their own
text, so every run's stored JSON comes back exactly as it was.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.runs import Product, ProductionRun, RunStatus, Tier, run_from_json, run_to_json
from gateway.run_sharing import NO_EXTRA, ValueSharing

PLUS_ONE = timezone(timedelta(hours=1))
MOMENTS = (
    datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
    datetime(2026, 3, 2, 11, 0, tzinfo=PLUS_ONE),  # the same instant, written otherwise
    datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
    None,
)
AMOUNTS = (Decimal(200), Decimal("200.0"), Decimal("2E+2"), None)


def product(nominal: Decimal | None, description: str) -> Product:
    return Product(plu="41240", nominal_g=nominal, tier=Tier.PREMIUM, description=description)


@st.composite
def runs(draw: st.DrawFn, number: int) -> ProductionRun:
    moment = st.sampled_from(MOMENTS)
    return ProductionRun(
        run_number=f"R{number}",
        line=draw(st.sampled_from(["L1", "L2"])),
        batch_codes=(f"B{number}",),
        description=draw(st.sampled_from(["SALMON", "COD"])),
        species=draw(st.sampled_from(["salmon", None])),
        product_type=draw(st.sampled_from(["fillet", None])),
        products=tuple(
            product(draw(st.sampled_from(AMOUNTS)), draw(st.sampled_from(["A", "B"])))
            for _ in range(draw(st.integers(0, 2)))
        ),
        raw_material_kg=draw(st.sampled_from(AMOUNTS)),
        pack_date=draw(st.sampled_from([date(2026, 3, 2), date(2026, 3, 3), None])),
        shelf_life_adjust=0,
        planned_start=draw(moment),
        planned_end=draw(moment),
        actual_start=draw(moment),
        actual_end=draw(moment),
        status=RunStatus.FINISHED,
        updated=draw(st.sampled_from(MOMENTS[:3])),
    )


@st.composite
def histories(draw: st.DrawFn) -> list[ProductionRun]:
    return [draw(runs(i)) for i in range(draw(st.integers(1, 12)))]


RUN = ProductionRun(
    run_number="R1",
    line="L1",
    batch_codes=("B1",),
    description="SALMON",
    species="salmon",
    product_type=None,
    products=(product(Decimal(200), "A"),),
    raw_material_kg=None,
    pack_date=None,
    shelf_life_adjust=0,
    planned_start=MOMENTS[0],
    planned_end=None,
    actual_start=MOMENTS[0],
    actual_end=None,
    status=RunStatus.RUNNING,
    updated=MOMENTS[0],
)


def stored(run: ProductionRun) -> str:
    return json.dumps(run_to_json(run), sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(history=histories())
def test_every_run_keeps_its_exact_stored_text(history: list[ProductionRun]) -> None:
    sharing = ValueSharing()
    loaded = [sharing.run(run_from_json(json.loads(stored(run)))) for run in history]
    assert [stored(run) for run in loaded] == [stored(run) for run in history]
    assert loaded == history


@settings(max_examples=200, deadline=None)
@given(history=histories())
def test_values_of_the_same_type_and_text_are_one_object(history: list[ProductionRun]) -> None:
    sharing = ValueSharing()
    loaded = [sharing.run(run_from_json(json.loads(stored(run)))) for run in history]
    seen: dict[tuple[type, str], object] = {}
    for run in loaded:
        values = [
            run.line,
            run.description,
            run.raw_material_kg,
            run.pack_date,
            run.actual_start,
            run.actual_end,
            run.updated,
            *run.products,
        ]
        for value in values:
            if value is not None:
                first = seen.setdefault((type(value), repr(value)), value)
                assert first is value
        assert run.extra is NO_EXTRA or run.extra


def test_extra_fields_are_kept_and_an_empty_one_is_shared_and_read_only() -> None:
    sharing = ValueSharing()
    plain = dataclasses.replace(RUN, extra={})
    rich = dataclasses.replace(RUN, run_number="R2", extra={"BatchTiers": {"B1": "GG"}})
    loaded = [sharing.run(run_from_json(json.loads(stored(run)))) for run in (plain, rich)]
    assert loaded == [plain, rich]
    assert loaded[0].extra is NO_EXTRA
    assert loaded[1].extra == {"BatchTiers": {"B1": "GG"}}
    with pytest.raises(TypeError):
        loaded[0].extra["x"] = 1  # type: ignore[index]


def test_equal_values_written_differently_are_not_merged() -> None:
    sharing = ValueSharing()
    assert sharing.value(Decimal(200)) is not sharing.value(Decimal("200.0"))
    assert str(sharing.value(Decimal("200.0"))) == "200.0"
    assert sharing.value(MOMENTS[1]).tzinfo == PLUS_ONE
    assert sharing.value(MOMENTS[0]).tzinfo is UTC
