"""The scenarios' scripts: which scripted events happen when (pure; the timings are in
:mod:`adapters.simulators.scenario`'s docstring)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from adapters.simulators.line import LineSpec


class ScenarioName(StrEnum):
    """The scripted scenarios a simulator can run."""

    NORMAL = "normal"
    UNDERWEIGHT_DRIFT = "underweight_drift"
    TEMPERATURE_EXCURSION = "temperature_excursion"
    LABEL_GAP = "label_gap"
    DROPOUT = "dropout"
    DEMO = "demo"


class EventKind(StrEnum):
    """Kinds of scripted event in a :class:`Schedule`."""

    UNDERWEIGHT_DRIFT = "underweight_drift"
    """Checkweigher mean ramps to ``value`` g over ``ramp_s``, held until ``end_s``."""
    T2_BREACH = "t2_breach"
    """The first pack weighed at or after ``start_s`` weighs ``value`` g (below T2)."""
    TEMPERATURE_EXCURSION = "temperature_excursion"
    """Probe reads around ``value`` °C (above 5 °C) for ``start_s <= t < end_s``."""
    LABEL_GAP = "label_gap"
    """The labeller skips ``value`` sequence numbers at its first label after ``start_s``."""
    DROPOUT = "dropout"
    """Every simulated device is unreachable for ``start_s <= t < end_s``."""


@dataclass(frozen=True, slots=True)
class ScriptedEvent:
    """One scripted event: what happens, to which device, when, and how much.

    ``end_s`` is ``None`` for instantaneous events (T2 breach, label gap) and for events that
    persist until the run ends; :attr:`open_ended` tells them apart.
    """

    kind: EventKind
    target: str
    start_s: float
    end_s: float | None
    value: float
    ramp_s: float = 0.0
    open_ended: bool = False

    @property
    def duration_s(self) -> float | None:
        """Length of an event with an end, else ``None``."""
        return None if self.end_s is None else self.end_s - self.start_s

    def shifted(self, offset_s: float) -> ScriptedEvent:
        """The same event ``offset_s`` later (one cycle of a repeating schedule)."""
        end = None if self.end_s is None else self.end_s + offset_s
        return replace(self, start_s=self.start_s + offset_s, end_s=end)

    def covers(self, t: float) -> bool:
        """True while a duration event is in force at ``t`` (never for instantaneous ones)."""
        if self.end_s is None:
            return self.open_ended and t >= self.start_s
        return self.start_s <= t < self.end_s


@dataclass(frozen=True, slots=True)
class Schedule:
    """The script of a scenario: ``events`` of one cycle, repeated every ``cycle_s`` if set."""

    scenario: ScenarioName
    events: tuple[ScriptedEvent, ...]
    cycle_s: float | None = None

    def of_kind(self, kind: EventKind) -> tuple[ScriptedEvent, ...]:
        """The events of the first cycle with the given kind, in start order."""
        return tuple(e for e in self.events if e.kind is kind)

    def occurrences(self, until_s: float) -> list[ScriptedEvent]:
        """Every event starting at or before ``until_s``, cycles unrolled, in start order."""
        return sorted(self._starting_in(-math.inf, until_s), key=lambda e: e.start_s)

    def active(self, kind: EventKind, target: str, t: float) -> ScriptedEvent | None:
        """The ``kind`` event on ``target`` in force at ``t`` (shifted into its cycle), if any."""
        if t < 0:
            return None
        offset = 0.0
        if self.cycle_s is not None:
            offset = math.floor(t / self.cycle_s) * self.cycle_s
        for e in self.events:
            if e.kind is kind and e.target == target and e.covers(t - offset):
                return e.shifted(offset)
        return None

    def starts_in(
        self, kind: EventKind, target: str | None, lo: float, hi: float
    ) -> list[ScriptedEvent]:
        """``kind`` events (on ``target``, or any if ``None``) with ``lo < start_s <= hi``."""
        return [
            e
            for e in self._starting_in(lo, hi)
            if e.kind is kind and (target is None or e.target == target)
        ]

    def ends_in(self, kind: EventKind, lo: float, hi: float) -> list[ScriptedEvent]:
        """``kind`` events with ``lo < end_s <= hi`` (cycles unrolled)."""
        found: list[ScriptedEvent] = []
        for e in self.events:
            if e.kind is kind and e.end_s is not None:
                found.extend(o for o in self._unroll(e, lo, hi, e.end_s))
        return found

    def _starting_in(self, lo: float, hi: float) -> Iterator[ScriptedEvent]:
        for e in self.events:
            yield from self._unroll(e, lo, hi, e.start_s)

    def _unroll(
        self, e: ScriptedEvent, lo: float, hi: float, anchor: float
    ) -> Iterator[ScriptedEvent]:
        """Copies of ``e`` whose ``anchor`` time (start or end) lies in ``(lo, hi]``."""
        if self.cycle_s is None:
            if lo < anchor <= hi:
                yield e
            return
        k = 0 if lo < anchor else math.floor((lo - anchor) / self.cycle_s) + 1
        while anchor + k * self.cycle_s <= hi:
            if anchor + k * self.cycle_s > lo:  # guards float rounding in the floor above
                yield e.shifted(k * self.cycle_s)
            k += 1


_DEMO_CYCLE_S: Final = 780.0


def build_schedule(scenario: ScenarioName, line: LineSpec) -> Schedule:
    """The script of ``scenario`` for ``line`` (see the module docstring for the timings)."""
    cw = line.checkweigher(line.drift_checkweigher)
    probe = line.excursion_probe
    drift_to = round(cw.nominal_g - 0.75 * cw.tne_g, 2)
    t2_weight = round(cw.t2_g - 1.5, 1)
    k = EventKind
    events: tuple[ScriptedEvent, ...]
    cycle: float | None = None
    match scenario:
        case ScenarioName.NORMAL:
            events = ()
        case ScenarioName.UNDERWEIGHT_DRIFT:
            events = (
                ScriptedEvent(k.UNDERWEIGHT_DRIFT, cw.id, 30.0, None, drift_to, 60.0, True),
                ScriptedEvent(k.T2_BREACH, cw.id, 90.0, None, t2_weight),
                ScriptedEvent(k.T2_BREACH, cw.id, 150.0, None, t2_weight),
            )
        case ScenarioName.TEMPERATURE_EXCURSION:
            events = (
                # Shorter than a 60 s delay alarm...
                ScriptedEvent(k.TEMPERATURE_EXCURSION, probe, 60.0, 100.0, 6.5),
                # ...and longer than a 5 min one.
                ScriptedEvent(k.TEMPERATURE_EXCURSION, probe, 180.0, 570.0, 7.0),
            )
        case ScenarioName.LABEL_GAP:
            events = (ScriptedEvent(k.LABEL_GAP, cw.id, 30.0, None, 3.0),)
        case ScenarioName.DROPOUT:
            events = (ScriptedEvent(k.DROPOUT, "*", 30.0, 60.0, 0.0),)
        case ScenarioName.DEMO:
            # Short events first so a newcomer sees every kind within about five minutes.
            events = (
                ScriptedEvent(k.UNDERWEIGHT_DRIFT, cw.id, 45.0, 165.0, drift_to, 45.0),
                ScriptedEvent(k.T2_BREACH, cw.id, 120.0, None, t2_weight),
                ScriptedEvent(k.T2_BREACH, cw.id, 150.0, None, t2_weight),
                ScriptedEvent(k.TEMPERATURE_EXCURSION, probe, 180.0, 220.0, 6.5),
                ScriptedEvent(k.LABEL_GAP, cw.id, 240.0, None, 3.0),
                ScriptedEvent(k.DROPOUT, "*", 270.0, 300.0, 0.0),
                ScriptedEvent(k.TEMPERATURE_EXCURSION, probe, 330.0, 720.0, 7.0),
            )
            cycle = _DEMO_CYCLE_S
    return Schedule(scenario, events, cycle)
