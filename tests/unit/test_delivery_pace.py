"""The delivery pace: batch size and window follow how quickly full batches are acked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.delivery_pace import START_BYTES, START_RECORDS, START_WINDOW, DeliveryPace, PaceLimits
from sync.protocol import Batch, wire_records


def pace(records: int = 2000, size: int = 1024 * 1024, window: int = 8) -> DeliveryPace:
    return DeliveryPace(max_records=records, max_bytes=size, max_window=window, target_s=2.5)


def test_it_starts_at_the_sizes_before_the_pace_and_climbs_batch_first_then_window() -> None:
    p = pace()
    assert p.limits == PaceLimits(START_RECORDS, START_BYTES, START_WINDOW)
    seen = [p.limits]
    for _ in range(20):
        p.acked(0.1, full=True)
        seen.append(p.limits)
    assert seen[:7] == [
        PaceLimits(500, 256 * 1024, 4),
        PaceLimits(1000, 512 * 1024, 4),
        PaceLimits(2000, 1024 * 1024, 4),
        PaceLimits(2000, 1024 * 1024, 5),
        PaceLimits(2000, 1024 * 1024, 6),
        PaceLimits(2000, 1024 * 1024, 7),
        PaceLimits(2000, 1024 * 1024, 8),
    ]
    assert set(seen[7:]) == {PaceLimits(2000, 1024 * 1024, 8)}


def test_batches_that_were_all_there_was_do_not_grow_it() -> None:
    p = pace()
    for _ in range(10):
        p.acked(0.01, full=False)
    assert p.limits == PaceLimits(500, 256 * 1024, 4)


def test_a_slow_ack_takes_two_steps_back_and_an_overdue_one_back_to_the_start() -> None:
    p = pace()
    for _ in range(4):
        p.acked(0.1, full=True)
    assert p.limits == PaceLimits(2000, 1024 * 1024, 6)
    p.acked(2.6, full=True)
    assert p.limits == PaceLimits(2000, 1024 * 1024, 4)
    p.acked(2.6, full=False)
    assert p.limits == PaceLimits(500, 256 * 1024, 4)
    for _ in range(5):
        p.acked(0.1, full=True)
    p.overdue()
    assert p.limits == PaceLimits(500, 256 * 1024, 4)


def test_ceilings_below_the_start_are_fixed_sizes() -> None:
    p = pace(records=100, size=64 * 1024, window=2)
    assert p.limits == PaceLimits(100, 64 * 1024, 2)
    for _ in range(5):
        p.acked(0.0, full=True)
    assert p.limits == PaceLimits(100, 64 * 1024, 2)


def test_a_413_lowers_the_ceiling_for_good() -> None:
    p = pace()
    for _ in range(3):
        p.acked(0.1, full=True)
    p.lower_ceiling(250, 128 * 1024)
    assert p.limits == PaceLimits(250, 128 * 1024, 4)
    for _ in range(10):
        p.acked(0.1, full=True)
    assert p.limits.records <= 250
    assert p.limits.bytes <= 128 * 1024
    assert p.ceiling == PaceLimits(250, 128 * 1024, 8)


@given(
    st.integers(1, 10_000),
    st.integers(1024, 4 * 1024 * 1024),
    st.integers(1, 16),
    st.lists(st.tuples(st.sampled_from(["ack", "overdue"]), st.floats(0, 10), st.booleans())),
)
def test_it_stays_between_the_start_and_the_ceiling(
    records: int, size: int, window: int, events: list[tuple[str, float, bool]]
) -> None:
    p = pace(records, size, window)
    start = p.limits
    for kind, latency, full in events:
        if kind == "ack":
            p.acked(latency, full=full)
        else:
            p.overdue()
        now = p.limits
        assert start.records <= now.records <= records
        assert start.bytes <= now.bytes <= size
        assert start.window <= now.window <= window


def batch(count: int, *, wire: bool = True) -> Batch:
    records = tuple((seq, {"n": seq}) for seq in range(1, count + 1))
    return Batch(
        gateway="gw",
        site="s",
        stream="packs",
        records=records,
        wire_records=wire_records(records) if wire else None,
    )


def test_a_batch_is_full_when_cut_at_the_record_or_byte_limit() -> None:
    p = pace(records=10, size=1024, window=1)
    assert p.is_full(batch(10))
    assert not p.is_full(batch(3))
    assert p.is_full(batch(3, wire=False))  # cut record by record: they did not all fit
    small_bytes = pace(records=1000, size=1024, window=1)
    assert small_bytes.is_full(batch(60))  # about 1,000 bytes of JSON


def test_a_limit_that_lowers_nothing_leaves_the_pace_where_it_is() -> None:
    p = pace()
    for _ in range(3):
        p.acked(0.1, full=True)
    before = p.limits
    p.lower_ceiling(5000, 2 * 1024 * 1024)  # above the ceilings: the same limit again
    assert p.limits == before
    p.lower_ceiling(2000, 512 * 1024)
    assert p.limits == PaceLimits(500, 256 * 1024, 4)
    assert p.ceiling == PaceLimits(2000, 512 * 1024, 8)
