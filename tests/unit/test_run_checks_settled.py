"""The once-a-minute run checks skip an ended run only when judging it again could change
nothing, and keep no copy of every run's rules view.

:meth:`gateway.rules_engine.RulesEngine.check_runs` remembers the ended runs whose last check
found nothing (``settled_runs``) and judges them again only when their version, grams packed
or orphan scans change. These tests hold it to an engine that judges every run every time,
over random sequences of checks, late packs and new run versions.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import RulesSection
from gateway.core.clock import ManualClock
from gateway.core.records import AlertRecord, LabelScan, PackEvent, Record
from gateway.core.runs import Product, ProductionRun, RunStatus, Tier
from gateway.rules_engine import RulesEngine
from gateway.rules_engine.state import CONTEXTS_KEPT
from gateway.runs import RunIndex, to_us
from rules.compliance import check_run

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
MINUTE_US = 60_000_000


def make_run(number: str, variant: int) -> ProductionRun:
    """A run in one of a few states that the compliance rules judge differently."""
    ended = variant % 2 == 0
    extra: dict[str, object] = {}
    if variant in (2, 3):
        extra = {"BatchTiers": {f"B-{number}": "GG"}}  # GG fish in a Premium product
    if variant == 4:
        extra = {"BatchSpecies": {f"B-{number}": "Trout"}}  # not the run's salmon
    return ProductionRun(
        run_number=number,
        line="L1",
        batch_codes=(f"B-{number}",),
        description="SALMON FILLETS",
        species="salmon",
        product_type="fillet",
        products=(
            Product(plu="41240", nominal_g=Decimal(240), tier=Tier.PREMIUM, species="salmon"),
        ),
        raw_material_kg=None if variant == 5 else Decimal(10 if variant < 4 else 500),
        pack_date=T0.date(),
        shelf_life_adjust=0,
        planned_start=T0,
        planned_end=T0 + timedelta(hours=2),
        actual_start=None if variant == 6 else T0,
        actual_end=T0 + timedelta(hours=2) if ended else None,
        status=RunStatus.FINISHED if ended else RunStatus.RUNNING,
        updated=T0,
        extra=extra,
    )


def pack(number: str, grams: float, ts_us: int) -> PackEvent:
    return PackEvent(
        ts_us=ts_us, line="L1", device="cw1", net_g=grams, nominal_g=240.0, run_number=number
    )


def scan(number: str, batch: str, ts_us: int) -> LabelScan:
    """A label read back on the line naming a batch no known run lists (an orphan)."""
    return LabelScan(ts_us=ts_us, line="L1", device="sc1", raw=b"", batch=batch, run_number=number)


def alerts(records: list[Record]) -> list[tuple[object, ...]]:
    return [
        (r.ts_us, r.alert_id, r.rule, r.subject, r.state, r.message, r.detail)
        for r in records
        if isinstance(r, AlertRecord)
    ]


class Pair:
    """The engine under test and a reference that forgets what it settled before each
    check, so it judges every started run every minute (the behaviour before the skip)."""

    def __init__(self, runs: list[ProductionRun]) -> None:
        start = to_us(T0 + timedelta(hours=3))
        self.clock = ManualClock(wall_us=start)
        self.reference_clock = ManualClock(wall_us=start)
        self.engine = RulesEngine(RulesSection(), RunIndex(runs), self.clock)
        self.reference = RulesEngine(RulesSection(), RunIndex(runs), self.reference_clock)

    def both(self, step: str, *args: object) -> tuple[list[Record], list[Record]]:
        out = []
        for engine, clock in ((self.engine, self.clock), (self.reference, self.reference_clock)):
            if engine is self.reference:
                engine.settled_runs.clear()
            if step == "tick":
                clock.advance(MINUTE_US / 1e6)
                out.append(engine.tick())
            elif step == "pack":
                number, grams = args
                out.append(engine.evaluate(pack(f"R{number}", float(str(grams)), clock.wall_us())))
            elif step == "scan":
                number, batch = args
                out.append(engine.evaluate(scan(f"R{number}", f"X-{batch}", clock.wall_us())))
            else:
                (run,) = args
                assert isinstance(run, ProductionRun)
                engine.runs.put(run)
                out.append([])
        return out[0], out[1]


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("tick")),
        st.tuples(st.just("pack"), st.integers(0, 5), st.sampled_from([240, 2_000, 9_000])),
        st.tuples(st.just("scan"), st.integers(0, 5), st.integers(0, 2)),
        st.tuples(st.just("version"), st.integers(0, 5), st.integers(0, 6)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(variants=st.lists(st.integers(0, 6), min_size=6, max_size=6), steps=STEPS)
def test_the_same_alerts_as_judging_every_run_every_minute(
    variants: list[int], steps: list[tuple[object, ...]]
) -> None:
    pair = Pair([make_run(f"R{i}", v) for i, v in enumerate(variants)])
    for step in [("tick",), *steps, ("tick",), ("tick",)]:
        args = step[1:]
        if step[0] == "version":
            _, index, variant = step
            args = (make_run(f"R{index}", int(str(variant))),)
        mine, reference = pair.both(str(step[0]), *args)
        assert alerts(mine) == alerts(reference)


def test_an_ended_run_that_found_nothing_is_judged_again_only_when_it_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    judged: list[str] = []

    def counting_check_run(run: object, *args: object, **kwargs: object) -> object:
        judged.append(getattr(run, "run_number", "?"))
        return check_run(run, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("gateway.rules_engine.engine.check_run", counting_check_run)
    finished = [make_run(f"R{i}", 0) for i in range(50)]
    running = make_run("RUNNING", 1)
    clock = ManualClock(wall_us=to_us(T0 + timedelta(hours=3)))
    engine = RulesEngine(RulesSection(), RunIndex([*finished, running]), clock)

    assert not alerts(engine.check_runs(clock.wall_us()))
    assert len(judged) == 51
    judged.clear()
    assert not alerts(engine.check_runs(clock.wall_us() + MINUTE_US))
    assert judged == ["RUNNING"]  # the running run's checks depend on the day

    # A late pack on an ended run: 240 g from 10 kg of fish is a 2.4 % yield.
    judged.clear()
    engine.evaluate(pack("R7", 240.0, clock.wall_us()))
    engine.evaluate(scan("R9", "X-1", clock.wall_us()))
    raised = alerts(engine.check_runs(clock.wall_us() + 2 * MINUTE_US))
    assert sorted((a[2], a[4]) for a in raised) == [
        ("compliance_scanback_orphan", "raised"),
        ("compliance_yield", "raised"),
    ]
    assert sorted(judged) == ["R7", "R9", "RUNNING"]

    # An open alert keeps its run judged; a new version of another run is judged once.
    judged.clear()
    engine.runs.put(dataclasses.replace(finished[3], raw_material_kg=Decimal(11)))
    engine.check_runs(clock.wall_us() + 3 * MINUTE_US)
    assert sorted(judged) == ["R3", "R7", "R9", "RUNNING"]
    judged.clear()
    engine.check_runs(clock.wall_us() + 4 * MINUTE_US)
    assert sorted(judged) == ["R7", "R9", "RUNNING"]

    # A run settled with packs on it (9 kg from 10: a 90 % yield, no finding) is judged
    # again when more are packed, and when an orphan label is scanned back on it.
    engine.evaluate(pack("R11", 9_000.0, clock.wall_us()))
    assert not alerts(engine.check_runs(clock.wall_us() + 5 * MINUTE_US))
    judged.clear()
    engine.evaluate(pack("R11", 100.0, clock.wall_us()))
    assert not alerts(engine.check_runs(clock.wall_us() + 6 * MINUTE_US))
    assert sorted(judged) == ["R11", "R7", "R9", "RUNNING"]
    judged.clear()
    engine.evaluate(scan("R11", "X-2", clock.wall_us()))
    raised = alerts(engine.check_runs(clock.wall_us() + 7 * MINUTE_US))
    assert [(a[2], a[3], a[4]) for a in raised] == [
        ("compliance_scanback_orphan", "L1/R11", "raised")
    ]
    assert sorted(judged) == ["R11", "R7", "R9", "RUNNING"]


def test_the_rules_view_is_kept_for_recent_runs_only() -> None:
    runs = [make_run(f"R{i}", 1) for i in range(CONTEXTS_KEPT * 3)]
    clock = ManualClock(wall_us=to_us(T0 + timedelta(hours=1)))
    engine = RulesEngine(RulesSection(), RunIndex(runs), clock)
    engine.check_runs(clock.wall_us())
    for run in runs:
        engine.evaluate(pack(run.run_number, 240.0, clock.wall_us()))
    kept = engine._contexts  # what the engine holds is the point
    assert len(kept) == CONTEXTS_KEPT
    assert set(kept) == {r.run_number for r in runs[-CONTEXTS_KEPT:]}
