"""A probe's device fault code: one sensor fault while it lasts, no breach, no "no data"."""

from __future__ import annotations

from decimal import Decimal

from gateway.config import ProbeRules, RulesSection
from gateway.core.clock import ManualClock
from gateway.core.records import (
    SENSOR_FAULT_CODE,
    AlertRecord,
    Record,
    RejectedInput,
    TemperatureReading,
)
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex
from rules.haccp import RULE_SENSOR_FAULT, RULE_UPPER, ProbeLimits, ProbeMonitor
from rules.model import Finding, Severity

S = 1_000_000
T0 = 1_767_225_600 * S
FAULT_S = 30


def reading(t_s: float, celsius: float) -> TemperatureReading:
    return TemperatureReading(
        ts_us=T0 + round(t_s * S), line="L1", device="tt1", probe="T1", celsius=celsius
    )


def monitor(**kwargs: object) -> ProbeMonitor:
    limits = ProbeLimits(upper_c=Decimal(5), lower_c=None, **kwargs)  # type: ignore[arg-type]
    return ProbeMonitor("tt1", "T1", limits, started_us=T0)


def summary(findings: list[Finding]) -> list[tuple[str, bool, float]]:
    return [(f.rule, f.active, (f.ts_us - T0) / S) for f in findings]


def test_thirty_seconds_of_fault_codes_are_one_fault_cleared_by_a_reading() -> None:
    mon = monitor(debounce_s=20, no_data_s=10)
    out = mon.observe(reading(0, 3.0), T0)
    for second in range(1, FAULT_S + 1):
        now = T0 + second * S
        out += mon.observe_fault(now, "32767", line="L1")
        out += mon.tick(now + S // 2)
    # 30 s of codes with a 10 s no-data limit: the code is the fault, silence is not added.
    [raised] = out
    assert (raised.rule, raised.active, raised.severity) == (
        RULE_SENSOR_FAULT,
        True,
        Severity.MAJOR,
    )
    assert raised.ts_us == T0 + S
    assert raised.detail["faults"] == ["device_fault"]
    assert raised.detail["fault_code"] == "32767"
    assert "fault code 32767" in raised.message
    assert raised.line == "L1"
    assert mon.faults == {"device_fault"}
    assert mon.tick(T0 + 60 * S) == []  # still in fault, long after the last code arrived
    [cleared] = mon.observe(reading(61, 3.2), T0 + 61 * S)
    assert (cleared.rule, cleared.active) == (RULE_SENSOR_FAULT, False)
    assert mon.faults == frozenset()


def test_no_breach_is_raised_on_the_value_held_before_the_fault() -> None:
    mon = monitor(debounce_s=20, no_data_s=300)
    out = mon.observe(reading(0, 6.0), T0)  # beyond 5 °C: the debounce starts
    out += mon.observe(reading(5, 6.0), T0 + 5 * S)
    for second in range(10, 10 + FAULT_S):
        out += mon.observe_fault(T0 + second * S, "32767")
        out += mon.tick(T0 + second * S)
    assert summary(out) == [(RULE_SENSOR_FAULT, True, 10)]
    assert mon.in_breach == frozenset()
    out = mon.observe(reading(45, 4.0), T0 + 45 * S)
    assert summary(out) == [(RULE_SENSOR_FAULT, False, 45)]
    [excursion] = mon.excursions
    # Beyond from 0 s to the code at 10 s: the fault's time is not counted as beyond.
    assert excursion.beyond_s == 10
    assert not excursion.breached


def test_the_fault_does_not_clear_an_open_breach() -> None:
    mon = monitor(debounce_s=0)
    assert summary(mon.observe(reading(0, 7.0), T0)) == [(RULE_UPPER, True, 0)]
    assert summary(mon.observe_fault(T0 + S, "-32768")) == [(RULE_SENSOR_FAULT, True, 1)]
    assert mon.in_breach == {"upper"}
    out = mon.observe(reading(2, 3.0), T0 + 2 * S)
    assert sorted(summary(out)) == [(RULE_SENSOR_FAULT, False, 2), (RULE_UPPER, False, 2)]


def test_an_older_fault_after_a_newer_reading_is_ignored() -> None:
    mon = monitor()
    mon.observe(reading(10, 3.0), T0 + 10 * S)
    assert mon.observe_fault(T0 + 5 * S, "32767") == []
    assert mon.ignored_out_of_order == 1


# ----------------------------------------------------------------------------- the engine


def rejected(t_s: float, *, tag: str = "T1", reason: str = SENSOR_FAULT_CODE, detail: str = ""):
    return RejectedInput(
        ts_us=T0 + round(t_s * S),
        source="tt1",
        tag=tag,
        raw="32767",
        reason=reason,
        detail=detail,
        line="L1",
    )


def engine(clock: ManualClock) -> RulesEngine:
    rules = RulesSection(
        probes=(ProbeRules(device="tt1", probe="T1", upper_c=5.0, debounce_s=20, no_data_s=10),)
    )
    return RulesEngine(rules, RunIndex(), clock)


def alerts(records: list[Record]) -> list[tuple[str, str]]:
    return [(r.rule, r.state) for r in records if isinstance(r, AlertRecord)]


def test_the_engine_routes_fault_codes_to_the_probe() -> None:
    clock = ManualClock(wall_us=T0)
    rules = engine(clock)
    out = rules.evaluate(reading(0, 3.0))
    for second in range(1, FAULT_S + 1):
        clock.advance(1)
        out += rules.evaluate(rejected(second))
        out += rules.tick()
    # What RepeatedRejections stores for the streak: one summary row, same reason.
    out += rules.evaluate(rejected(FAULT_S, detail="repeated 29 more time(s) over 29.0 s"))
    assert alerts(out) == [(RULE_SENSOR_FAULT, "raised")]
    # Other reasons, and tags that are no HACCP probe, are not sensor faults.
    assert rules.evaluate(rejected(31, reason="out_of_range")) == []
    assert rules.evaluate(rejected(31, tag="T9")) == []
    clock.advance(5)
    assert alerts(rules.evaluate(reading(FAULT_S + 5, 3.1))) == [(RULE_SENSOR_FAULT, "cleared")]


def test_a_fault_held_across_a_restart_stays_one_fault() -> None:
    clock = ManualClock(wall_us=T0)
    first = engine(clock)
    stored: list[Record] = [reading(0, 3.0), rejected(1)]
    transitions: list[Record] = []
    for record in stored:
        transitions += first.evaluate(record)
    assert alerts(transitions) == [(RULE_SENSOR_FAULT, "raised")]

    clock.advance(120)  # the gateway was away two minutes; the probe's code persists
    second = engine(clock)
    second.replay(stored)
    rows = [
        (a.ts_us, a.alert_id, a.rule, a.subject, a.line, str(a.severity), a.state, a.message, "{}")
        for a in transitions
        if isinstance(a, AlertRecord)
    ]
    second.restore(rows)
    second.resume(set())
    _, monitor_ = second.probes[("tt1", "T1")]
    assert monitor_.faults == {"device_fault"}
    out = second.evaluate(rejected(121))
    clock.advance(60)
    out += second.tick()  # no "no data" on top, nor a second raise
    assert alerts(out) == []
    assert alerts(second.evaluate(reading(181, 3.0))) == [(RULE_SENSOR_FAULT, "cleared")]
