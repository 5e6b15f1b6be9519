"""Short alert references: six hex characters, unique among the alerts listed, resolved back
to one alert or refused (issue 17)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.alert_refs import REF_LENGTH, alert_ref, resolve_ref, short_refs

LONG_ID = "emark_mean:L1/261201-L1-02/41240/2026-12-01T21:34:36Z:1796161276000000"


def test_a_ref_is_six_hex_characters_of_the_id() -> None:
    ref = alert_ref(LONG_ID)
    assert len(ref) == REF_LENGTH == 6
    assert all(c in "0123456789abcdef" for c in ref)
    assert alert_ref(LONG_ID) == ref, "the same id, the same ref (no state)"
    assert short_refs([LONG_ID]) == {LONG_ID: ref}


def test_colliding_refs_are_made_longer_until_unique() -> None:
    # Find two ids whose first six hex digits collide (about 16.7 M possibilities: search
    # among a few thousand ids for a shared 3-digit prefix instead, and check the rule).
    ids = [f"label_gap:scan1/R/{n}:0" for n in range(5000)]
    by_prefix: dict[str, str] = {}
    pair = None
    for alert_id in ids:
        head = alert_ref(alert_id, 3)
        if head in by_prefix:
            pair = (by_prefix[head], alert_id)
            break
        by_prefix[head] = alert_id
    assert pair is not None
    refs = short_refs(pair)
    assert len(set(refs.values())) == 2
    assert all(len(r) >= REF_LENGTH for r in refs.values())


@given(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=200, unique=True))
def test_refs_are_unique_and_resolve_to_their_alert(ids: list[str]) -> None:
    refs = short_refs(ids)
    assert len(set(refs.values())) == len(ids)
    for alert_id, ref in refs.items():
        assert resolve_ref(ref, ids) == alert_id
        assert resolve_ref(ref.upper(), ids) == alert_id, "case does not matter"


def test_an_id_resolves_to_itself() -> None:
    assert resolve_ref(LONG_ID, [LONG_ID, "other"]) == LONG_ID


@pytest.mark.parametrize("text", ["", "abc", "zzzzzz", "000000000000"])
def test_unknown_or_short_refs_are_refused(text: str) -> None:
    with pytest.raises(KeyError):
        resolve_ref(text, [LONG_ID])


def test_an_ambiguous_ref_is_refused_never_guessed() -> None:
    # Among 20 000 ids about a dozen pairs share their first six hex digits (birthday bound).
    seen: dict[str, str] = {}
    pair = None
    for alert_id in (f"x:{n}" for n in range(20000)):
        head = alert_ref(alert_id)
        if head in seen:
            pair = (seen[head], alert_id)
            break
        seen[head] = alert_id
    assert pair is not None
    with pytest.raises(ValueError, match="names 2 alerts"):
        resolve_ref(alert_ref(pair[0]), pair)
    refs = short_refs(pair)
    assert {resolve_ref(r, pair) for r in refs.values()} == set(pair)
