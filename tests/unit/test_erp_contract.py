"""The ERP JSON Schema and the gateway's parser agree (docs/erp-contract.md).

Valid examples conform to the schema and parse into runs; each invalid example is refused
by the schema and rejected by ``parse_run`` (or by the HTTP source's page reading).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.erp.contract import (
    SUPPORTED_KEYWORDS,
    check_page,
    load_schema,
    schema_violations,
)
from gateway.core.runs import ProductionRun, RunRejection, parse_run

TZ = ZoneInfo("Europe/London")
DOC = Path(__file__).resolve().parents[2] / "docs" / "erp-contract.md"


def _run() -> dict[str, Any]:
    return {
        "RunNumber": "R0105-L1-02",
        "Line": "L1",
        "BatchCode": "NO-SAL-260105-A17",
        "Description": "ATLANTIC SALMON FILLET PORTIONS",
        "Products": [
            {
                "PLU": "41012",
                "NominalWeight": 120,
                "Tier": "Premium",
                "GTIN": "05012345678900",
                "CatchWeight": False,
            },
            {"PLU": 49001, "Tier": "GG", "CatchWeight": True},
        ],
        "PackDate": "2026-01-05",
        "ShelfLifeAdjust": 1,
        "ActualStart": "2026-01-05T06:30:00",
        "Status": "running",
        "Updated": "2026-01-05T09:40:00.000+00:00",
    }


def _page(*runs: dict[str, Any]) -> dict[str, Any]:
    return {"runs": list(runs), "next": None}


def _set(path: tuple[str | int, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def change(run: dict[str, Any]) -> None:
        node: Any = run
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


def _drop(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def change(run: dict[str, Any]) -> None:
        node: Any = run
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return change


# (what is wrong, the change, the JSON path the schema must name)
INVALID_RUNS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("no RunNumber", _drop(("RunNumber",)), "runs[0].RunNumber"),
    ("no Line", _drop(("Line",)), "runs[0].Line"),
    ("no Updated", _drop(("Updated",)), "runs[0].Updated"),
    ("Updated not a date-time", _set(("Updated",), "yesterday"), "runs[0].Updated"),
    ("no batch code", _drop(("BatchCode",)), "runs[0].BatchCode"),
    ("blank batch code", _set(("BatchCode",), ""), "runs[0].BatchCode"),
    ("weight with a unit", _set(("Products", 0, "NominalWeight"), "250g"), "NominalWeight"),
    ("zero weight", _set(("Products", 0, "NominalWeight"), 0), "NominalWeight"),
    ("negative weight", _set(("Products", 0, "NominalWeight"), -5), "NominalWeight"),
    ("no weight, not catch", _drop(("Products", 0, "NominalWeight")), "NominalWeight"),
    ("no PLU", _drop(("Products", 0, "PLU")), "runs[0].Products[0].PLU"),
    ("no Tier", _drop(("Products", 0, "Tier")), "runs[0].Products[0].Tier"),
    ("unknown tier", _set(("Products", 0, "Tier"), "Platinum"), "runs[0].Products[0].Tier"),
    ("GTIN of 9 digits", _set(("Products", 0, "GTIN"), "123456789"), "GTIN"),
    ("CatchWeight 2", _set(("Products", 0, "CatchWeight"), 2), "CatchWeight"),
    ("glaze above 50 %", _set(("Products", 0, "Glaze"), 60), "runs[0].Products[0].Glaze"),
    ("shelf life +4", _set(("ShelfLifeAdjust",), 4), "runs[0].ShelfLifeAdjust"),
    ("unknown status", _set(("Status",), "paused"), "runs[0].Status"),
    ("PackDate words", _set(("PackDate",), "today"), "runs[0].PackDate"),
    ("Products not a list", _set(("Products",), "Premium 120g"), "runs[0].Products"),
    ("negative raw material", _set(("RawMaterialKg",), -1), "runs[0].RawMaterialKg"),
]


def test_the_schema_is_draft_2020_12_and_uses_only_checked_keywords() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def keywords(node: object) -> set[str]:
        found: set[str] = set()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in ("properties", "$defs"):
                    assert isinstance(value, Mapping)
                    for sub in value.values():
                        found |= keywords(sub)
                    continue
                found.add(str(key))
                if key not in ("enum", "const", "required"):
                    found |= keywords(value)
        elif isinstance(node, list):
            for item in node:
                found |= keywords(item)
        return found

    assert keywords(schema) <= SUPPORTED_KEYWORDS


def test_a_valid_page_conforms_and_parses() -> None:
    page = _page(_run())
    assert schema_violations(page) == []
    assert check_page(page, tz=TZ) == []
    parsed = parse_run(page["runs"][0], tz=TZ)
    assert isinstance(parsed, ProductionRun)
    assert parsed.products[0].nominal_g == 120
    assert parsed.products[1].catch_weight


def test_a_page_with_a_next_key_conforms() -> None:
    page = {
        "runs": [_run()],
        "next": {"updated_since": "2026-01-05T09:40:00.000+00:00", "after_run": "R0105-L1-02"},
    }
    assert schema_violations(page) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [pytest.param(change, path, id=name) for name, change, path in INVALID_RUNS],
)
def test_each_invalid_run_is_refused_by_both(
    change: Callable[[dict[str, Any]], None], path: str
) -> None:
    run = copy.deepcopy(_run())
    change(run)
    violations = schema_violations(_page(run))
    assert violations, "the schema accepts it"
    assert any(path in v.path for v in violations), [str(v) for v in violations]
    assert isinstance(parse_run(run, tz=TZ), RunRejection), "the parser accepts it"


def test_a_wrong_type_is_named_with_its_json_path() -> None:
    runs = [_run() for _ in range(4)]
    runs[3]["Products"][0]["NominalWeight"] = "250g"
    messages = [str(f) for f in check_page(_page(*runs), tz=TZ)]
    assert 'runs[3].Products[0].NominalWeight: expected a number, got string "250g"' in messages
    assert any(
        m.startswith("runs[3]: the gateway rejects this run:") and "250g" in m for m in messages
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"items": []}, id="no runs list"),
        pytest.param({"runs": {}, "next": None}, id="runs not a list"),
        pytest.param("runs", id="a string"),
        pytest.param({"runs": [], "next": 3}, id="next a number"),
        pytest.param(
            {"runs": [], "next": {"updated_since": "2026-01-05T09:40"}}, id="no after_run"
        ),
    ],
)
def test_a_wrong_page_shape_is_refused(body: object) -> None:
    assert schema_violations(body)


def test_the_contract_page_example_conforms() -> None:
    """The example response in docs/erp-contract.md is a valid page."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("```json\n") + len("```json\n")
    example = json.loads(text[start : text.index("```", start)])
    assert example["runs"]
    assert schema_violations(example) == []
    assert check_page(example, tz=TZ) == []
