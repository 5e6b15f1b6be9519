"""Tests for the pure ERP run model (gateway.core.runs): text parsing, coercion, parse_run."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.runs import (
    Product,
    ProductionRun,
    RunRejection,
    RunStatus,
    Tier,
    coerce_bool,
    coerce_date,
    coerce_datetime,
    coerce_decimal,
    parse_product_type,
    parse_run,
    parse_shelf_life_adjust,
    parse_species,
    parse_status,
    parse_tier,
    run_fingerprint,
    run_from_json,
    run_to_json,
    split_batch_codes,
)

LONDON = ZoneInfo("Europe/London")
GTIN_A = "09501101530003"  # GS1's example GTIN-13 9501101530003 as GTIN-14 (test_gs1.py)
GTIN_B = "09506000134352"  # docs/reference/domain-rules.md 4.3 example


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, *rest: int) -> datetime:
    second, micro = (*rest, 0, 0)[:2]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# species


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Premium Salmon Fillet 2x120g", "salmon", id="salmon"),
        pytest.param("COD LOINS SKIN ON", "cod", id="cod-upper"),
        pytest.param("Smoked Haddock Fillets", "haddock", id="haddock"),
        pytest.param("Hake Portions", "hake", id="hake"),
        pytest.param("hot smoked mackerel", "mackerel", id="mackerel-lower"),
        pytest.param("Yellowfin Tuna Steaks", "tuna", id="tuna"),
        pytest.param("Whole Plaice", "plaice", id="plaice"),
        pytest.param("Pollock Goujons", "pollock", id="pollock"),
        pytest.param("Pollack fillets", "pollock", id="pollack"),
        pytest.param("Alaska Pollock Fish Fingers", "pollock", id="alaska-pollock"),
        pytest.param("Alaskan pollock", "pollock", id="alaskan-pollock"),
        pytest.param("Sea Bass Fillets", "sea bass", id="sea-bass"),
        pytest.param("Seabass whole", "sea bass", id="seabass"),
        pytest.param("Sea-Bass", "sea bass", id="sea-hyphen-bass"),
        pytest.param("Bass Fillet", "sea bass", id="bass"),
        pytest.param("Sea Bream", "sea bream", id="sea-bream"),
        pytest.param("Gilthead SEABREAM", "sea bream", id="seabream"),
        pytest.param("Bream Whole Gutted", "sea bream", id="bream"),
        pytest.param("Rainbow Trout Fillets", "trout", id="trout"),
        pytest.param("Sea Trout", "trout", id="sea-trout"),
        pytest.param("Coley Portions", "coley", id="coley"),
        pytest.param("Saithe loins", "coley", id="saithe"),
        pytest.param("Lemon Sole", "sole", id="lemon-sole"),
        pytest.param("Halibut Steak", "halibut", id="halibut"),
        pytest.param("SALMON_FILLET_120G", "salmon", id="underscore-separates"),
        pytest.param("SALMON2x120g", "salmon", id="digits-separate"),
        pytest.param("Salmon & Cod Fishcakes", "salmon", id="two-species-first-wins"),
    ],
)
def test_parse_species(text: str, expected: str) -> None:
    assert parse_species(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Multi-word names beat the single word they contain.
        pytest.param("Rock Salmon", "dogfish", id="rock-salmon-is-not-salmon"),
        pytest.param("Salmon Trout Fillets", "trout", id="salmon-trout"),
        pytest.param("Alaska Pollock", "pollock", id="alaska-not-unknown"),
        pytest.param("Smoked Sea Bass", "sea bass", id="sea-bass-not-bass"),
    ],
)
def test_multi_word_species_win(text: str, expected: str) -> None:
    assert parse_species(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("Premium 120g", id="no-species"),
        pytest.param("Codling", id="cod-inside-word"),
        pytest.param("Barcode label", id="cod-inside-barcode"),
        pytest.param("Salmonella test", id="salmon-inside-word"),
        pytest.param("Scampi", id="not-listed"),
    ],
)
def test_parse_species_unknown(text: str) -> None:
    assert parse_species(text) is None


# --------------------------------------------------------------------------------------------
# product type


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Salmon Fillet 2x120g", "fillet", id="fillet"),
        pytest.param("Cod Fillets", "fillet", id="fillets"),
        pytest.param("Tuna filet", "fillet", id="filet"),
        pytest.param("Cod Loins", "loin", id="loins"),
        pytest.param("Salmon Portion", "portion", id="portion"),
        pytest.param("Hake Portions", "portion", id="portions"),
        pytest.param("Tuna Steaks", "steak", id="steaks"),
        pytest.param("Kiln Smoked Salmon", "smoked", id="smoked"),
        pytest.param("Breaded Haddock", "breaded", id="breaded"),
        pytest.param("Haddock in Breadcrumbs", "breaded", id="breadcrumbs"),
        pytest.param("Battered Cod", "battered", id="battered"),
        pytest.param("Cod in Tempura", "battered", id="tempura"),
        pytest.param("Salmon Fish Cake", "fish cake", id="fish-cake"),
        pytest.param("Salmon Fishcakes", "fish cake", id="fishcakes"),
        pytest.param("Cod Fish Cakes", "fish cake", id="fish-cakes"),
        pytest.param("Pollock Goujon", "goujon", id="goujon"),
        pytest.param("Plaice Goujons", "goujon", id="goujons"),
        pytest.param("Whole Trout", "whole", id="whole"),
        pytest.param("SALMON_FILLET", "fillet", id="underscore-separates"),
    ],
)
def test_parse_product_type(text: str, expected: str) -> None:
    assert parse_product_type(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # docs/reference/production-pipeline.md: smoked/breaded product type priority over the cut.
        pytest.param("Smoked Salmon Fillet", "smoked", id="smoked-over-fillet"),
        pytest.param("Breaded Cod Portion", "breaded", id="breaded-over-portion"),
        pytest.param("Battered Haddock Fillets", "battered", id="battered-over-fillet"),
        pytest.param("Smoked Haddock Loin", "smoked", id="smoked-over-loin"),
        pytest.param("Whole Smoked Mackerel", "smoked", id="smoked-over-whole"),
        pytest.param("Breaded Pollock Goujons", "breaded", id="breaded-over-goujon"),
        pytest.param("Cod Fishcake Portion", "fish cake", id="fishcake-over-cut"),
        pytest.param("Whole Salmon Fillet", "fillet", id="cut-over-whole"),
        # Within one rank the head noun (last word) wins.
        pytest.param("Salmon Fillet Portions", "portion", id="last-cut-wins"),
        pytest.param("Cod Loin Steak", "steak", id="loin-steak"),
    ],
)
def test_product_type_priority(text: str, expected: str) -> None:
    assert parse_product_type(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("Premium Salmon 120g", id="no-type"),
        pytest.param("Wholesale Salmon", id="whole-inside-word"),
        pytest.param("Smokehouse Special", id="smoke-inside-word"),
        pytest.param("Marinated Salmon", id="not-listed"),
    ],
)
def test_parse_product_type_unknown(text: str) -> None:
    assert parse_product_type(text) is None


# --------------------------------------------------------------------------------------------
# coercion


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(True, True, id="True"),
        pytest.param(False, False, id="False"),
        pytest.param(1, True, id="int-1"),
        pytest.param(0, False, id="int-0"),
        pytest.param("1", True, id="str-1"),
        pytest.param("0", False, id="str-0"),
        pytest.param("Y", True, id="Y"),
        pytest.param("n", False, id="n"),
        pytest.param("Yes", True, id="Yes"),
        pytest.param("NO", False, id="NO"),
        pytest.param("true", True, id="true"),
        pytest.param("False", False, id="False-str"),
        pytest.param("T", True, id="T"),
        pytest.param("f", False, id="f"),
        pytest.param("  y \t", True, id="whitespace"),
    ],
)
def test_coerce_bool(value: object, expected: bool) -> None:
    assert coerce_bool(value) is expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="None"),
        pytest.param("", id="empty"),
        pytest.param("2", id="str-2"),
        pytest.param(2, id="int-2"),
        pytest.param(-1, id="int-minus-1"),
        pytest.param(1.0, id="float"),
        pytest.param("maybe", id="word"),
        pytest.param("on", id="on"),
        pytest.param("yess", id="typo"),
        pytest.param([1], id="list"),
    ],
)
def test_coerce_bool_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="yes/no"):
        coerce_bool(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(120, Decimal(120), id="int"),
        pytest.param(0.1, Decimal("0.1"), id="float-shortest-repr"),
        pytest.param(12.5, Decimal("12.5"), id="float"),
        pytest.param(Decimal("7.25"), Decimal("7.25"), id="decimal"),
        pytest.param("240", Decimal(240), id="str-int"),
        pytest.param(" 18.50 ", Decimal("18.50"), id="str-whitespace"),
        pytest.param("1,234.5", Decimal("1234.5"), id="thousands"),
        pytest.param("1,234,567", Decimal(1234567), id="two-thousands"),
        pytest.param("-3.5", Decimal("-3.5"), id="negative"),
        pytest.param("+2", Decimal(2), id="plus"),
        pytest.param("0", Decimal(0), id="zero"),
    ],
)
def test_coerce_decimal(value: object, expected: Decimal) -> None:
    result = coerce_decimal(value)
    assert result == expected
    assert str(result) == str(expected)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("12.5 kg", id="unit"),
        pytest.param("120g", id="unit-g"),
        pytest.param("", id="empty"),
        pytest.param("  ", id="blank"),
        pytest.param("12,5", id="decimal-comma"),
        pytest.param("1,23", id="bad-grouping"),
        pytest.param("1e3", id="exponent"),
        pytest.param("1_000", id="underscore"),
        pytest.param(".5", id="no-leading-digit"),
        pytest.param("NaN", id="nan-str"),
        pytest.param("Infinity", id="inf-str"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="inf"),
        pytest.param(Decimal("NaN"), id="decimal-nan"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="None"),
        pytest.param("١٢", id="arabic-digits"),
    ],
)
def test_coerce_decimal_rejects(value: object) -> None:
    with pytest.raises(ValueError, match=r"number|yes/no"):
        coerce_decimal(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2025-06-01", date(2025, 6, 1), id="iso"),
        pytest.param("01/06/2025", date(2025, 6, 1), id="uk-day-first"),
        pytest.param("1/6/2025", date(2025, 6, 1), id="uk-one-digit"),
        pytest.param("12/01/2025", date(2025, 1, 12), id="uk-not-us"),
        pytest.param("29/02/2024", date(2024, 2, 29), id="leap-day"),
        pytest.param(" 2025-06-01 ", date(2025, 6, 1), id="whitespace"),
        pytest.param("2025-06-01T00:00:00", date(2025, 6, 1), id="sql-datetime-midnight"),
        pytest.param("2025-06-01 00:00:00.000", date(2025, 6, 1), id="sql-midnight-millis"),
        pytest.param(date(2025, 6, 1), date(2025, 6, 1), id="date"),
        pytest.param(datetime(2025, 6, 1, 13, 5), date(2025, 6, 1), id="datetime"),
    ],
)
def test_coerce_date(value: object, expected: date) -> None:
    assert coerce_date(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("31/02/2025", id="no-feb-31"),
        pytest.param("29/02/2025", id="not-leap"),
        pytest.param("2025-13-01", id="month-13"),
        pytest.param("01/06/25", id="two-digit-year"),
        pytest.param("06-01-2025", id="us-dashes"),
        pytest.param("2025-06-01T06:00:00", id="not-midnight"),
        pytest.param("2025-06-01T00:00:00Z", id="midnight-with-offset"),
        pytest.param("1st June 2025", id="words"),
        pytest.param("", id="empty"),
        pytest.param(20250601, id="int"),
        pytest.param(None, id="None"),
    ],
)
def test_coerce_date_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="date"):
        coerce_date(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2025-01-15T06:00:00", utc(2025, 1, 15, 6), id="naive-winter-gmt"),
        pytest.param("2025-06-01 06:00:00", utc(2025, 6, 1, 5), id="naive-summer-bst"),
        pytest.param("2025-06-01T06:00", utc(2025, 6, 1, 5), id="no-seconds"),
        pytest.param("2025-06-01T06:15:30.123", utc(2025, 6, 1, 5, 15, 30, 123000), id="fraction"),
        pytest.param("2025-06-01T05:00:00Z", utc(2025, 6, 1, 5), id="zulu"),
        pytest.param("2025-06-01T08:00:00+03:00", utc(2025, 6, 1, 5), id="offset"),
        pytest.param("01/06/2025 06:00", utc(2025, 6, 1, 5), id="uk"),
        pytest.param("15/01/2025 06:00:30", utc(2025, 1, 15, 6, 0, 30), id="uk-seconds"),
        # Autumn repeated hour: the first (BST) occurrence, PEP 495 fold=0.
        pytest.param("2025-10-26T01:30:00", utc(2025, 10, 26, 0, 30), id="ambiguous-fold-0"),
        pytest.param(datetime(2025, 6, 1, 6), utc(2025, 6, 1, 5), id="naive-datetime"),
        pytest.param(
            datetime(2025, 6, 1, 7, tzinfo=timezone(timedelta(hours=2))),
            utc(2025, 6, 1, 5),
            id="aware-datetime",
        ),
    ],
)
def test_coerce_datetime(value: object, expected: datetime) -> None:
    result = coerce_datetime(value, LONDON)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2025-06-01", id="date-only"),
        pytest.param("01/06/2025", id="uk-date-only"),
        pytest.param("2025-06-01T25:00:00", id="hour-25"),
        pytest.param("2025-02-30T06:00:00", id="feb-30"),
        pytest.param("20250601T060000", id="basic-format"),
        pytest.param("yesterday", id="word"),
        pytest.param("", id="empty"),
        pytest.param(1748754000, id="epoch-int"),
        pytest.param(date(2025, 6, 1), id="date-object"),
        pytest.param(None, id="None"),
    ],
)
def test_coerce_datetime_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="date-time"):
        coerce_datetime(value, LONDON)


def test_coerce_datetime_out_of_range_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="range"):
        coerce_datetime("0001-01-01T00:00:00", timezone(timedelta(hours=1)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("Premium", Tier.PREMIUM, id="Premium"),
        pytest.param("Tier 1", Tier.PREMIUM, id="Tier-1"),
        pytest.param("1", Tier.PREMIUM, id="str-1"),
        pytest.param(1, Tier.PREMIUM, id="int-1"),
        pytest.param("GG", Tier.GG, id="GG"),
        pytest.param("tier2", Tier.GG, id="tier2"),
        pytest.param("2", Tier.GG, id="str-2"),
        pytest.param("Standard", Tier.GG, id="Standard"),
        pytest.param("Export", Tier.EXPORT, id="Export"),
        pytest.param("TIER 3", Tier.EXPORT, id="TIER-3"),
        pytest.param(3, Tier.EXPORT, id="int-3"),
        pytest.param("Simply Salmon", Tier.EXPORT, id="Simply-Salmon"),
    ],
)
def test_parse_tier(value: object, expected: Tier) -> None:
    assert parse_tier(value) is expected


@pytest.mark.parametrize("value", ["Gold", "4", 0, "Tier 4", True, None, ""])
def test_parse_tier_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="tier"):
        parse_tier(value)


@pytest.mark.parametrize(
    ("value", "started", "expected"),
    [
        pytest.param("Planned", False, RunStatus.PLANNED, id="planned"),
        pytest.param("RUNNING", True, RunStatus.RUNNING, id="running"),
        pytest.param("In Progress", True, RunStatus.RUNNING, id="in-progress"),
        pytest.param("finished", True, RunStatus.FINISHED, id="finished"),
        pytest.param("Closed", True, RunStatus.FINISHED, id="closed"),
        pytest.param("Complete", True, RunStatus.FINISHED, id="complete"),
        pytest.param("done", True, RunStatus.FINISHED, id="done"),
        pytest.param("Cancelled", False, RunStatus.CANCELLED, id="cancelled"),
        pytest.param("canceled", False, RunStatus.CANCELLED, id="canceled-us"),
        pytest.param("Open", True, RunStatus.RUNNING, id="open-started"),
        pytest.param("Open", False, RunStatus.PLANNED, id="open-not-started"),
    ],
)
def test_parse_status(value: str, started: bool, expected: RunStatus) -> None:
    assert parse_status(value, started=started) is expected


@pytest.mark.parametrize("value", ["paused", "", 1, None])
def test_parse_status_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="status"):
        parse_status(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, 0, id="int-0"),
        pytest.param(3, 3, id="int-3"),
        pytest.param("2", 2, id="str-2"),
        pytest.param("+1", 1, id="plus-1"),
        pytest.param("Rubber clock", 1, id="rubber-clock"),
        pytest.param("rubber clock (+1)", 1, id="rubber-clock-plus-1"),
        pytest.param("Superchill", 2, id="superchill"),
        pytest.param("SUPERCHILL +3", 3, id="superchill-plus-3"),
        pytest.param("Superchill (+2)", 2, id="superchill-paren"),
        pytest.param("standard", 0, id="standard"),
    ],
)
def test_parse_shelf_life_adjust(value: object, expected: int) -> None:
    assert parse_shelf_life_adjust(value) == expected


@pytest.mark.parametrize(
    "value", [4, -1, "-1", "5", "+4", 1.5, 1.0, True, "freeze", "rubber clock +2", "superchill -3"]
)
def test_parse_shelf_life_adjust_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="shelf-life"):
        parse_shelf_life_adjust(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("SAL2505A", ("SAL2505A",), id="one"),
        pytest.param("SAL2505A, SAL2505B", ("SAL2505A", "SAL2505B"), id="comma"),
        pytest.param("A;B", ("A", "B"), id="semicolon"),
        pytest.param("SAL/2025/01;B7", ("SAL/2025/01", "B7"), id="slash-inside-a-code"),
        pytest.param("A\nB", ("A", "B"), id="newline"),
        pytest.param("A,,A, ;B", ("A", "B"), id="blanks-and-duplicates"),
        pytest.param(["A", " B ", 42], ("A", "B", "42"), id="list"),
        pytest.param(12345, ("12345",), id="int"),
        pytest.param(" , ", (), id="only-separators"),
    ],
)
def test_split_batch_codes(value: object, expected: tuple[str, ...]) -> None:
    assert split_batch_codes(value) == expected


@pytest.mark.parametrize("value", [None, 1.5, ["A", None], {"a": 1}, True])
def test_split_batch_codes_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="batch code"):
        split_batch_codes(value)


# --------------------------------------------------------------------------------------------
# parse_run: valid rows


def salmon_row() -> dict[str, Any]:
    """A realistic batch-centric salmon run: one run, two batch codes, four products."""
    return {
        "RunNumber": " R250601-03 ",
        "Line": "L2",
        "BatchCode": "SAL250529A; SAL250530B",
        "Description": "Premium Salmon Fillet Portions",
        "Products": [
            {
                "PLU": "10120",
                "Description": "Premium Salmon 120g",
                "NominalWeight": "120",
                "Tier": "Premium",
                "CatchWeight": 0,
                "Tare": "18.5",
                "GTIN": "9501101530003",
            },
            {
                "PLU": 10240,
                "Description": "Premium Salmon Fillets 240g",
                "NominalWeight": 240,
                "Tier": "Tier 1",
                "CatchWeight": "N",
                "GTIN": GTIN_B,
            },
            {
                "plu": "20280",
                "description": "GG Salmon Portions 280g",
                "nominal_g": "280",
                "tier": "GG",
                "catch_weight": "false",
            },
            {
                "PLU": "30900",
                "Description": "Family Pack",
                "Tier": "Standard",
                "CatchWeight": "Y",
                "Species": "Atlantic Salmon",
            },
        ],
        "RawMaterialKg": "1,250.5",
        "PackDate": "01/06/2025",
        "ShelfLifeAdjust": "Rubber clock",
        "PlannedStart": "2025-06-01 06:00:00",
        "PlannedEnd": "2025-06-01T14:00:00+01:00",
        "ActualStart": "2025-06-01T05:07:00Z",
        "Updated": "2025-06-01T06:15:30",
        "Supervisor": "J. Smith",
        "Yield": Decimal("93.4"),
    }


def parse_ok(row: dict[str, Any]) -> ProductionRun:
    result = parse_run(row, tz=LONDON)
    assert isinstance(result, ProductionRun), result
    return result


def test_parse_realistic_salmon_run() -> None:
    run = parse_ok(salmon_row())
    assert run.run_number == "R250601-03"
    assert run.line == "L2"
    assert run.batch_codes == ("SAL250529A", "SAL250530B")
    assert run.description == "Premium Salmon Fillet Portions"  # kept as given, not uppercased
    assert run.species == "salmon"
    assert run.product_type == "portion"
    assert run.raw_material_kg == Decimal("1250.5")
    assert run.pack_date == date(2025, 6, 1)
    assert run.shelf_life_adjust == 1
    assert run.planned_start == utc(2025, 6, 1, 5)  # naive London BST -> UTC
    assert run.planned_end == utc(2025, 6, 1, 13)
    assert run.actual_start == utc(2025, 6, 1, 5, 7)
    assert run.actual_end is None
    assert run.status is RunStatus.RUNNING  # derived: started, not ended
    assert run.updated == utc(2025, 6, 1, 5, 15, 30)
    assert run.extra == {"Supervisor": "J. Smith", "Yield": "93.4"}
    assert run.products == (
        Product(
            plu="10120",
            description="Premium Salmon 120g",
            nominal_g=Decimal(120),
            tier=Tier.PREMIUM,
            tare_g=Decimal("18.5"),
            species="salmon",
            gtin=GTIN_A,
        ),
        Product(
            plu="10240",
            description="Premium Salmon Fillets 240g",
            nominal_g=Decimal(240),
            tier=Tier.PREMIUM,
            species="salmon",
            gtin=GTIN_B,
        ),
        Product(
            plu="20280",
            description="GG Salmon Portions 280g",
            nominal_g=Decimal(280),
            tier=Tier.GG,
            species="salmon",
        ),
        Product(
            plu="30900",
            description="Family Pack",
            nominal_g=None,
            tier=Tier.GG,
            catch_weight=True,
            species="salmon",
        ),
    )


def test_snake_case_keys_parse_the_same_as_erp_keys() -> None:
    erp = salmon_row()
    snake = {
        "run_number": erp["RunNumber"],
        "line": erp["Line"],
        "batch_codes": ["SAL250529A", "SAL250530B"],
        "description": erp["Description"],
        "products": erp["Products"],
        "raw_material_kg": erp["RawMaterialKg"],
        "pack_date": "2025-06-01",
        "shelf_life_adjust": 1,
        "planned_start": erp["PlannedStart"],
        "PLANNED END": erp["PlannedEnd"],
        "actual_start": erp["ActualStart"],
        "updated": erp["Updated"],
        "Supervisor": "J. Smith",
        "Yield": Decimal("93.4"),
    }
    assert parse_ok(snake) == parse_ok(erp)


def minimal_row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "RunNumber": "R1",
        "Line": "L1",
        "BatchCode": "B1",
        "Updated": "2025-06-01T06:00:00Z",
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v is not ...}


def test_minimal_row_defaults() -> None:
    run = parse_ok(minimal_row())
    assert run.products == ()
    assert run.description == ""
    assert run.species is None
    assert run.product_type is None
    assert run.shelf_life_adjust == 0
    assert run.status is RunStatus.PLANNED
    assert run.extra == {}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({}, RunStatus.PLANNED, id="derived-planned"),
        pytest.param({"ActualStart": "2025-06-01T06:00Z"}, RunStatus.RUNNING, id="derived-run"),
        pytest.param(
            {"ActualStart": "2025-06-01T06:00Z", "ActualEnd": "2025-06-01T09:00Z"},
            RunStatus.FINISHED,
            id="derived-finished",
        ),
        pytest.param({"Status": "Cancelled"}, RunStatus.CANCELLED, id="explicit-cancelled"),
        pytest.param(
            {"Status": "open", "ActualStart": "2025-06-01T06:00Z"},
            RunStatus.RUNNING,
            id="open-started",
        ),
        pytest.param({"Status": "open"}, RunStatus.PLANNED, id="open-not-started"),
        pytest.param({"Status": "  "}, RunStatus.PLANNED, id="blank-status-derived"),
    ],
)
def test_status(changes: dict[str, object], expected: RunStatus) -> None:
    assert parse_ok(minimal_row(**changes)).status is expected


def test_explicit_species_and_product_type_win_over_description() -> None:
    run = parse_ok(
        minimal_row(
            Description="Smoked Salmon Fillet",
            Species="Alaska Pollock",
            ProductType="Fillets",
        )
    )
    assert (run.species, run.product_type) == ("pollock", "fillet")


def test_unknown_explicit_species_is_kept_normalised() -> None:
    run = parse_ok(minimal_row(Species="  Atlantic  WOLFFISH ", Description="Cod"))
    assert run.species == "atlantic wolffish"


def test_batch_code_and_batch_codes_merge() -> None:
    run = parse_ok(minimal_row(BatchCode="B1;B2", BatchCodes=["B2", "B3"]))
    assert run.batch_codes == ("B1", "B2", "B3")


def test_same_value_under_two_spellings_is_fine() -> None:
    run = parse_ok(minimal_row(run_number="R1"))
    assert run.run_number == "R1"


def test_unknown_product_keys_go_to_run_extra() -> None:
    product = {"PLU": "1", "Tier": "GG", "NominalWeight": 100, "Customer": "M&S"}
    run = parse_ok(minimal_row(Products=[product]))
    assert run.extra == {"Products[0].Customer": "M&S"}


def test_catch_weight_ignores_nominal() -> None:
    product = {"PLU": "1", "Tier": "GG", "CatchWeight": "yes", "NominalWeight": "1000"}
    run = parse_ok(minimal_row(Products=[product]))
    assert run.products[0].nominal_g is None


def test_extra_values_are_made_json_able() -> None:
    run = parse_ok(
        minimal_row(
            When=datetime(2025, 6, 1, 6),
            Day=date(2025, 6, 1),
            Kg=Decimal("1.5"),
            Nan=float("nan"),
            Nested={"a": (1, Decimal(2))},
        )
    )
    assert run.extra == {
        "When": "2025-06-01T06:00:00",
        "Day": "2025-06-01",
        "Kg": "1.5",
        "Nan": "nan",
        "Nested": {"a": [1, "2"]},
    }
    json.dumps(run.extra, allow_nan=False)


# --------------------------------------------------------------------------------------------
# parse_run: rejections


def parse_bad(row: object) -> RunRejection:
    result = parse_run(row, tz=LONDON)  # type: ignore[arg-type]
    assert isinstance(result, RunRejection), result
    return result


def test_every_problem_is_listed() -> None:
    row = {
        "run_number": "  ",
        "BatchCodes": [],
        "PackDate": "31/02/2025",
        "ShelfLifeAdjust": 5,
        "Status": "paused",
        "ActualStart": "2025-06-01T10:00:00Z",
        "ActualEnd": "2025-06-01T09:00:00Z",
        "RawMaterialKg": "-4",
        "Products": [
            {"PLU": "10120", "NominalWeight": "12.5 kg", "Tier": "Gold", "Glaze": 60},
            {"PLU": "10120", "Tier": "GG", "NominalWeight": 120},
            {"Tier": "GG", "CatchWeight": "maybe", "GTIN": "09501101530004"},
            "not a product",
        ],
    }
    rejection = parse_bad(row)
    assert rejection.run_number is None
    assert rejection.raw == row
    assert rejection.reasons == (
        "RunNumber is missing or blank",
        "Line is missing or blank",
        "BatchCode/BatchCodes is missing or empty: a run needs a batch code",
        "Products[0] (PLU '10120') Tier: 'Gold' is not a tier (expected Premium/Tier 1, "
        "GG/Tier 2/Standard or Export/Tier 3/Simply Salmon)",
        "Products[0] (PLU '10120') NominalWeight: '12.5 kg' is not a number (expected digits "
        "with an optional sign, decimal point and thousands separators; no units)",
        "Products[0] (PLU '10120') Glaze: 60 is outside 0-50 %",
        "Products[1]: PLU '10120' is already Products[0]",
        "Products[2] PLU is missing or blank",
        "Products[2] CatchWeight: 'maybe' is not a yes/no value (expected 1/0, Y/N, yes/no, "
        "true/false)",
        "Products[2] NominalWeight is missing or blank (required unless CatchWeight is yes)",
        "Products[2] GTIN: '09501101530004' has a wrong check digit (expected 3)",
        "Products[3]: 'not a product' is not a product object",
        "RawMaterialKg: '-4' is negative",
        "PackDate: '31/02/2025' is not a valid date (day is out of range for month)",
        "ShelfLifeAdjust: 5 is not a shelf-life adjustment (expected 0-3, rubber clock or "
        "superchill)",
        "ActualEnd 2025-06-01T09:00:00+00:00 is before ActualStart 2025-06-01T10:00:00+00:00",
        "Status: 'paused' is not a run status (expected planned, running, finished, "
        "cancelled, open, in progress, closed, complete or done)",
        "Updated is missing or blank (it is the incremental watermark)",
    )


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        pytest.param({"RunNumber": ...}, ["RunNumber", "missing"], id="no-run-number"),
        pytest.param({"RunNumber": 1.5}, ["RunNumber", "1.5", "not text"], id="float-run"),
        pytest.param({"Line": True}, ["Line", "True", "not text"], id="bool-line"),
        pytest.param({"BatchCode": " ; "}, ["BatchCode", "missing or empty"], id="no-batch"),
        pytest.param({"BatchCode": 1.5}, ["BatchCode", "1.5"], id="float-batch"),
        pytest.param({"Updated": "yesterday"}, ["Updated", "'yesterday'"], id="bad-updated"),
        pytest.param(
            {"PlannedStart": "2025-06-01T10:00Z", "PlannedEnd": "2025-06-01T09:00Z"},
            ["PlannedEnd", "before PlannedStart"],
            id="planned-end-before-start",
        ),
        pytest.param({"Products": "10120"}, ["Products", "'10120'", "not a list"], id="prods"),
        pytest.param({"Description": 7}, ["Description", "7", "not text"], id="int-desc"),
        pytest.param({"Species": 3}, ["Species", "3", "not text"], id="int-species"),
        pytest.param(
            {"RunNumber": "R1", "run_number": "R2"},
            ["RunNumber is given twice", "'R1'", "'R2'"],
            id="conflicting-keys",
        ),
        pytest.param(
            {"Products": [{"PLU": "1", "NominalWeight": 100}]},
            ["Products[0] (PLU '1') Tier is missing"],
            id="product-without-tier",
        ),
        pytest.param(
            {"Products": [{"PLU": "1", "Tier": "GG", "NominalWeight": 0}]},
            ["NominalWeight", "0", "not above zero"],
            id="zero-nominal",
        ),
        pytest.param(
            {"Products": [{"PLU": "1", "Tier": "GG", "NominalWeight": 9, "GTIN": "12ab"}]},
            ["GTIN", "'12ab'", "not a GTIN"],
            id="bad-gtin",
        ),
        pytest.param(
            {"Products": [{"PLU": "1", "Tier": "GG", "NominalWeight": 9, "Tare": "-1"}]},
            ["Tare", "'-1'", "negative"],
            id="negative-tare",
        ),
    ],
)
def test_rejection_reason_names_field_and_value(
    changes: dict[str, object], needles: list[str]
) -> None:
    rejection = parse_bad(minimal_row(**changes))
    assert len(rejection.reasons) == 1, rejection.reasons
    for needle in needles:
        assert needle in rejection.reasons[0]


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(None, id="None"),
        pytest.param(["RunNumber", "R1"], id="list"),
        pytest.param("R1", id="str"),
    ],
)
def test_non_object_rows_are_rejected(row: object) -> None:
    rejection = parse_bad(row)
    assert rejection.reasons == (f"the row {row!r} is not an object",)
    assert rejection.raw == {}


def test_rejection_keeps_run_number_when_known() -> None:
    assert parse_bad(minimal_row(Updated=...)).run_number == "R1"


# --------------------------------------------------------------------------------------------
# fingerprint and JSON storage


def test_json_round_trip_through_text() -> None:
    run = parse_ok(salmon_row())
    stored = json.dumps(run_to_json(run), allow_nan=False)
    back = run_from_json(json.loads(stored))
    assert back == run
    assert str(back.products[0].tare_g) == "18.5"
    assert back.updated.tzinfo is not None


def test_json_form_uses_strings_for_decimals_and_iso_for_times() -> None:
    data = run_to_json(parse_ok(salmon_row()))
    assert data["raw_material_kg"] == "1250.5"
    assert data["updated"] == "2025-06-01T05:15:30+00:00"
    assert data["pack_date"] == "2025-06-01"
    assert data["status"] == "running"
    products = data["products"]
    assert isinstance(products, list)
    assert products[0]["nominal_g"] == "120"
    assert products[3]["nominal_g"] is None


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d.pop("run_number"), id="missing-key"),
        pytest.param(lambda d: d.update(format=2), id="other-format"),
        pytest.param(lambda d: d.update(raw_material_kg="lots"), id="bad-decimal"),
        pytest.param(lambda d: d.update(updated="2025-06-01T05:00:00"), id="naive-updated"),
        pytest.param(lambda d: d.update(shelf_life_adjust=True), id="bool-as-int"),
        pytest.param(lambda d: d.update(status="paused"), id="bad-status"),
        pytest.param(lambda d: d.update(products=[1]), id="bad-product"),
        pytest.param(lambda d: d.update(batch_codes=[1]), id="bad-batch-code"),
    ],
)
def test_run_from_json_rejects_malformed(mutate: Any) -> None:
    data = run_to_json(parse_ok(salmon_row()))
    mutate(data)
    with pytest.raises(ValueError):
        run_from_json(data)


def test_fingerprint_ignores_batch_order_and_decimal_spelling() -> None:
    a = parse_ok(
        minimal_row(
            BatchCode="B1,B2", Products=[{"PLU": 1, "Tier": 1, "NominalWeight": 120, "Tare": 5}]
        )
    )
    b = parse_ok(
        minimal_row(
            BatchCode="B2,B1",
            Description="changed",
            Updated="2025-06-02T06:00:00Z",
            Products=[{"PLU": "1", "Tier": "Premium", "NominalWeight": "120.0", "Tare": "5.0"}],
        )
    )
    assert run_fingerprint(a) == run_fingerprint(b)
    json.dumps(run_fingerprint(a))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"Line": "L9"}, id="line"),
        pytest.param({"BatchCode": "B1,B3"}, id="batch-code"),
        pytest.param({"Products": [{"PLU": "1", "Tier": "GG", "NominalWeight": 100}]}, id="tier"),
        pytest.param(
            {"Products": [{"PLU": "1", "Tier": "Premium", "NominalWeight": 140}]}, id="nominal"
        ),
        pytest.param(
            {
                "Products": [
                    {"PLU": "1", "Tier": "Premium", "NominalWeight": 100},
                    {"PLU": "2", "Tier": "GG", "NominalWeight": 100},
                ]
            },
            id="product-added",
        ),
    ],
)
def test_fingerprint_changes_with_line_batches_and_products(changes: dict[str, object]) -> None:
    base = {"BatchCode": "B1", "Products": [{"PLU": "1", "Tier": "Premium", "NominalWeight": 100}]}
    before = parse_ok(minimal_row(**base))
    after = parse_ok(minimal_row(**{**base, **changes}))
    assert run_fingerprint(before) != run_fingerprint(after)


def test_fingerprint_ignores_status_times_and_description() -> None:
    before = parse_ok(minimal_row())
    after = parse_ok(
        minimal_row(
            Description="Smoked Salmon", Status="done", Updated="2025-06-02T06:00:00Z", Note="x"
        )
    )
    assert run_fingerprint(before) == run_fingerprint(after)


# --------------------------------------------------------------------------------------------
# parse_run never raises

_KNOWN_KEYS = [
    "RunNumber",
    "run_number",
    "Line",
    "BatchCode",
    "BatchCodes",
    "Description",
    "Species",
    "ProductType",
    "Products",
    "RawMaterialKg",
    "PackDate",
    "ShelfLifeAdjust",
    "PlannedStart",
    "PlannedEnd",
    "ActualStart",
    "ActualEnd",
    "Status",
    "Updated",
]
_PRODUCT_KEYS = ["PLU", "Description", "NominalWeight", "Tier", "CatchWeight", "Tare", "Glaze"]
_PRODUCT_KEYS += ["Species", "GTIN", "nominal_g"]

_scalars = st.none() | st.text(max_size=30) | st.integers() | st.floats()
_products = st.lists(
    st.dictionaries(st.sampled_from(_PRODUCT_KEYS) | st.text(max_size=8), _scalars, max_size=8)
    | _scalars,
    max_size=4,
)
_values = _scalars | _products


def _check(result: ProductionRun | RunRejection) -> None:
    if isinstance(result, RunRejection):
        assert result.reasons
        assert all(isinstance(r, str) and r for r in result.reasons)
        assert not any(r.startswith("the row could not be parsed") for r in result.reasons)
    else:
        assert isinstance(result, ProductionRun)
        assert run_from_json(json.loads(json.dumps(run_to_json(result)))) == result
        json.dumps(run_fingerprint(result))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_KNOWN_KEYS) | st.text(max_size=12), _values, max_size=20))
def test_parse_run_never_raises_on_arbitrary_dicts(row: dict[str, object]) -> None:
    _check(parse_run(row, tz=LONDON))


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from([*_KNOWN_KEYS, "Extra"]), _values, max_size=6),
    st.lists(st.sampled_from(_KNOWN_KEYS), max_size=4),
)
def test_parse_run_never_raises_on_mutated_valid_rows(
    changes: dict[str, object], dropped: list[str]
) -> None:
    row = {**salmon_row(), **changes}
    for key in dropped:
        row.pop(key, None)
    _check(parse_run(row, tz=LONDON))
