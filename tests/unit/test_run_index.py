"""The run index answers as a scan of every known run would, at any size of history.

:class:`gateway.runs.RunIndex` looks a reading's run up on a per-line timeline
(gateway/run_timeline.py) instead of scanning every run; these tests hold its answers to the
plain scan of the rules in gateway/runs.py, over random histories with overlaps, open ends,
cancelled runs, ties, replaced versions and runs moved to another line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.runs import ProductionRun, RunStatus
from gateway.runs import RunIndex, run_window, to_us

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
LINES = ("L1", "L2")


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def make_run(
    number: str,
    line: str,
    status: RunStatus,
    *,
    actual_start: int | None,
    actual_end: int | None,
    planned_start: int | None,
    codes: tuple[str, ...] = (),
) -> ProductionRun:
    return ProductionRun(
        run_number=number,
        line=line,
        batch_codes=codes,
        description="",
        species=None,
        product_type=None,
        products=(),
        raw_material_kg=None,
        pack_date=None,
        shelf_life_adjust=0,
        planned_start=None if planned_start is None else at(planned_start),
        planned_end=None,
        actual_start=None if actual_start is None else at(actual_start),
        actual_end=None if actual_end is None else at(actual_end),
        status=status,
        updated=T0,
    )


def scan(runs: list[ProductionRun], line: str, moment: datetime) -> ProductionRun | None:
    """The rule as gateway/runs.py states it, by brute force over runs in the order learnt."""
    best: tuple[datetime, ProductionRun] | None = None
    for run in runs:
        if run.line != line:
            continue
        window = run_window(run)
        if window is None:
            continue
        start, end = window
        if start <= moment and (end is None or moment < end) and (best is None or start > best[0]):
            best = (start, run)
    return best[1] if best else None


minutes = st.integers(min_value=0, max_value=60)
runs_strategy = st.builds(
    make_run,
    number=st.sampled_from([f"R{i}" for i in range(8)]),
    line=st.sampled_from(LINES),
    status=st.sampled_from(list(RunStatus)),
    actual_start=st.none() | minutes,
    actual_end=st.none() | minutes,
    planned_start=st.none() | minutes,
    codes=st.lists(st.sampled_from(["B1", "B2", "B3"]), max_size=3).map(tuple),
)


class Reference:
    """The newest version of each run, in the order first learnt (a dict keeps it)."""

    def __init__(self) -> None:
        self.runs: dict[str, ProductionRun] = {}

    def put(self, run: ProductionRun) -> None:
        self.runs[run.run_number] = run


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.lists(runs_strategy, max_size=6), min_size=1, max_size=4),
    st.lists(st.integers(min_value=-2, max_value=62), min_size=1, max_size=12),
)
def test_lookups_match_a_scan_of_every_run_after_each_round_of_puts(
    rounds: list[list[ProductionRun]], moments: list[int]
) -> None:
    index = RunIndex()
    reference = Reference()
    for puts in rounds:  # lookups between rounds: timelines built, then changed
        for run in puts:
            assert index.put(run) is reference.runs.get(run.run_number)
            reference.put(run)
        known = list(reference.runs.values())
        for minute in moments:
            for line in LINES:
                expected = scan(known, line, at(minute))
                assert index.active(line, at(minute)) is expected
                assert index.active_us(line, to_us(at(minute))) is expected
        for code in ("B1", "B2", "B3", "B4"):
            assert index.knows_batch_code(code) == any(code in r.batch_codes for r in known)
        assert index.runs() == known


def test_latest_start_wins_and_the_first_learnt_breaks_a_tie() -> None:
    older = make_run(
        "R1", "L1", RunStatus.RUNNING, actual_start=0, actual_end=None, planned_start=None
    )
    newer = make_run(
        "R2", "L1", RunStatus.FINISHED, actual_start=10, actual_end=20, planned_start=0
    )
    twin = make_run("R3", "L1", RunStatus.FINISHED, actual_start=10, actual_end=30, planned_start=0)
    index = RunIndex([older, newer, twin])
    assert index.active("L1", at(5)) is older
    assert index.active("L1", at(10)) is newer  # R2 and R3 start together: R2 came first
    assert index.active("L1", at(20)) is twin  # the end is not part of the window
    assert index.active("L1", at(30)) is older  # the open run is active again
    assert index.active("L2", at(10)) is None
    assert index.active("L1", at(-1)) is None


def test_a_new_version_moves_the_window_and_a_moved_run_leaves_its_old_line() -> None:
    first = make_run(
        "R1", "L1", RunStatus.RUNNING, actual_start=0, actual_end=None, planned_start=0
    )
    index = RunIndex([first])
    assert index.active("L1", at(50)) is first
    ended = make_run("R1", "L1", RunStatus.FINISHED, actual_start=0, actual_end=30, planned_start=0)
    assert index.put(ended) is first
    assert index.active("L1", at(50)) is None
    assert index.active("L1", at(29)) is ended
    moved = make_run(
        "R1", "L2", RunStatus.RUNNING, actual_start=0, actual_end=None, planned_start=0
    )
    index.put(moved)
    assert index.active("L1", at(29)) is None
    assert index.active("L2", at(29)) is moved


def test_a_replaced_version_forgets_its_batch_codes() -> None:
    def running(codes: tuple[str, ...]) -> ProductionRun:
        return make_run(
            "R1",
            "L1",
            RunStatus.RUNNING,
            actual_start=0,
            actual_end=None,
            planned_start=0,
            codes=codes,
        )

    index = RunIndex([running(("B1", "B1"))])
    assert index.knows_batch_code("B1")
    index.put(running(("B2",)))
    assert not index.knows_batch_code("B1")
    assert index.knows_batch_code("B2")


def test_ten_thousand_runs_a_line_still_answer_each_reading() -> None:
    """A year and more of history: every reading still gets its run, at every boundary."""
    runs = [
        make_run(
            f"R{i}-{line}",
            line,
            RunStatus.FINISHED,
            actual_start=i * 120,
            actual_end=i * 120 + 100,
            planned_start=None,
        )
        for i in range(10_000)
        for line in LINES
    ]
    index = RunIndex(runs)
    for i in (0, 1, 4_999, 9_999):
        for line in LINES:
            run = index.active_us(line, to_us(at(i * 120 + 50)))
            assert run is not None
            assert run.run_number == f"R{i}-{line}"
            assert index.active_us(line, to_us(at(i * 120 + 100))) is None  # the idle gap
            assert index.active_us(line, to_us(at(i * 120 + 100)) - 1) is run
