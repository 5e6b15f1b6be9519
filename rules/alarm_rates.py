"""Alarm load figures in the ISA-18.2 / EEMUA 191 manner, from alert raises (docs/alarms.md §3).

One function, :func:`alarm_load`, for every place that shows them: the gateway's live status
and metrics (the last 24 hours, from memory), the run report and the warehouse (any span,
from stored alert records: ``state = 'raised'`` rows of the ``alerts`` table, see
:func:`raises_from_rows`). A line stands for one operator position.

* **alarms per 10 minutes**: RAISED transitions (an annunciated alert) counted in the 10-minute
  periods of the span, aligned to the clock (…:00, …:10, …); the average over every period
  of the span, quiet ones included, and the busiest period;
* **flood**: a period with more than 10 raised (EEMUA 191; ISA-18.2's "percentage of
  10-minute periods containing more than 10 alarms", whose target is below about 1 %);
* **stale**: alerts still active more than 24 hours after they were raised (ISA-18.2's
  stale alarm; target: fewer than 5 on any day);
* **top rules**: the most frequent rules and their share of all raises (a few bad actors
  usually make most of the load).

Pure: no I/O, no clock reads; the span's end is given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "FLOOD_ABOVE",
    "PERIOD_US",
    "STALE_AFTER_US",
    "AlarmLoad",
    "AlarmReport",
    "Raise",
    "alarm_load",
    "raises_from_rows",
]

PERIOD_US: Final = 600_000_000
"""Ten minutes: the period of ISA-18.2's and EEMUA 191's rate and flood figures."""
FLOOD_ABOVE: Final = 10
"""More than this many alarms raised in one period is a flood (EEMUA 191, ISA-18.2)."""
STALE_AFTER_US: Final = 24 * 3600 * 1_000_000
"""An alarm active longer than a day is stale (ISA-18.2)."""
TOP: Final = 10


@dataclass(frozen=True, slots=True)
class Raise:
    """One alert raised (a RAISED transition)."""

    ts_us: int
    line: str | None
    rule: str


@dataclass(frozen=True, slots=True)
class AlarmLoad:
    """The figures of one line (one operator position), or of all lines together."""

    raised: int
    periods: int
    """10-minute periods in the span (quiet ones included)."""
    per_10_min: float
    """Average raised per period."""
    peak_10_min: int
    """Raised in the busiest period."""
    flood_periods: int
    """Periods with more than :data:`FLOOD_ABOVE` raised."""
    flood_pct: float
    """``flood_periods`` as a percentage of ``periods``."""
    last_10_min: int
    """Raised in the last ten minutes of the span (a sliding window, not a clock period)."""
    stale: int
    """Alerts active at the span's end, raised more than a day before it."""
    top_rules: tuple[tuple[str, int], ...] = ()
    """The most frequent rules, most frequent first (at most ten)."""

    @property
    def top_share_pct(self) -> float:
        """The share of all raises that the rules in ``top_rules`` made."""
        return 100 * sum(n for _, n in self.top_rules) / self.raised if self.raised else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the status snapshot and reports."""
        return {
            "raised": self.raised,
            "periods": self.periods,
            "per_10_min": round(self.per_10_min, 3),
            "peak_10_min": self.peak_10_min,
            "flood_periods": self.flood_periods,
            "flood_pct": round(self.flood_pct, 2),
            "last_10_min": self.last_10_min,
            "stale": self.stale,
            "top_rules": [[rule, n] for rule, n in self.top_rules],
        }


@dataclass(frozen=True, slots=True)
class AlarmReport:
    """Figures over one span: all lines together and each line."""

    start_us: int
    end_us: int
    total: AlarmLoad
    lines: dict[str, AlarmLoad] = field(default_factory=dict)


def raises_from_rows(rows: Iterable[Sequence[Any]]) -> list[Raise]:
    """:class:`Raise` es from stored alert rows ``(ts_us, line, rule, state)``; rows of
    other states (updated, cleared, ...) are skipped."""
    return [
        Raise(int(ts_us), line, str(rule)) for ts_us, line, rule, state in rows if state == "raised"
    ]


def _load(
    raises: Sequence[Raise],
    *,
    active_raised_us: Sequence[int],
    start_us: int,
    end_us: int,
    flood_above: int,
    stale_after_us: int,
) -> AlarmLoad:
    first, last = start_us // PERIOD_US, -(-end_us // PERIOD_US)
    periods = max(1, last - first)
    per_period = Counter(r.ts_us // PERIOD_US for r in raises)
    floods = sum(1 for n in per_period.values() if n > flood_above)
    rules = Counter(r.rule for r in raises)
    return AlarmLoad(
        raised=len(raises),
        periods=periods,
        per_10_min=len(raises) / periods,
        peak_10_min=max(per_period.values(), default=0),
        flood_periods=floods,
        flood_pct=100 * floods / periods,
        last_10_min=sum(1 for r in raises if r.ts_us > end_us - PERIOD_US),
        stale=sum(1 for raised in active_raised_us if end_us - raised > stale_after_us),
        top_rules=tuple(sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]),
    )


def alarm_load(
    raises: Iterable[Raise],
    *,
    start_us: int,
    end_us: int,
    active: Iterable[tuple[int, str | None]] = (),
    lines: Iterable[str] = (),
    flood_above: int = FLOOD_ABOVE,
    stale_after_us: int = STALE_AFTER_US,
) -> AlarmReport:
    """The alarm load of the span ``[start_us, end_us)``.

    Args:
        raises: alerts raised (any order; those outside the span are left out).
        active: ``(raised_us, line)`` of the alerts active at ``end_us``, for the stale count.
        lines: lines to report even when they raised nothing; the lines of the raises and of
            the active alerts are added.

    Raises:
        ValueError: an empty or reversed span.
    """
    if end_us <= start_us:
        raise ValueError(f"the span must end after it starts ({start_us} .. {end_us})")
    inside = [r for r in raises if start_us <= r.ts_us < end_us]
    standing = list(active)
    names = sorted(
        {*lines, *(r.line for r in inside if r.line), *(line for _, line in standing if line)}
    )
    span = {
        "start_us": start_us,
        "end_us": end_us,
        "flood_above": flood_above,
        "stale_after_us": stale_after_us,
    }
    return AlarmReport(
        start_us=start_us,
        end_us=end_us,
        total=_load(inside, active_raised_us=[t for t, _ in standing], **span),
        lines={
            line: _load(
                [r for r in inside if r.line == line],
                active_raised_us=[t for t, where in standing if where == line],
                **span,
            )
            for line in names
        },
    )
