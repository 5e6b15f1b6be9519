"""The rules' memory of recent packs by (line, label number): bounded, oldest forgotten
first across lines, and the same answers as the ``OrderedDict`` it replaces."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.rules_engine.recent_by_label import RecentByLabel


def test_the_oldest_entry_of_all_lines_is_forgotten_first() -> None:
    recent: RecentByLabel[float] = RecentByLabel(3)
    recent.put("L1", 10, 500.0)
    recent.put("L2", 10, 250.0)
    recent.put("L1", 11, 501.0)
    recent.put("L2", 11, 251.0)  # the fourth: L1 10 goes
    assert len(recent) == 3
    assert recent.get("L1", 10) is None
    assert (recent.get("L2", 10), recent.get("L1", 11), recent.get("L2", 11)) == (
        250.0,
        501.0,
        251.0,
    )


def test_overwriting_a_remembered_number_keeps_its_place() -> None:
    recent: RecentByLabel[str] = RecentByLabel(2)
    recent.put("L1", 1, "1234")
    recent.put("L1", 2, "5678")
    recent.put("L1", 1, "9999")  # still the oldest
    assert len(recent) == 2
    recent.put("L1", 3, "4321")
    assert recent.get("L1", 1) is None
    assert recent.get("L1", 2) == "5678"
    assert recent.get("L1", 3) == "4321"


def test_unknown_lines_and_numbers_are_none() -> None:
    recent: RecentByLabel[float] = RecentByLabel(1)
    assert recent.get("L9", 1) is None
    recent.put("L1", 1, 1.0)
    recent.put("L2", 1, 2.0)  # L1 has no entry left
    assert recent.get("L1", 1) is None
    assert len(recent) == 1


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit must be positive"):
        RecentByLabel(0)


@given(
    limit=st.integers(1, 8),
    puts=st.lists(
        st.tuples(st.sampled_from(["L1", "L2", "L3"]), st.integers(0, 12), st.integers()),
        max_size=80,
    ),
)
def test_it_answers_as_the_bounded_ordered_dict_did(
    limit: int, puts: list[tuple[str, int, int]]
) -> None:
    recent: RecentByLabel[int] = RecentByLabel(limit)
    oracle: OrderedDict[tuple[str, int], int] = OrderedDict()
    for line, number, value in puts:
        recent.put(line, number, value)
        oracle[(line, number)] = value
        if len(oracle) > limit:
            oracle.popitem(last=False)
        assert len(recent) == len(oracle)
    for line in ("L1", "L2", "L3"):
        for number in range(13):
            assert recent.get(line, number) == oracle.get((line, number))
