"""HACCP temperature monitoring: critical limits per probe, debounced, with hysteresis.

One :class:`ProbeMonitor` watches one probe (``device``/``probe``). It is fed the probe's
readings (:meth:`ProbeMonitor.observe`) and the passing of time (:meth:`ProbeMonitor.tick`);
it returns :class:`~rules.model.Finding` transitions and never reads a clock.

Where the numbers come from (docs/reference/domain-rules.md §3):

* HACCP law asks for critical limits, monitoring, corrective action and records, not for a
  particular number (Reg (EC) 852/2004 Art 5(2)(c)-(g)). The legal temperatures for fish are
  "approaching that of melting ice" for fresh fish (no number in law) and -18 °C or colder in
  all parts for frozen fish (Reg (EC) 853/2004 Annex III Sec VIII Ch VII §2); the numbers
  a line actually alarms on (e.g. product core <= 5 °C) are the company's critical limits,
  so they are configuration (:class:`ProbeLimits`), with the presets below as examples.
* Instant vs duration breaches: air temperature swings with defrost and door openings, so a
  breach is a value beyond the limit *continuously* for ``debounce_s`` (an ISA-18.2 style
  on-delay; ``debounce_s=0`` gives an instant breach); 853/2004 itself tolerates short
  upward fluctuations of not more than 3 °C for frozen fish in transport
  (Annex III Sec VIII Ch VIII §1(b)). Shorter excursions raise nothing but are kept in the
  excursion log, and every second beyond the limit is counted (cumulative exposure, the FDA
  Seafood Hazards Guide Appendix 4 way of judging time/temperature abuse).
* A breach clears only when the value is back inside by the hysteresis (deadband, default
  0.5 °C: docs/reference/domain-rules.md §3.2 (d)), so a probe hovering at the limit does not
  chatter.
* A sensor fault (no data, value outside the sensor's physical range, value stuck) is its own
  alarm (docs/reference/domain-rules.md §3.2 (e)); a faulty reading never counts as in-limit, so it
  can never clear a breach.
* A device fault code (the transmitter's documented "no measurement" value, e.g. raw 32767,
  :meth:`ProbeMonitor.observe_fault`) is a sensor fault too, raised once and held until the
  next valid reading. While it lasts the probe has no value: the last one is not held through
  it (no breach is raised on it, and its time does not count as beyond the limit), and the
  silence of a probe that keeps sending its code is not "no data".

Time model: each reading's own ``ts_us`` places it on the probe's timeline; the ``ts_us``
argument of ``observe``/``tick`` is "now" and stamps the findings. Between two readings the
earlier value is held (sample-and-hold), for at most ``no_data_s``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from decimal import Decimal
from typing import Final

from gateway.core.records import TemperatureReading
from rules.haccp_limits import (
    CHILLED_PRODUCT_CCP,
    FROZEN_PRODUCT_CCP,
    RULE_LOWER,
    RULE_SENSOR_FAULT,
    RULE_UPPER,
    US_PER_S,
    Excursion,
    Fault,
    ProbeLimits,
    Side,
)
from rules.haccp_side import LimitSide, unobserved_note
from rules.model import Finding, Severity

__all__ = [
    "CHILLED_PRODUCT_CCP",
    "FROZEN_PRODUCT_CCP",
    "RULE_LOWER",
    "RULE_SENSOR_FAULT",
    "RULE_UPPER",
    "Excursion",
    "Fault",
    "ProbeLimits",
    "ProbeMonitor",
    "Side",
]

DEADBAND_C: Final = 0.5
"""An open breach is published again when the probe's value has moved this far from the one
last published (docs/alarms.md §2): the default hysteresis, a move the rule treats as real."""


def _us(seconds: float) -> int:
    return round(seconds * US_PER_S)


def _celsius(value: float) -> Decimal:
    # repr() is the shortest text that round-trips: 5.1 -> Decimal("5.1"), not 5.0999...
    return Decimal(repr(float(value)))


class ProbeMonitor:
    """The HACCP state of one probe: breaches of its limits and sensor faults.

    Findings (subject ``f"{device}/{probe}"``):

    * ``haccp_upper`` / ``haccp_lower`` (CRITICAL): raised once when a value has been beyond
      the limit for ``debounce_s``; cleared (``active=False``) by a trusted reading back
      inside by the hysteresis. The clear finding's detail carries the time beyond the limit
      during the breach (``breach_s``) and in total (``total_beyond_s``).
    * ``haccp_sensor_fault`` (MAJOR): raised when the set of faults (``no_data``,
      ``out_of_range``, ``stuck``, ``device_fault``) becomes non-empty, re-sent (an update)
      when it changes, cleared when it is empty again.
    """

    def __init__(
        self,
        device: str,
        probe: str,
        limits: ProbeLimits,
        *,
        line: str | None = None,
        started_us: int | None = None,
        excursion_log_size: int = 256,
    ) -> None:
        """Watch ``device``/``probe`` against ``limits``.

        Args:
            device: the probe's device id.
            probe: the probe's id on the device.
            limits: critical limits and fault thresholds.
            line: the line for findings until the first reading names one.
            started_us: when monitoring began: the no-data clock starts here (otherwise at
                the first ``tick``), so a probe that never reports is still a fault.
            excursion_log_size: how many excursions the log keeps (oldest dropped).
        """
        self.device = device
        self.probe = probe
        self.limits = limits
        self.subject = f"{device}/{probe}"
        self._line = line
        self._sides: list[LimitSide] = []
        if limits.upper_c is not None:
            self._sides.append(LimitSide("upper", limits.upper_c))
        if limits.lower_c is not None:
            self._sides.append(LimitSide("lower", limits.lower_c))
        self._debounce_us = _us(limits.debounce_s)
        self._no_data_us = _us(limits.no_data_s)
        self._stuck_us = None if limits.stuck_s is None else _us(limits.stuck_s)
        self._last_seen_us = started_us
        self._last_reading: TemperatureReading | None = None
        self._last_valid: tuple[int, Decimal] | None = None
        self._last_raw: Decimal | None = None
        self._same_since_us = 0
        self._no_data = False
        self._out_of_range = False
        self._stuck = False
        self._faults: frozenset[Fault] = frozenset()
        self._fault_code: str | None = None
        """The device's fault code while it sends one, until the next valid reading."""
        self._last_fault_us: int | None = None
        self._hold_ends_us: int | None = None
        """When a fault code cut the hold of the last trusted value short."""
        self._excursions: deque[Excursion] = deque(maxlen=excursion_log_size)
        self.ignored_out_of_order = 0
        """Readings older than the newest one seen, ignored."""

    # ---------------------------------------------------------------------------- queries

    @property
    def breached(self) -> bool:
        """Whether a breach is open on either side (asked of every reading: no set built)."""
        for side in self._sides:  # noqa: SIM110 (a loop: no generator made per reading)
            if side.active:
                return True
        return False

    @property
    def in_breach(self) -> frozenset[Side]:
        """The sides with an open (raised, not cleared) breach."""
        return frozenset(s.side for s in self._sides if s.active)

    @property
    def faults(self) -> frozenset[Fault]:
        """The current sensor faults."""
        return self._faults

    @property
    def excursions(self) -> tuple[Excursion, ...]:
        """Finished excursions, short ones and cleared breaches, oldest first."""
        return tuple(self._excursions)

    @property
    def time_above_s(self) -> float:
        """Total time above the upper limit so far (every excursion, up to the last reading)."""
        return self._total("upper")

    @property
    def time_below_s(self) -> float:
        """Total time below the lower limit so far (every excursion, up to the last reading)."""
        return self._total("lower")

    @property
    def last_valid(self) -> tuple[int, Decimal] | None:
        """The newest trusted reading as ``(ts_us, °C)``, or ``None`` before the first."""
        return self._last_valid

    @property
    def line(self) -> str | None:
        """The line of the newest reading (``None`` before the first)."""
        return self._line

    def _total(self, side: Side) -> float:
        return next((s.total_us / US_PER_S for s in self._sides if s.side == side), 0.0)

    def shift_time(self, delta_us: int) -> None:
        """The wall clock was stepped by ``delta_us``: move every remembered time with it.

        Silence, stuck-value and debounce durations then run on as if there had been no step
        (a step forward is not hours of silence), and after a step backward new readings are
        not taken for old ones and ignored. Finished excursions keep the times they had.
        """
        if self._last_seen_us is not None:
            self._last_seen_us += delta_us
        if self._last_fault_us is not None:
            self._last_fault_us += delta_us
        if self._hold_ends_us is not None:
            self._hold_ends_us += delta_us
        self._same_since_us += delta_us
        if self._last_reading is not None:
            self._last_reading = replace(
                self._last_reading, ts_us=self._last_reading.ts_us + delta_us
            )
        if self._last_valid is not None:
            self._last_valid = (self._last_valid[0] + delta_us, self._last_valid[1])
        for side in self._sides:
            if side.start_us is not None:
                side.start_us += delta_us
            if side.raised_us is not None:
                side.raised_us += delta_us

    def resume(self, ts_us: int) -> None:
        """The gateway starts again at ``ts_us``, its state rebuilt from the stored readings.

        The probe's silence counts from now: the gateway, not the probe, was away, so the
        downtime raises no "no data" fault (a probe that stays silent for ``no_data_s`` from
        now still does). An excursion open at the stop continues with its first reading's
        start, and its findings say how long of it nobody saw (``unobserved_s``): its
        duration spans the restart, and nothing is claimed about the gap.
        """
        if self._last_seen_us is None or self._last_seen_us < ts_us:
            self._last_seen_us = ts_us
        last = self._last_reading.ts_us if self._last_reading is not None else None
        for side in self._sides:
            if side.start_us is not None and last is not None and ts_us > last:
                side.unobserved_us += ts_us - last

    # ---------------------------------------------------------------------------- inputs

    def observe(self, reading: TemperatureReading, ts_us: int) -> list[Finding]:
        """Take one reading of this probe; ``ts_us`` is now (it stamps the findings).

        Readings older than the newest seen are ignored (counted in
        ``ignored_out_of_order``): the timeline of a probe only moves forward.
        """
        if self._older_than_seen(reading.ts_us):
            self.ignored_out_of_order += 1
            return self._evaluate(ts_us)
        t = reading.ts_us
        value = _celsius(reading.celsius)
        self._last_reading = reading
        self._line = reading.line
        self._last_seen_us = t
        self._no_data = False
        self._fault_code = None  # the device measures again
        limits = self.limits
        self._out_of_range = not limits.physical_min_c <= value <= limits.physical_max_c
        if value != self._last_raw:
            self._last_raw = value
            self._same_since_us = t
        self._stuck = self._stuck_us is not None and t - self._same_since_us >= self._stuck_us
        findings: list[Finding] = []
        if not (self._out_of_range or self._stuck):
            findings.extend(self._take_trusted(t, value, ts_us))
        findings.extend(self._evaluate(ts_us))
        return findings

    def observe_fault(self, ts_us: int, code: str, *, line: str | None = None) -> list[Finding]:
        """The device sent fault code ``code`` instead of a reading at ``ts_us`` (also now).

        One ``device_fault`` sensor fault is raised for a run of codes, however long, and
        cleared by the next valid reading. Until then no breach is raised on the last value
        and no "no data" fault: the device is answering, with "no measurement".
        """
        if self._older_than_seen(ts_us):
            self.ignored_out_of_order += 1
            return self._evaluate(ts_us)
        if line is not None:
            self._line = line
        if self._fault_code is None and self._hold_ends_us is None:
            self._hold_ends_us = ts_us
        self._fault_code = code
        self._last_fault_us = ts_us
        self._last_seen_us = ts_us
        self._no_data = False
        # The faults of the last reading are history now: the device says what it has.
        self._out_of_range = self._stuck = False
        self._last_raw = None
        return self._evaluate(ts_us)

    def tick(self, ts_us: int) -> list[Finding]:
        """Let time pass to ``ts_us`` with no reading: no-data faults, debounces elapsing."""
        return self._evaluate(ts_us)

    def _older_than_seen(self, ts_us: int) -> bool:
        newest = max(
            self._last_reading.ts_us if self._last_reading is not None else ts_us,
            self._last_fault_us if self._last_fault_us is not None else ts_us,
        )
        return ts_us < newest

    def live(self, ts_us: int) -> list[Finding]:
        """Each open breach again, with the value it is at now and its peak (``observe`` and
        ``tick`` report transitions only). The gateway folds these into the open alert, so
        it shows the live value; the alert book publishes only the moves that matter
        (``value`` with a deadband of :data:`DEADBAND_C`, docs/alarms.md §2)."""
        return [
            self._breach(side, side.start_us if side.start_us is not None else ts_us, ts_us)
            for side in self._sides
            if side.active
        ]

    # ---------------------------------------------------------------------------- logic

    def _take_trusted(self, t: int, value: Decimal, now: int) -> list[Finding]:
        findings: list[Finding] = []
        previous = self._last_valid
        hysteresis = self.limits.hysteresis_c
        # The previous trusted value is held until this reading, for at most no_data_s, and
        # never past a fault code: the device said then that it had no value.
        held_until = t if self._hold_ends_us is None else min(t, self._hold_ends_us)
        self._hold_ends_us = None
        for side in self._sides:
            if previous is not None and side.beyond(previous[1]):
                held = max(0, min(held_until - previous[0], self._no_data_us))
                side.total_us += held
                if side.start_us is not None:
                    side.beyond_us += held
            if side.beyond(value):
                if side.start_us is None:
                    side.start(t, value)
                else:
                    side.note(value)
            elif side.active:
                if side.back_inside(value, hysteresis):
                    findings.append(self._clear(side, t, value, now))
                # else: inside the limit but within the hysteresis band; the breach stays open
            elif side.start_us is not None:
                self._excursions.append(side.end(t))
        self._last_valid = (t, value)
        return findings

    def _evaluate(self, now: int) -> list[Finding]:
        findings: list[Finding] = []
        in_fault = self._fault_code is not None
        if self._last_seen_us is None:
            self._last_seen_us = now
        elif not in_fault and now - self._last_seen_us >= self._no_data_us:
            # A probe held in a fault code is already a sensor fault; a code sent once and
            # then silence (a repeat collapsed upstream, a link lost) is that same fault.
            self._no_data = True
        # The held value is trusted for no_data_s after the last trusted reading, and not
        # at all while the device reports a fault code.
        fresh = (
            not in_fault
            and self._last_valid is not None
            and now - self._last_valid[0] < self._no_data_us
        )
        if fresh:
            for side in self._sides:
                if (
                    side.start_us is not None
                    and not side.active
                    and now - side.start_us >= self._debounce_us
                ):
                    findings.append(self._raise(side, side.start_us, now))
        if self._no_data or self._out_of_range or self._stuck or in_fault or self._faults:
            # (Otherwise no fault now and none before: nothing to compare, every reading.)
            flags: tuple[tuple[Fault, bool], ...] = (
                ("no_data", self._no_data),
                ("out_of_range", self._out_of_range),
                ("stuck", self._stuck),
                ("device_fault", in_fault),
            )
            faults = frozenset(fault for fault, on in flags if on)
            if faults != self._faults:
                previous, self._faults = self._faults, faults
                findings.append(self._fault_finding(faults, previous, now))
        return findings

    def _raise(self, side: LimitSide, start_us: int, now: int) -> Finding:
        side.active = True
        side.raised_us = now
        return self._breach(side, start_us, now)

    def _breach(self, side: LimitSide, start_us: int, now: int) -> Finding:
        value = self._last_valid[1] if self._last_valid is not None else side.peak
        word = "above" if side.side == "upper" else "below"
        return Finding(
            rule=side.rule,
            subject=self.subject,
            active=True,
            severity=Severity.CRITICAL,
            message=(
                f"{self.subject} {word} its critical limit {side.limit} °C for "
                f"{self.limits.debounce_s:g} s or more (now {value} °C, peak {side.peak} °C)"
                f"{unobserved_note(side.unobserved_us)}"
            ),
            ts_us=now,
            line=self._line,
            detail={
                **self._context(),
                "side": side.side,
                "limit_c": float(side.limit),
                "value_c": float(value),
                "peak_c": float(side.peak),
                "excursion_start_us": start_us,
                "debounce_s": self.limits.debounce_s,
                "beyond_s": side.beyond_us / US_PER_S,
                "unobserved_s": side.unobserved_us / US_PER_S,
            },
            value=float(value),
            deadband=DEADBAND_C,
        )

    def _clear(self, side: LimitSide, t: int, value: Decimal, now: int) -> Finding:
        hysteresis = self.limits.hysteresis_c
        raised_us = side.raised_us
        unobserved_us = side.unobserved_us
        excursion = side.end(t)
        self._excursions.append(excursion)
        word = "above" if side.side == "upper" else "below"
        return Finding(
            rule=side.rule,
            subject=self.subject,
            active=False,
            severity=Severity.CRITICAL,
            message=(
                f"{self.subject} back to {value} °C (limit {side.limit} °C, cleared at "
                f"{side.clear_at(hysteresis)} °C); {excursion.beyond_s:g} s {word} the limit"
                f"{unobserved_note(unobserved_us)}"
            ),
            ts_us=now,
            line=self._line,
            detail={
                **self._context(),
                "side": side.side,
                "limit_c": float(side.limit),
                "clear_at_c": float(side.clear_at(hysteresis)),
                "value_c": float(value),
                "peak_c": float(excursion.peak_c),
                "excursion_start_us": excursion.start_us,
                "raised_us": raised_us,
                "cleared_reading_us": t,
                "breach_s": excursion.beyond_s,
                "duration_s": (t - excursion.start_us) / US_PER_S,
                "total_beyond_s": side.total_us / US_PER_S,
                "unobserved_s": unobserved_us / US_PER_S,
            },
        )

    def _fault_finding(
        self, faults: frozenset[Fault], previous: frozenset[Fault], now: int
    ) -> Finding:
        reading = self._last_reading
        detail: dict[str, object] = {
            **self._context(),
            "faults": sorted(faults),
            "previous_faults": sorted(previous),
            "last_reading_us": reading.ts_us if reading is not None else None,
            "value_c": float(_celsius(reading.celsius)) if reading is not None else None,
            "no_data_s": self.limits.no_data_s,
            "physical_min_c": float(self.limits.physical_min_c),
            "physical_max_c": float(self.limits.physical_max_c),
            "stuck_s": self.limits.stuck_s,
            "fault_code": self._fault_code,
        }
        if faults:
            low, high = self.limits.physical_min_c, self.limits.physical_max_c
            reasons = {
                "no_data": f"no reading for {self.limits.no_data_s:g} s",
                "out_of_range": f"reading outside {low}..{high} °C",
                "stuck": f"value unchanged for {self.limits.stuck_s or 0:g} s",
                "device_fault": f"the device reports its fault code {self._fault_code}",
            }
            message = f"{self.subject} sensor fault: " + "; ".join(
                reasons[f] for f in sorted(faults)
            )
        else:
            message = f"{self.subject} sensor readings trusted again"
        return Finding(
            rule=RULE_SENSOR_FAULT,
            subject=self.subject,
            active=bool(faults),
            severity=Severity.MAJOR,
            message=message,
            ts_us=now,
            line=self._line,
            detail=detail,
        )

    def _context(self) -> dict[str, object]:
        reading = self._last_reading
        return {
            "device": self.device,
            "probe": self.probe,
            "location": reading.location if reading is not None else "",
            "run_number": reading.run_number if reading is not None else None,
        }
