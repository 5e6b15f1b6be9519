"""validate_record settles common values without a call; its verdicts must be the full check's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.record_schema import SchemaViolation, _check, stream_schemas, validate_record


def full_check(stream: str, data: Mapping[str, Any]) -> None:
    """Every field through the full check: the verdicts validate_record must give."""
    fields = stream_schemas()[stream]
    unknown = sorted(k for k in data if k not in fields)
    if unknown:
        raise SchemaViolation(f"unknown field(s) {unknown[:5]}")
    for name, field in fields.items():
        if name not in data:
            if field.required:
                raise SchemaViolation(f"{name} is missing")
            continue
        _check(field, data[name])


def verdict(check: Any, stream: str, data: Mapping[str, Any]) -> str | None:
    try:
        check(stream, data)
    except SchemaViolation as exc:
        return str(exc)
    return None


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.text(alphabet="0123456789abcdefABCDEF", max_size=8),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def records(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    stream = draw(st.sampled_from(sorted(stream_schemas())))
    fields = list(stream_schemas()[stream])
    data = {name: draw(values) for name in fields if draw(st.booleans()) or draw(st.booleans())}
    if draw(st.integers(0, 9)) == 0:
        data[draw(st.sampled_from(["extra", "zzz"]))] = 1
    return stream, data


@settings(max_examples=500)
@given(records())
def test_the_same_verdict_and_message_as_the_full_check(record: tuple[str, dict[str, Any]]) -> None:
    stream, data = record
    assert verdict(validate_record, stream, data) == verdict(full_check, stream, data)


GOOD = {"ts_us": 1, "line": "L1", "device": "p", "probe": "P1", "celsius": 3.5, "flags": 0}


def test_a_good_record_passes_and_each_edge_fails_with_the_full_checks_message() -> None:
    assert verdict(validate_record, "temperatures", GOOD) is None
    for name, value, words in (
        ("probe", "x" * (64 * 1024 + 1), "longer than"),
        ("flags", 2**63, "outside 64 bits"),
        ("celsius", float("inf"), "finite"),
        ("celsius", True, "must be a number"),
        ("ts_us", 1.0, "must be an integer"),
        ("line", None, "must not be null"),
    ):
        data = {**GOOD, name: value}
        message = verdict(validate_record, "temperatures", data)
        assert message is not None
        assert words in message
        assert message == verdict(full_check, "temperatures", data)
