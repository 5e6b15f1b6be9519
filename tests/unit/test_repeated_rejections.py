"""A bad value that keeps arriving unchanged is one rejection with a count."""

from __future__ import annotations

from adapters.rejections import RepeatedRejections
from gateway.core.records import Record, RejectedInput, TemperatureReading

S = 1_000_000


def nan(ts_s: float, tag: str = "P1", raw: str = "nan") -> RejectedInput:
    return RejectedInput(
        ts_us=int(ts_s * S), source="probes", tag=tag, raw=raw, reason="non_finite"
    )


def reading(ts_s: float) -> TemperatureReading:
    return TemperatureReading(
        ts_us=int(ts_s * S), line="L1", device="probes", probe="P2", celsius=2.5
    )


def admit(throttle: RepeatedRejections, *records: Record) -> list[Record]:
    return list(throttle.admit(records))


def test_a_stuck_nan_is_stored_once_then_summarised_with_its_count() -> None:
    throttle = RepeatedRejections(window_us=60 * S)
    stored = admit(throttle, *(nan(t * 0.1) for t in range(10)))  # re-reported each sampling
    assert stored == [nan(0)]
    assert throttle.suppressed == 9
    # The tag reports another bad value: the streak closes with its count, the new one is kept.
    stored = admit(throttle, nan(1.5, raw="inf"))
    assert len(stored) == 2
    summary, new = stored
    assert isinstance(summary, RejectedInput)
    assert (summary.tag, summary.raw, summary.reason) == ("P1", "nan", "non_finite")
    assert summary.detail.startswith("repeated 9 more time(s) over 0.9 s")
    assert new == nan(1.5, raw="inf")


def test_other_records_and_other_tags_pass_untouched() -> None:
    throttle = RepeatedRejections(window_us=60 * S)
    records: list[Record] = [nan(0), reading(0.1), nan(0.2, tag="P3"), nan(0.3), reading(0.4)]
    assert admit(throttle, *records) == [nan(0), reading(0.1), nan(0.2, tag="P3"), reading(0.4)]


def test_a_long_streak_is_counted_at_least_once_a_window() -> None:
    throttle = RepeatedRejections(window_us=60 * S)
    stored = admit(throttle, *(nan(t) for t in range(150)))  # one a second for 150 s
    rows = [r for r in stored if isinstance(r, RejectedInput)]
    firsts = [r for r in rows if not r.detail]
    summaries = [r for r in rows if r.detail.startswith("repeated")]
    assert [r.ts_us for r in firsts] == [0, 60 * S, 120 * S]
    assert [r.detail.split(" ")[1] for r in summaries] == ["59", "59"]
    # Everything is accounted for: stored first rows plus counted repeats.
    assert len(firsts) + throttle.suppressed == 150


def test_a_streak_that_ended_is_summarised_with_the_next_record_after_its_window() -> None:
    throttle = RepeatedRejections(window_us=60 * S)
    admit(throttle, nan(0), nan(1), nan(2))  # then the probe recovers
    assert admit(throttle, reading(30)) == [reading(30)]
    later = admit(throttle, reading(61))
    assert len(later) == 2
    summary = later[0]
    assert isinstance(summary, RejectedInput)
    assert summary.detail.startswith("repeated 2 more time(s)")
    assert later[1] == reading(61)
