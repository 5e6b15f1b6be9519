"""The warehouse's canonical JSON: the text every stored payload and its SHA-256 are made of.
The encoder built once must write exactly what ``json.dumps`` with the canonical options
writes, and refuse what it refuses."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.ingest.warehouse_records import canonical_json, prepare


def reference(data: Any) -> str:
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=8))
def test_the_text_is_that_of_json_dumps_with_the_canonical_options(data: dict[str, Any]) -> None:
    assert canonical_json(data) == reference(data)


def test_keys_sorted_no_spaces_and_text_not_escaped() -> None:
    assert canonical_json({"b": 1, "a": [1.5, None, True], "é": "ø\\n"}) == (
        '{"a":[1.5,null,true],"b":1,"é":"ø\\\\n"}'
    )


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_number_json_cannot_carry_is_refused(number: float) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        canonical_json({"celsius": number})


def test_a_value_json_cannot_carry_is_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        canonical_json({"at": object()})


def test_a_record_that_cannot_be_stored_as_utf8_is_invalid_not_an_error() -> None:
    record = {
        "ts_us": 1,
        "line": "L1\ud800",  # a lone surrogate: JSON text, but not UTF-8
        "device": "d",
        "probe": "p",
        "location": "chiller",
        "celsius": 2.5,
        "flags": 0,
    }
    prepared = prepare(3, record, "temperatures")
    assert prepared.problem is not None
    assert prepared.problem.startswith("invalid record: not storable as JSON")
