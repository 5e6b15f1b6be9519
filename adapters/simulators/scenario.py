"""Seedable, scripted scenario engine for the device simulators (pure: no I/O, no clock reads).

Time is *simulated* seconds since the scenario started, passed in by the caller; the
simulators turn wall time into simulated time with :func:`sim_time` (``speed`` 10 runs ten
times faster). Everything an engine produces depends only on ``seed``, the scenario, the
:class:`LineSpec` and ``t``; random draws are keyed by (seed, device, sample index), so
advancing in many small steps or one large step yields exactly the same events.

What the line does
------------------
* Checkweighers (default ``CW1`` Qn 240 g and ``CW2`` Qn 400 g) weigh one pack each
  ``1 / pack_rate_hz`` seconds, staggered so packs of different checkweighers never coincide.
  Net weights are normal around a target a little above Qn; a pack is *accepted* when its net
  weight is at least T1 (the reject setpoint) and only accepted packs reach the labeller, so
  rejected packs carry no label sequence number and produce no scanner read.
* Each checkweigher's labeller numbers labels 1, 2, 3, ... (GS1 AI 21). The label is a GS1
  element string ``]C1`` (01) GTIN-14 (13) pack date (17) use-by = pack date + 9 days
  (3103) declared net weight (the nominal quantity) in kg, 3 decimals (10) batch <GS>
  (21) label sequence.
* Probes are sampled every ``probe_period_s`` seconds: product-core ~2.5 °C, chill room
  ~1 °C, a blast freezer around -21 °C, and so on; all chilled
  probes rest well below 5 °C (see :data:`DEFAULT_PROBES`).

Scripts (``t`` in simulated seconds; TNE from docs/reference/domain-rules.md §1.3: Qn 240 g lies in
the 200-300 g band, TNE 9 g, so T1 = 231 g and T2 = 222 g)
-----------------------------------------------------------------------------------------
``normal``                 nothing scripted.
``underweight_drift``      from 30 s the CW1 mean ramps (over 60 s) from 243 g to
                           Qn - 0.75 TNE = 233.25 g (below Qn; about 7 % of packs below T1) and
                           stays there; single packs at T2 - 1.5 g (220.5 g) at 90 s and 150 s.
``temperature_excursion``  P1 (product core) above 5 °C (plateau 6.5 °C) for 40 s from 60 s,
                           then (plateau 7.0 °C) for 390 s = 6.5 min from 180 s.
``label_gap``              at 30 s CW1's labeller skips exactly 3 sequence numbers, once.
``dropout``                all devices go away from 30 s to 60 s (the simulators stop or go
                           silent), then come back; the line itself keeps packing meanwhile.
``demo``                   a 780 s cycle, repeated: drift 45-165 s (T2 packs at 120 s, 150 s),
                           short excursion 180-220 s, label gap at 240 s, dropout 270-300 s,
                           long excursion 330-720 s, normal until 780 s.

:attr:`ScenarioEngine.schedule` exposes the script so tests can assert on it.
The line's devices are :mod:`adapters.simulators.line`; the scripts are built by
:mod:`adapters.simulators.script`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Final

from adapters.simulators.line import (
    DEFAULT_CHECKWEIGHERS,
    DEFAULT_PROBES,
    CheckweigherSpec,
    LineSpec,
    ProbeSpec,
)
from adapters.simulators.script import (
    EventKind,
    ScenarioName,
    Schedule,
    ScriptedEvent,
    build_schedule,
)
from gateway.core.codecs.gs1 import encode_element_string

__all__ = [
    "DEFAULT_CHECKWEIGHERS",
    "DEFAULT_PROBES",
    "CheckweigherSpec",
    "DropoutChanged",
    "EventKind",
    "LineSpec",
    "PackEvent",
    "ProbeSample",
    "ProbeSpec",
    "ScenarioEngine",
    "ScenarioName",
    "Schedule",
    "ScriptedEvent",
    "SimEvent",
    "build_schedule",
    "sim_time",
    "wall_delay",
]


@dataclass(frozen=True, slots=True)
class PackEvent:
    """One pack over a checkweigher (weights in grams, rounded to the 0.1 g scale interval)."""

    t: float
    checkweigher_id: str
    pack_counter: int
    nominal_g: float
    net_g: float
    tare_g: float
    gross_g: float
    accepted: bool
    label_seq: int | None
    """Label sequence number; ``None`` for rejected packs, which are never labelled."""
    label: str | None
    """The GS1 element string the downstream scanner reads (``None`` if rejected)."""


@dataclass(frozen=True, slots=True)
class ProbeSample:
    """A temperature reading (°C, 0.1 °C resolution)."""

    t: float
    probe_id: str
    celsius: float


@dataclass(frozen=True, slots=True)
class DropoutChanged:
    """Devices go away (``active``) or come back."""

    t: float
    active: bool


SimEvent = PackEvent | ProbeSample | DropoutChanged

# Sort rank at equal times: a dropout edge applies before the data produced at that instant.
_RANK: Final[dict[type, int]] = {DropoutChanged: 0, ProbeSample: 1, PackEvent: 2}


def sim_time(elapsed_wall_s: float, speed: float) -> float:
    """Simulated seconds after ``elapsed_wall_s`` real seconds at ``speed``."""
    return elapsed_wall_s * speed


def wall_delay(sim_delta_s: float, speed: float) -> float:
    """Real seconds until ``sim_delta_s`` simulated seconds have passed at ``speed``."""
    return max(0.0, sim_delta_s / speed)


def _yymmdd(d: date) -> str:
    return d.strftime("%y%m%d")


@dataclass(slots=True)
class _CheckweigherState:
    next_counter: int = 1
    next_label_seq: int = 1
    pending_gap: int = 0


@dataclass(slots=True)
class _Cursor:
    now_s: float | None = None
    checkweighers: dict[str, _CheckweigherState] = field(default_factory=dict)


class ScenarioEngine:
    """Deterministic producer of simulated device events.

    Args:
        seed: random seed; the same seed, scenario, line and times give the same events.
        scenario: which script to run.
        pack_rate_hz: packs per second per checkweigher.
        line: the simulated devices and run data (default :class:`LineSpec`).
        probe_period_s: seconds between probe samples.

    Call :meth:`advance` with non-decreasing simulated times; it returns the events that
    happened since the previous call.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        scenario: ScenarioName = ScenarioName.NORMAL,
        pack_rate_hz: float = 1.0,
        line: LineSpec | None = None,
        probe_period_s: float = 1.0,
    ) -> None:
        if not pack_rate_hz > 0 or not math.isfinite(pack_rate_hz):
            raise ValueError(f"pack_rate_hz must be a positive number, got {pack_rate_hz!r}")
        if not probe_period_s > 0 or not math.isfinite(probe_period_s):
            raise ValueError(f"probe_period_s must be a positive number, got {probe_period_s!r}")
        self._seed = seed
        self._scenario = ScenarioName(scenario)
        self._rate = pack_rate_hz
        self._line = line if line is not None else LineSpec()
        self._probe_period = probe_period_s
        self._schedule = build_schedule(self._scenario, self._line)
        self._cursor = _Cursor(
            checkweighers={
                cw.id: _CheckweigherState(next_label_seq=self._line.first_label_seq)
                for cw in self._line.checkweighers
            }
        )

    @property
    def seed(self) -> int:
        """The random seed."""
        return self._seed

    @property
    def scenario(self) -> ScenarioName:
        """The scenario being run."""
        return self._scenario

    @property
    def line(self) -> LineSpec:
        """The simulated line."""
        return self._line

    @property
    def schedule(self) -> Schedule:
        """The scripted events of the scenario and when they happen."""
        return self._schedule

    @property
    def now_s(self) -> float | None:
        """Simulated time reached by the last :meth:`advance` (``None`` before the first)."""
        return self._cursor.now_s

    def pack_time(self, cw_id: str, counter: int) -> float:
        """Simulated time at which pack number ``counter`` (1-based) crosses ``cw_id``."""
        ids = [cw.id for cw in self._line.checkweighers]
        phase = (ids.index(cw_id) + 1) / (len(ids) + 1)
        return (counter - 1 + phase) / self._rate

    def dropout_active(self, t: float) -> bool:
        """True while the devices are scripted to be unreachable at ``t``."""
        return self._schedule.active(EventKind.DROPOUT, "*", t) is not None

    def probe_value(self, probe_id: str, t: float) -> float:
        """Temperature of ``probe_id`` at ``t`` (°C); a pure function of seed, probe and t."""
        spec = self._line.probe(probe_id)
        index = math.floor(t / self._probe_period + 1e-9)
        rng = self._rng("probe", probe_id, index)
        level = spec.baseline_c
        excursion = self._schedule.active(EventKind.TEMPERATURE_EXCURSION, probe_id, t)
        if excursion is not None:
            level = excursion.value
        # Clipped at 3 sigma so a plateau at 6.5 °C never dips to 5 °C and a 2.5 °C
        # baseline never touches it: the scripted times are exactly the times above 5 °C.
        noise = max(-3 * spec.noise_c, min(3 * spec.noise_c, rng.gauss(0.0, spec.noise_c)))
        return round(level + noise, 1)

    def next_event_time(self) -> float:
        """The earliest simulated time after :attr:`now_s` at which an event happens."""
        now = self._cursor.now_s
        if now is None:
            return 0.0
        candidates = [
            self.pack_time(cw_id, st.next_counter)
            for cw_id, st in self._cursor.checkweighers.items()
        ]
        if self._line.probes:
            next_index = math.floor(now / self._probe_period + 1e-9) + 1
            candidates.append(next_index * self._probe_period)
        horizon = now + (self._schedule.cycle_s or 1e9)
        candidates.extend(edge.t for edge in self._dropout_edges(now, horizon))
        return min(candidates, default=math.inf)

    def advance(self, t: float) -> list[SimEvent]:
        """Move to simulated time ``t`` and return the events in ``(previous t, t]``, in order.

        The first call also returns the probe samples taken at ``t = 0``.

        Raises:
            ValueError: ``t`` is before the time already reached, or not finite.
        """
        if not math.isfinite(t):
            raise ValueError(f"simulated time must be finite, got {t!r}")
        prev = self._cursor.now_s
        if prev is not None and t < prev:
            raise ValueError(f"simulated time must not go backwards ({t} < {prev})")
        lo = -math.inf if prev is None else prev
        events: list[SimEvent] = list(self._dropout_edges(lo, t))
        events.extend(self._probe_samples(prev, t))
        for cw in self._line.checkweighers:
            events.extend(self._packs(cw, t))
        self._cursor.now_s = t
        events.sort(key=_event_sort_key)
        return events

    def _dropout_edges(self, lo: float, hi: float) -> list[DropoutChanged]:
        """Dropout starts and ends in ``(lo, hi]``."""
        edges = [
            DropoutChanged(e.start_s, active=True)
            for e in self._schedule.starts_in(EventKind.DROPOUT, None, lo, hi)
        ]
        edges.extend(
            DropoutChanged(e.end_s, active=False)
            for e in self._schedule.ends_in(EventKind.DROPOUT, lo, hi)
            if e.end_s is not None
        )
        return edges

    def _rng(self, *key: object) -> random.Random:
        # String seeds are hashed with SHA-512 (random.seed version 2), so the stream does not
        # depend on PYTHONHASHSEED or on how time was sliced into advance() calls.
        return random.Random("/".join(str(k) for k in (self._seed, *key)))  # noqa: S311 - simulation, not security

    def _probe_samples(self, prev: float | None, t: float) -> Iterator[ProbeSample]:
        first = 0 if prev is None else math.floor(prev / self._probe_period + 1e-9) + 1
        last = math.floor(t / self._probe_period + 1e-9)
        for index in range(first, last + 1):
            ts = index * self._probe_period
            for probe in self._line.probes:
                yield ProbeSample(ts, probe.id, self.probe_value(probe.id, ts))

    def _packs(self, cw: CheckweigherSpec, t: float) -> Iterator[PackEvent]:
        state = self._cursor.checkweighers[cw.id]
        while (tp := self.pack_time(cw.id, state.next_counter)) <= t:
            yield self._weigh(cw, state, tp)
            state.next_counter += 1

    def _weigh(self, cw: CheckweigherSpec, state: _CheckweigherState, tp: float) -> PackEvent:
        counter = state.next_counter
        # Computed like tp (not tp - period) so consecutive windows tile without float gaps.
        t_prev = self.pack_time(cw.id, counter - 1)
        rng = self._rng("pack", cw.id, counter)
        mean = cw.target_g
        drift = self._schedule.active(EventKind.UNDERWEIGHT_DRIFT, cw.id, tp)
        if drift is not None:
            frac = 1.0 if drift.ramp_s <= 0 else min(1.0, (tp - drift.start_s) / drift.ramp_s)
            mean = cw.target_g + (drift.value - cw.target_g) * frac
        net = rng.gauss(mean, cw.sd_g)
        breaches = self._schedule.starts_in(EventKind.T2_BREACH, cw.id, t_prev, tp)
        if breaches:
            net = breaches[0].value
        net = round(max(net, 0.0), 1)
        tare = round(max(rng.gauss(cw.tare_g, cw.tare_sd_g), 0.0), 1)
        gross = round(net + tare, 1)
        for gap in self._schedule.starts_in(EventKind.LABEL_GAP, cw.id, t_prev, tp):
            state.pending_gap += int(gap.value)
        accepted = net >= cw.t1_g
        label_seq: int | None = None
        label: str | None = None
        if accepted:
            state.next_label_seq += state.pending_gap
            state.pending_gap = 0
            label_seq = state.next_label_seq
            state.next_label_seq += 1
            label = self._label(cw, net, label_seq)
        return PackEvent(
            t=tp,
            checkweigher_id=cw.id,
            pack_counter=counter,
            nominal_g=cw.nominal_g,
            net_g=net,
            tare_g=tare,
            gross_g=gross,
            accepted=accepted,
            label_seq=label_seq,
            label=label,
        )

    def _label(self, cw: CheckweigherSpec, net_g: float, label_seq: int) -> str:
        # A fixed-weight ℮ pack declares its nominal quantity, not what it weighed: the
        # average system judges the difference (docs/reference/domain-rules.md §1). Rounded down,
        # since declaring more than is in the pack is the offence, not declaring less.
        del net_g
        grams = int(Decimal(str(cw.nominal_g)).to_integral_value(rounding=ROUND_DOWN))
        pack_date = self._line.pack_date
        use_by = pack_date + timedelta(days=self._line.use_by_days)
        return encode_element_string(
            [
                ("01", cw.gtin),
                ("13", _yymmdd(pack_date)),
                ("17", _yymmdd(use_by)),
                ("3103", f"{grams:06d}"),  # kg with 3 implied decimals = grams
                ("10", self._line.batch_code),
                ("21", str(label_seq)),
            ]
        )


def _event_sort_key(e: SimEvent) -> tuple[float, int, str]:
    ident = ""
    if isinstance(e, PackEvent):
        ident = e.checkweigher_id
    elif isinstance(e, ProbeSample):
        ident = e.probe_id
    return (e.t, _RANK[type(e)], ident)
