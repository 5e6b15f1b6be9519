"""HACCP probe monitor: debounce, hysteresis, time beyond the limit, sensor faults."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.records import TemperatureReading
from rules.haccp import (
    FROZEN_PRODUCT_CCP,
    RULE_LOWER,
    RULE_SENSOR_FAULT,
    RULE_UPPER,
    ProbeLimits,
    ProbeMonitor,
)
from rules.model import Finding, Severity

S = 1_000_000


def reading(t_s: float, celsius: float) -> TemperatureReading:
    return TemperatureReading(
        ts_us=round(t_s * S),
        line="L1",
        device="tt1",
        probe="T1",
        celsius=celsius,
        location="chiller",
        run_number="R42",
    )


def monitor(
    upper: str | None = "5",
    lower: str | None = None,
    **kw: object,
) -> ProbeMonitor:
    limits = ProbeLimits(
        upper_c=None if upper is None else Decimal(upper),
        lower_c=None if lower is None else Decimal(lower),
        **kw,  # type: ignore[arg-type]
    )
    return ProbeMonitor("tt1", "T1", limits)


def feed(mon: ProbeMonitor, samples: Sequence[tuple[float, float]]) -> list[Finding]:
    out: list[Finding] = []
    for t_s, value in samples:
        out.extend(mon.observe(reading(t_s, value), round(t_s * S)))
    return out


def every(step_s: float, start_s: float, end_s: float, value: float) -> list[tuple[float, float]]:
    n = round((end_s - start_s) / step_s)
    return [(start_s + i * step_s, value) for i in range(n + 1)]


def summary(findings: list[Finding]) -> list[tuple[str, bool, float]]:
    return [(f.rule, f.active, f.ts_us / S) for f in findings]


# ------------------------------------------------------------------------------ breaches

BREACHES = [
    pytest.param(
        "5", None, [(0, 4), (10, 6), (40, 6), (50, 4)], [], id="short-excursion-raises-nothing"
    ),
    pytest.param(
        "5", None, [(0, 4), (10, 6), (69, 6), (70, 4.9)], [], id="59s-beyond-is-still-short"
    ),
    pytest.param("5", None, [(0, 4), (10, 6), (70, 6)], [(RULE_UPPER, True, 70)], id="at-debounce"),
    pytest.param(
        "5",
        None,
        [(0, 4), *every(10, 10, 400, 6.0)],
        [(RULE_UPPER, True, 70)],
        id="long-breach-raises-once",
    ),
    pytest.param("5", None, every(10, 0, 600, 5.0), [], id="at-the-limit-is-inside"),
    pytest.param(
        "5",
        None,
        [(0, 5.1), (30, 5.1), (60, 5.1)],
        [(RULE_UPPER, True, 60)],
        id="float-5.1-is-above-5",
    ),
    pytest.param(
        None,
        "-1",
        [(0, 0), (10, -1.5), (70, -1.5), (80, -0.6), (90, -0.5)],
        [(RULE_LOWER, True, 70), (RULE_LOWER, False, 90)],
        id="lower-limit-mirror",
    ),
    pytest.param(
        "-18",
        None,
        [(0, -20), (10, -17.9), (70, -17.9), (80, -18.4), (90, -18.5)],
        [(RULE_UPPER, True, 70), (RULE_UPPER, False, 90)],
        id="frozen-minus-18",
    ),
    pytest.param(
        "5",
        "0",
        [(0, 2), (10, 6), (70, 6), (80, -1), (140, -1), (150, 0.4)],
        [(RULE_UPPER, True, 70), (RULE_UPPER, False, 80), (RULE_LOWER, True, 140)],
        id="upper-then-lower",
    ),
]


@pytest.mark.parametrize(("upper", "lower", "samples", "expected"), BREACHES)
def test_breach_table(
    upper: str | None,
    lower: str | None,
    samples: list[tuple[float, float]],
    expected: list[tuple[str, bool, float]],
) -> None:
    mon = monitor(upper, lower)
    assert summary(feed(mon, samples)) == expected


def test_the_raise_is_critical_and_describes_the_breach() -> None:
    mon = monitor()
    [finding] = feed(mon, [(0, 4), (10, 6), (40, 7.5), (70, 6.5)])
    assert finding.rule == RULE_UPPER
    assert finding.subject == "tt1/T1"
    assert finding.severity is Severity.CRITICAL
    assert finding.active
    assert finding.line == "L1"
    assert finding.detail["limit_c"] == 5.0
    assert finding.detail["value_c"] == 6.5
    assert finding.detail["peak_c"] == 7.5
    assert finding.detail["excursion_start_us"] == 10 * S
    assert finding.detail["location"] == "chiller"
    assert finding.detail["run_number"] == "R42"
    assert mon.in_breach == {"upper"}


def test_a_short_excursion_is_logged() -> None:
    mon = monitor()
    assert feed(mon, [(0, 4), (10, 6), (30, 6.7), (50, 4.9)]) == []
    [excursion] = mon.excursions
    assert excursion.side == "upper"
    assert excursion.start_us == 10 * S
    assert excursion.end_us == 50 * S
    assert excursion.beyond_s == 40
    assert excursion.peak_c == Decimal("6.7")
    assert not excursion.breached
    assert mon.time_above_s == 40


def test_debounce_elapses_on_tick_without_a_new_reading() -> None:
    mon = monitor()
    assert feed(mon, [(0, 6)]) == []
    assert mon.tick(59 * S) == []
    [finding] = mon.tick(60 * S)
    assert (finding.rule, finding.active, finding.ts_us) == (RULE_UPPER, True, 60 * S)
    assert mon.tick(61 * S) == []
    assert mon.tick(200 * S) == []


def test_zero_debounce_is_an_instant_breach() -> None:
    mon = monitor(debounce_s=0)
    assert summary(feed(mon, [(0, 4), (10, 5.5)])) == [(RULE_UPPER, True, 10)]


# ------------------------------------------------------------------------------ hysteresis


@pytest.mark.parametrize(
    ("value", "clears"),
    [
        pytest.param(5.0, False, id="at-limit"),
        pytest.param(4.9, False, id="just-under-limit"),
        pytest.param(4.51, False, id="inside-band"),
        pytest.param(4.5, True, id="band-edge"),
        pytest.param(4.0, True, id="well-inside"),
        pytest.param(-1.0, True, id="cold"),
    ],
)
def test_clear_only_after_hysteresis(value: float, clears: bool) -> None:
    mon = monitor()
    feed(mon, [(0, 6), (60, 6)])
    findings = feed(mon, [(70, value)])
    assert summary(findings) == ([(RULE_UPPER, False, 70)] if clears else [])
    assert mon.in_breach == (frozenset() if clears else {"upper"})
    assert mon.breached is not clears


def test_dipping_into_the_band_and_back_up_is_the_same_breach() -> None:
    mon = monitor()
    findings = feed(
        mon,
        [(0, 6), (60, 6), (70, 4.8), (80, 6), (90, 4.6), (200, 7), (210, 4.5)],
    )
    assert summary(findings) == [(RULE_UPPER, True, 60), (RULE_UPPER, False, 210)]


def test_after_a_clear_a_new_breach_needs_the_full_debounce() -> None:
    mon = monitor()
    findings = feed(mon, [(0, 6), (60, 6), (70, 4), (80, 6), (130, 6), (140, 6)])
    assert summary(findings) == [
        (RULE_UPPER, True, 60),
        (RULE_UPPER, False, 70),
        (RULE_UPPER, True, 140),
    ]


# ------------------------------------------------------------------------------ time above


def test_time_above_the_limit_per_breach_and_in_total() -> None:
    mon = monitor()
    # Above from 10 s; in the band (not above) from 80 to 90 s; above again 90-100; cleared 100.
    findings = feed(
        mon,
        [(0, 4), (10, 6), (40, 6), (70, 6), (80, 4.8), (90, 5.5), (100, 4.2)],
    )
    clear = findings[-1]
    assert (clear.rule, clear.active) == (RULE_UPPER, False)
    assert clear.detail["breach_s"] == 80  # 10-80 and 90-100
    assert clear.detail["duration_s"] == 90  # 10-100
    assert clear.detail["total_beyond_s"] == 80
    assert clear.detail["raised_us"] == 70 * S
    assert mon.time_above_s == 80
    # A short excursion later adds to the total, not to any breach.
    feed(mon, [(110, 5.2), (125, 4)])
    assert mon.time_above_s == 95
    assert [e.breached for e in mon.excursions] == [True, False]
    assert mon.time_below_s == 0


def test_a_held_value_counts_for_at_most_no_data_s() -> None:
    mon = monitor(no_data_s=120)
    feed(mon, [(0, 6), (1000, 4)])
    assert mon.time_above_s == 120


# ------------------------------------------------------------------------------ faults


def test_no_data_fault_raised_once_and_cleared_by_a_reading() -> None:
    mon = monitor()
    feed(mon, [(0, 3)])
    assert mon.tick(299 * S) == []
    [fault] = mon.tick(300 * S)
    assert (fault.rule, fault.active, fault.severity) == (RULE_SENSOR_FAULT, True, Severity.MAJOR)
    assert fault.subject == "tt1/T1"
    assert fault.detail["faults"] == ["no_data"]
    assert mon.tick(400 * S) == []
    [cleared] = feed(mon, [(410, 3)])
    assert (cleared.rule, cleared.active) == (RULE_SENSOR_FAULT, False)


def test_a_probe_that_never_reports_is_a_fault_from_the_start() -> None:
    mon = ProbeMonitor("tt1", "T1", FROZEN_PRODUCT_CCP, line="L1", started_us=1000 * S)
    assert mon.tick(1299 * S) == []
    [fault] = mon.tick(1300 * S)
    assert fault.active
    assert fault.line == "L1"
    assert fault.detail["last_reading_us"] is None


def test_out_of_range_is_a_fault_not_a_value() -> None:
    mon = monitor()
    findings = feed(mon, [(0, 3), (10, 150), (20, 150), (90, 150)])
    assert summary(findings) == [(RULE_SENSOR_FAULT, True, 10)]
    assert mon.faults == {"out_of_range"}
    assert feed(mon, [(100, 3)])[0].active is False


def test_a_faulty_reading_never_clears_a_breach() -> None:
    mon = monitor()
    feed(mon, [(0, 6), (60, 6)])
    # -60 °C is "inside" the upper limit numerically but below the probe's physical range.
    findings = feed(mon, [(70, -60), (80, -60)])
    assert summary(findings) == [(RULE_SENSOR_FAULT, True, 70)]
    assert mon.in_breach == {"upper"}
    findings = feed(mon, [(90, 3)])
    assert sorted(summary(findings)) == [(RULE_SENSOR_FAULT, False, 90), (RULE_UPPER, False, 90)]


def test_stuck_value_is_a_fault_and_clears_when_it_moves() -> None:
    mon = monitor(stuck_s=600)
    findings = feed(mon, every(60, 0, 660, 3.0))
    assert summary(findings) == [(RULE_SENSOR_FAULT, True, 600)]
    assert findings[0].detail["faults"] == ["stuck"]
    assert summary(feed(mon, [(720, 3.1)])) == [(RULE_SENSOR_FAULT, False, 720)]


def test_a_stuck_probe_does_not_clear_its_breach() -> None:
    mon = monitor(stuck_s=120, no_data_s=1000)
    findings = feed(mon, every(30, 0, 300, 6.0))
    assert summary(findings) == [(RULE_UPPER, True, 60), (RULE_SENSOR_FAULT, True, 120)]
    # Stuck readings carry no trusted value; the next moving one decides.
    assert summary(feed(mon, [(330, 4.9)])) == [(RULE_SENSOR_FAULT, False, 330)]
    assert mon.in_breach == {"upper"}


def test_fault_changes_update_the_open_fault() -> None:
    mon = monitor()
    feed(mon, [(0, 3), (10, 150)])
    [update] = mon.tick(400 * S)
    assert update.active
    assert update.detail["faults"] == ["no_data", "out_of_range"]
    assert update.detail["previous_faults"] == ["out_of_range"]


def test_out_of_order_readings_are_ignored() -> None:
    mon = monitor()
    feed(mon, [(0, 4), (100, 6)])
    assert feed(mon, [(50, 4)]) == []
    assert mon.ignored_out_of_order == 1
    assert summary(feed(mon, [(160, 6)])) == [(RULE_UPPER, True, 160)]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"upper_c": Decimal(5), "lower_c": Decimal(5)}, id="lower-not-below-upper"),
        pytest.param(
            {"upper_c": Decimal(5), "lower_c": Decimal(4), "hysteresis_c": Decimal(1)},
            id="bands-overlap",
        ),
        pytest.param({"upper_c": Decimal(5), "lower_c": None, "debounce_s": -1}, id="debounce"),
        pytest.param({"upper_c": Decimal(5), "lower_c": None, "no_data_s": 0}, id="no-data"),
        pytest.param({"upper_c": Decimal(5), "lower_c": None, "stuck_s": 0}, id="stuck"),
        pytest.param(
            {"upper_c": Decimal(5), "lower_c": None, "hysteresis_c": Decimal(-1)}, id="hysteresis"
        ),
        pytest.param({"upper_c": Decimal(150), "lower_c": None}, id="limit-beyond-physics"),
        pytest.param(
            {
                "upper_c": None,
                "lower_c": None,
                "physical_min_c": Decimal(10),
                "physical_max_c": Decimal(0),
            },
            id="physical-range",
        ),
    ],
)
def test_invalid_limits(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ProbeLimits(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ properties

LIMIT = Decimal(5)
HYST = Decimal("0.5")
DEBOUNCE_S = 60
NO_DATA_S = 300

tenths = st.integers(min_value=-50, max_value=150).map(lambda n: n / 10)  # -5.0 .. 15.0 °C
steps = st.integers(min_value=1, max_value=NO_DATA_S - 1)


@given(
    start=st.integers(min_value=0, max_value=10**6),
    value=st.integers(min_value=51, max_value=400).map(lambda n: n / 10),
    gaps=st.lists(steps, min_size=1, max_size=60),
)
def test_a_persisting_breach_is_raised_exactly_once_at_debounce(
    start: int, value: float, gaps: list[int]
) -> None:
    mon = monitor()
    times = [start]
    for gap in gaps:
        times.append(times[-1] + gap)
    findings = feed(mon, [(t, value) for t in times])
    due = [t for t in times if t - start >= DEBOUNCE_S]
    if due:
        assert summary(findings) == [(RULE_UPPER, True, due[0])]
        # ...and no tick repeats it.
        assert mon.tick((times[-1] + 1) * S) == []
    else:
        assert findings == []
        # The debounce still elapses on a tick, once.
        raise_at = (start + DEBOUNCE_S) * S
        assert summary(mon.tick(raise_at)) == [(RULE_UPPER, True, start + DEBOUNCE_S)]
        assert mon.tick(raise_at + S) == []


@dataclass
class _Reference:
    """The upper-limit rule as the requirement states it, for samples closer than no_data_s."""

    start: float | None = None
    active: bool = False

    def sample(self, t: float, v: Decimal) -> list[bool]:
        out: list[bool] = []
        if v > LIMIT:
            if self.start is None:
                self.start = t
        elif self.active:
            if v <= LIMIT - HYST:
                self.active = False
                self.start = None
                out.append(False)
        else:
            self.start = None
        return out + self.at(t)

    def at(self, t: float) -> list[bool]:
        if self.start is not None and not self.active and t - self.start >= DEBOUNCE_S:
            self.active = True
            return [True]
        return []


@st.composite
def _event(draw: st.DrawFn) -> tuple[int, float, int | None]:
    """A reading ``gap`` s after the previous one, maybe with a tick in between."""
    gap = draw(steps)
    tick = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=gap - 1)))
    return gap, draw(tenths), tick


@settings(max_examples=300)
@given(events=st.lists(_event(), min_size=1, max_size=80))
def test_transitions_follow_the_rule(events: list[tuple[int, float, int | None]]) -> None:
    mon = monitor()
    ref = _Reference()
    t = 0
    readings: list[tuple[int, Decimal]] = []
    expected: list[bool] = []
    actual: list[Finding] = []
    for gap, value, tick in events:
        if tick is not None:
            expected.extend(ref.at(t + tick))
            actual.extend(mon.tick((t + tick) * S))
        t += gap
        expected.extend(ref.sample(t, Decimal(repr(value))))
        actual.extend(mon.observe(reading(t, value), t * S))
        readings.append((t, Decimal(repr(value))))
    upper = [f for f in actual if f.rule == RULE_UPPER]
    assert [f.active for f in upper] == expected
    # Alternation: one raise, then at most one clear, never two raises in a row.
    for before, after in itertools.pairwise(upper):
        assert before.active != after.active
    # A clear only ever follows a reading back inside by the hysteresis.
    values_at = dict(readings)
    for f in upper:
        if not f.active:
            assert values_at[f.ts_us // S] <= LIMIT - HYST
    assert not [f for f in actual if f.rule == RULE_SENSOR_FAULT]


@given(samples=st.lists(st.tuples(steps, tenths), min_size=1, max_size=60))
def test_time_above_is_the_held_time_of_values_above(samples: list[tuple[int, float]]) -> None:
    mon = monitor()
    t = 0
    timeline: list[tuple[int, float]] = []
    for gap, value in samples:
        t += gap
        timeline.append((t, value))
    feed(mon, timeline)
    expected = sum(
        t1 - t0 for (t0, v0), (t1, _) in itertools.pairwise(timeline) if Decimal(repr(v0)) > LIMIT
    )
    assert mon.time_above_s == expected


# ------------------------------------------------------------------------------ clock steps

DAY_S = 86_400


def test_a_clock_step_forward_is_not_silence() -> None:
    mon = monitor(no_data_s=120, debounce_s=60)
    feed(mon, every(1, 0, 100, 3))
    mon.shift_time(DAY_S * S)  # NTP steps the wall clock a day ahead
    assert mon.tick((DAY_S + 101) * S) == [], "no 'no data' fault from the step"
    assert feed(mon, every(1, DAY_S + 101, DAY_S + 200, 3)) == []
    assert mon.faults == frozenset()


def test_after_a_clock_step_back_readings_count_and_a_breach_is_still_found() -> None:
    mon = monitor(no_data_s=120, debounce_s=60)
    feed(mon, every(1, 3600, 3700, 3))
    mon.shift_time(-3600 * S)  # the wall clock goes back an hour
    findings = feed(mon, every(1, 101, 200, 7))  # above 5 °C for 99 s
    assert mon.ignored_out_of_order == 0, "new readings are not taken for old ones"
    assert [(f.rule, f.active) for f in findings] == [(RULE_UPPER, True)]
    assert findings[0].ts_us == 161 * S, "debounced 60 s after the first high reading"


def test_a_breach_in_debounce_keeps_its_elapsed_time_across_a_step() -> None:
    mon = monitor(no_data_s=120, debounce_s=60)
    feed(mon, every(1, 0, 30, 7))  # 30 s above the limit
    mon.shift_time(DAY_S * S)
    [raised] = feed(mon, every(1, DAY_S + 31, DAY_S + 60, 7))
    assert raised.ts_us == (DAY_S + 60) * S, "30 s before the step + 30 s after it"
