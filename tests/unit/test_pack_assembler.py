"""Issue 15, the pure parts: which values belong to a pack's counter, and what a pack flagged
VALUES_UNCERTAIN does (and does not do) to the ℮ batch, the giveaway and the interpreter.

Times are plain integers (µs): the logic only compares them, so no clock is involved.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.base import Quality, TagSample
from adapters.opcua.packs import PackAssembler
from adapters.roles import CheckweigherInterpreter, interpreter_for
from gateway.config import parse_config
from gateway.core.records import DeviceEvent, PackEvent, RecordFlag
from rules.emark import EmarkTracker
from rules.giveaway import GiveawayStats
from rules.model import Product, RunContext, Tier

UNCERTAIN = RecordFlag.VALUES_UNCERTAIN
TAGS = ["net_weight", "label_sequence"]


def s(tag: str, value: object) -> TagSample:
    return TagSample(tag, value)


def values(result_samples: tuple[TagSample, ...]) -> list[object]:
    return [sample.value for sample in result_samples]


def assembler_after_pack_1() -> PackAssembler:
    """Pack 1 written at 100-110 (counter at 110); its values seen by notification."""
    packs = PackAssembler(TAGS)
    packs.note(s("net_weight", 240.0), 100)
    packs.note(s("label_sequence", 501), 105)
    read = [(s("net_weight", 240.0), 100), (s("label_sequence", 501), 105)]
    assert packs.pack(1, 110, read).certain  # read after the counter, stamped before it
    return packs


# -- pairing by source time ----------------------------------------------------------------


def test_values_read_after_the_counter_and_stamped_before_it_are_the_packs() -> None:
    packs = assembler_after_pack_1()
    read = [(s("net_weight", 241.0), 200), (s("label_sequence", 502), 205)]
    for sample, stamp in read:
        packs.note(sample, stamp)
    result = packs.pack(2, 210, read)
    assert result.certain
    assert values(result.samples) == [241.0, 502]


def test_a_value_stamped_long_before_is_still_current_when_read_after_the_counter() -> None:
    # A nominal weight set once at the start is not rewritten for each pack.
    packs = PackAssembler(["nominal_weight"])
    packs.pack(1, 110, [(s("nominal_weight", 240.0), 5)])
    result = packs.pack(2, 210, [(s("nominal_weight", 240.0), 5)])
    assert result.certain
    assert values(result.samples) == [240.0]


def test_the_issue_next_packs_values_with_the_counter_unchanged() -> None:
    """The finding: the read lands after pack 3's values, before pack 3's counter. Pack 2's
    own values, seen by notification between counter 1 and counter 2, are given instead."""
    packs = assembler_after_pack_1()
    packs.note(s("net_weight", 241.0), 200)
    packs.note(s("label_sequence", 502), 205)
    read = [(s("net_weight", 242.0), 300), (s("label_sequence", 503), 305)]  # pack 3's
    for sample, stamp in read:
        packs.note(sample, stamp)
    result = packs.pack(2, 210, read)
    assert result.certain
    assert values(result.samples) == [241.0, 502]
    # Then pack 3 gets its own values, not pack 2's again.
    third = packs.pack(3, 310, read)
    assert third.certain
    assert values(third.samples) == [242.0, 503]


def test_a_later_value_with_no_value_seen_for_this_pack_is_flagged() -> None:
    packs = assembler_after_pack_1()
    read = [(s("net_weight", 242.0), 300), (s("label_sequence", 503), 305)]
    for sample, stamp in read:
        packs.note(sample, stamp)
    result = packs.pack(2, 210, read)  # pack 2's writes were never seen
    assert not result.certain
    assert len(result.doubts) == 2
    assert all("may be an earlier pack's" in d for d in result.doubts)
    assert values(result.samples) == [240.0, 501]  # the best known, flagged


def test_no_earlier_value_at_all_gives_the_read_value_flagged() -> None:
    packs = PackAssembler(["net_weight"])
    result = packs.pack(7, 210, [(s("net_weight", 242.0), 300)])
    assert values(result.samples) == [242.0]
    assert result.doubts == ("net_weight: rewritten after the counter; no earlier value seen",)


def test_after_missed_packs_there_is_no_lower_bound() -> None:
    packs = assembler_after_pack_1()
    packs.note(s("net_weight", 243.0), 380)  # pack 3 or 4: counters 2 and 3 never seen
    read = [(s("net_weight", 244.0), 500)]
    result = packs.pack(4, 410, [*read, (s("label_sequence", 504), 405)])
    assert values(result.samples) == [243.0, 504]
    assert result.doubts == (
        "net_weight: rewritten after the counter; the value seen before it may be an "
        "earlier pack's",
    )


def test_no_source_timestamps_cannot_be_placed() -> None:
    packs = PackAssembler(TAGS)
    read = [(s("net_weight", 241.0), None), (s("label_sequence", 502), None)]
    packs.pack(1, None, read)
    result = packs.pack(2, None, read)
    assert not result.certain
    assert "no source timestamp" in result.doubts[0]
    assert values(result.samples) == [241.0, 502]
    # Stamped counter, unstamped value: that value cannot be placed either.
    mixed = packs.pack(3, 310, [(s("net_weight", 241.0), None), (s("label_sequence", 503), 305)])
    assert mixed.doubts == ("net_weight: no source timestamp",)


def test_a_counter_clock_going_back_makes_history_untrusted() -> None:
    packs = assembler_after_pack_1()
    packs.note(s("net_weight", 241.0), 50)
    read = [(s("net_weight", 242.0), 300), (s("label_sequence", 502), 60)]
    result = packs.pack(2, 90, read)  # counter 2 stamped before counter 1
    assert not result.certain
    assert result.doubts[0].startswith("the counter's source time did not advance")


def test_history_is_searched_by_time_not_by_arrival() -> None:
    packs = assembler_after_pack_1()
    packs.note(s("net_weight", 241.0), 200)  # pack 2, arrived first
    packs.note(s("net_weight", 240.0), 100)  # pack 1 again, arrived late
    result = packs.pack(2, 210, [(s("net_weight", 242.0), 300), (s("label_sequence", 502), 205)])
    assert result.certain
    assert values(result.samples) == [241.0, 502]


# -- the interpreter flags the pack --------------------------------------------------------


def checkweigher() -> CheckweigherInterpreter:
    config = parse_config(
        {
            "gateway": {"id": "g", "site": "s"},
            "store": {"path": "x.db"},
            "lines": [{"id": "L1"}],
            "devices": [
                {
                    "id": "d1",
                    "kind": "modbus_tcp",
                    "line": "L1",
                    "role": "checkweigher",
                    "host": "h",
                    "tags": [
                        {"name": "pack_counter", "address": 0},
                        {"name": "net_weight", "address": 1, "type": "float32"},
                    ],
                }
            ],
        }
    )
    device = config.devices[0]
    interpreter = interpreter_for(device, {t.name: t for t in device.tags})  # type: ignore[union-attr]
    assert isinstance(interpreter, CheckweigherInterpreter)
    return interpreter


def feed(
    cw: CheckweigherInterpreter, counter: int, net: float, doubts: tuple[str, ...] = ()
) -> list:
    return cw.interpret_pack(
        [s("net_weight", net), s("pack_counter", counter)], 1_000 * counter, doubts
    )


def test_doubtful_packs_are_stored_flagged_counted_and_explained_once() -> None:
    cw = checkweigher()
    feed(cw, 1, 240.0)  # baseline
    assert [p.flags for p in feed(cw, 2, 241.0) if isinstance(p, PackEvent)] == [0]
    first = feed(cw, 3, 242.0, ("net_weight: why",))
    second = feed(cw, 4, 243.0, ("net_weight: why",))
    [event] = [r for r in first if isinstance(r, DeviceEvent)]
    assert (event.kind, event.detail) == (
        "pack_values_uncertain",
        {"counter": 3, "reasons": ["net_weight: why"]},
    )
    assert not [r for r in second if isinstance(r, DeviceEvent)]  # same episode
    flagged = [r for r in first + second if isinstance(r, PackEvent)]
    assert [(p.pack_counter, p.net_g, p.flags) for p in flagged] == [
        (3, 242.0, UNCERTAIN),
        (4, 243.0, UNCERTAIN),
    ]
    assert cw.uncertain_packs == 2
    # A sure pack ends the episode; the next doubtful one is explained again.
    feed(cw, 5, 244.0)
    assert any(isinstance(r, DeviceEvent) for r in feed(cw, 6, 245.0, ("again",)))
    # Doubts about samples that make no pack (the counter did not move) flag nothing.
    assert feed(cw, 6, 246.0, ("no pack",)) == []
    assert cw.uncertain_packs == 3


def test_interpret_still_works_without_doubts() -> None:
    cw = checkweigher()
    cw.interpret([s("pack_counter", 1)], 1)
    [pack] = cw.interpret([s("net_weight", 250.0), s("pack_counter", 2)], 2)
    assert isinstance(pack, PackEvent)
    assert pack.flags == 0


def test_a_bad_value_is_still_rejected_in_a_doubtful_pack() -> None:
    cw = checkweigher()
    feed(cw, 1, 240.0)
    records = cw.interpret_pack(
        [TagSample("net_weight", None, Quality.BAD, "BadNoData"), s("pack_counter", 2)], 2, ("x",)
    )
    assert not [r for r in records if isinstance(r, PackEvent)]
    assert cw.uncertain_packs == 0


# -- ℮ and giveaway leave flagged packs out ------------------------------------------------


T0 = 1_714_543_200_000_000
SPEC = Product(plu="10120", nominal_g=Decimal("250"), tier=Tier.PREMIUM)
RUN = RunContext(
    run_number="R42",
    line="L1",
    batch_codes=("B1",),
    species="salmon",
    products=(SPEC,),
    pack_date=None,
)


def pack(i: int, net: float, *, flags: int = 0, accepted: bool = True) -> PackEvent:
    return PackEvent(
        ts_us=T0 + i,
        line="L1",
        device="cw1",
        net_g=net,
        pack_counter=i,
        accepted=accepted,
        flags=flags,
    )


def test_flagged_packs_are_not_in_the_emark_batch_nor_raise_t2() -> None:
    tracker = EmarkTracker(min_packs=1)
    tracker.observe(pack(1, 251.0), RUN, SPEC, T0 + 1)
    # A pack that may carry its neighbour's "accepted" and weight: below T2, yet no finding.
    result = tracker.observe(pack(2, 200.0, flags=UNCERTAIN), RUN, SPEC, T0 + 2)
    assert result.findings == ()
    (batch,) = tracker.open_batches()
    assert (batch.n, batch.uncertain, batch.below_t2) == (1, 1, 0)
    [record] = tracker.close_all(T0 + 3).closed_records
    assert (record.n, record.uncertain, record.verdict) == (1, 1, "pass")


def test_a_flagged_pack_alone_starts_and_closes_no_batch() -> None:
    tracker = EmarkTracker()
    tracker.observe(pack(1, 251.0), RUN, SPEC, T0 + 1)
    other = Product(plu="10200", nominal_g=Decimal("500"), tier=Tier.PREMIUM)
    run = RunContext(
        run_number="R42",
        line="L1",
        batch_codes=("B1",),
        species="salmon",
        products=(SPEC, other),
        pack_date=None,
    )
    result = tracker.observe(pack(2, 502.0, flags=UNCERTAIN), run, other, T0 + 2)
    assert result.closed_records == ()
    assert [b.plu for b in tracker.open_batches()] == ["10120"]  # no changeover from it


@pytest.mark.parametrize("flags", [0, int(UNCERTAIN)])
def test_giveaway_counts_only_packs_tied_to_their_values(flags: int) -> None:
    stats = GiveawayStats(line="L1", run_number="R42", product=SPEC)
    stats.observe(pack(1, 255.0))
    stats.observe(pack(2, 275.0, flags=flags))
    assert stats.count == (2 if flags == 0 else 1)
