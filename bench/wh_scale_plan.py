"""The shape of the warehouse the scale benchmark loads (docs/benchmarks.md, "Warehouse at
10 million packs"): sites, gateways, lines, runs and how the packs spread over them.

Pure arithmetic, no database: the loader (:mod:`bench.wh_scale_load`) writes what this
module plans, and the measurement (:mod:`bench.wh_scale_measure`) picks its samples from it.

2 sites × 2 gateways × 2 lines, ``runs_per_day`` runs per line per day (shifts of
24 h / runs_per_day; a run packs for all but the last 30 minutes of its shift), over ``days``
days from a fixed start (so several monthly partitions, and nothing depends on today).
Every run packs two products (the first half of its packs the first PLU). Both lines of a
gateway use the same batch code in the same shift: a trace by batch code finds two runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

START = datetime(2026, 4, 1, tzinfo=UTC)
"""Fixed: the benchmark's data never depends on the day it runs."""
SITES = ("north", "south")
GATEWAYS_PER_SITE = 2
LINES_PER_GATEWAY = 2
HOUR_US = 3_600_000_000
RUN_GAP_US = HOUR_US // 2
"""The last half hour of a shift: changeover, no packs."""
TEMPERATURE_EVERY_US = 120_000_000
"""One probe per line, read every two minutes."""
PRODUCTS = (
    # (plu suffix, nominal g, tier, gtin body)
    ("A", 250, "premium", "0950600013"),
    ("B", 500, "gg", "0950600014"),
)


@dataclass(frozen=True, slots=True)
class Line:
    index: int
    site: str
    gateway: str
    line: str


@dataclass(frozen=True, slots=True)
class Run:
    index: int
    line: Line
    day: int
    shift: int
    run_number: str
    batch_code: str
    start_us: int
    end_us: int
    first_pack: int
    """Index of the run's first pack (packs are numbered 0..N-1 in run order)."""
    packs: int


@dataclass(frozen=True, slots=True)
class Plan:
    packs: int
    days: int
    runs_per_day: int
    lines: tuple[Line, ...]
    runs: tuple[Run, ...]
    packs_per_run: int
    late_every: int = 100
    """One pack in this many waits for its label to tell its product (a ``pack_product``
    device event a second later, the pack stored without a PLU)."""

    @property
    def start_us(self) -> int:
        return to_us(START)

    @property
    def end_us(self) -> int:
        return self.start_us + self.days * 24 * HOUR_US

    @property
    def shift_us(self) -> int:
        return 24 * HOUR_US // self.runs_per_day

    @property
    def months(self) -> list[tuple[int, int]]:
        """Every (year, month) the data touches."""
        first = START
        last = START + timedelta(days=self.days)
        out = []
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            out.append((year, month))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out

    @property
    def temperatures(self) -> int:
        return len(self.lines) * (self.end_us - self.start_us) // TEMPERATURE_EVERY_US

    def serial(self, pack: int) -> str:
        """The label serial of pack number ``pack`` (the loader's SQL writes the same)."""
        return f"SN{pack:010d}"

    def batch_codes(self) -> list[str]:
        return sorted({r.batch_code for r in self.runs if r.packs})


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_us(ts_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=ts_us)


def make_lines() -> tuple[Line, ...]:
    lines = []
    for s, site in enumerate(SITES):
        for g in range(GATEWAYS_PER_SITE):
            gateway = f"{site}-gw{g + 1}"
            for n in range(LINES_PER_GATEWAY):
                index = (s * GATEWAYS_PER_SITE + g) * LINES_PER_GATEWAY + n
                lines.append(Line(index, site, gateway, f"L{n + 1}"))
    return tuple(lines)


def make_plan(packs: int, *, days: int, runs_per_day: int, late_every: int = 100) -> Plan:
    """Packs spread evenly over every line's runs, in run order."""
    lines = make_lines()
    total_runs = len(lines) * days * runs_per_day
    per_run = max(1, math.ceil(packs / total_runs))
    shift_us = 24 * HOUR_US // runs_per_day
    start = to_us(START)
    runs = []
    for index in range(total_runs):
        slot, line_index = divmod(index, len(lines))
        day, shift = divmod(slot, runs_per_day)
        line = lines[line_index]
        first = index * per_run
        count = max(0, min(per_run, packs - first))
        run_start = start + slot * shift_us
        code = f"{line.gateway[0].upper()}{line.gateway[-1]}"
        runs.append(
            Run(
                index=index,
                line=line,
                day=day,
                shift=shift,
                run_number=f"R{code}{line.line}-{day:03d}-{shift}",
                batch_code=f"B{code}-{day:03d}-{shift}",
                start_us=run_start,
                end_us=run_start + shift_us - RUN_GAP_US,
                first_pack=first,
                packs=count,
            )
        )
    return Plan(packs, days, runs_per_day, lines, tuple(runs), per_run, late_every)
