"""The intake bound on a real store: backpressure at half of ``max_pending_rows``, device
records shed beyond it (counted, alerted, stored as evidence), their consequences never.

The committer is started only when the test wants the store to catch up, so how many
records are pending is exact at every step (no timing involved)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.base import DeviceRecorder
from gateway.config import RulesSection, StoreSection
from gateway.core.clock import ManualClock
from gateway.core.errors import RecordShedError
from gateway.core.link import LinkState
from gateway.core.records import AlertRecord, DeviceEvent, LabelScan, Record, Severity
from gateway.pipeline import Pipeline
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex
from gateway.shedding import ALERT_ID, SHED_EVENT_KIND
from gateway.store import Store

LIMIT = 1000


def scan(i: int, device: str = "scan1") -> LabelScan:
    return LabelScan(ts_us=1_000_000 + i, line="L1", device=device, raw=b"]C1%06d" % i)


@pytest.fixture
def config(tmp_path: Path) -> StoreSection:
    return StoreSection(path=tmp_path / "gw.db", commit_interval_ms=20, max_pending_rows=LIMIT)


@contextlib.asynccontextmanager
async def committing(store: Store) -> AsyncIterator[None]:
    """The committer runs inside the block; it has committed everything when it ends."""
    task = asyncio.create_task(store.run_committer())
    try:
        yield
    finally:
        await store.stop_committer()
        await task


async def count(store: Store, sql: str) -> int:
    return int((await store.fetchall(sql))[0][0])


async def settle() -> None:
    """Let every ready task run (waiters woken by a commit included)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_wait_for_space_holds_intake_back_from_half_the_limit(config: StoreSection) -> None:
    async with Store(config, ManualClock()) as store:
        half = store.backpressure_rows
        assert half == LIMIT // 2
        for i in range(half - 1):
            store.submit(scan(i))
        await asyncio.wait_for(store.wait_for_space(), 1)  # returns at once: room left
        store.submit(scan(half))
        waiter = asyncio.create_task(store.wait_for_space())
        await settle()
        assert not waiter.done(), "intake waits at the backpressure level"
        assert not store.over_limit
        async with committing(store):
            await asyncio.wait_for(waiter, 10)
        assert store.pending_count == 0


async def test_records_beyond_the_limit_are_shed_counted_alerted_and_stored_as_evidence(
    config: StoreSection,
) -> None:
    clock = ManualClock()
    async with Store(config, clock) as store:
        pipeline = Pipeline(store, RunIndex())
        queued = [pipeline.submit(scan(i)) for i in range(LIMIT)]
        assert (store.over_limit, pipeline.shedding.raised) == (True, False)
        shed = [pipeline.submit(scan(LIMIT + i)) for i in range(250)]
        shed += [pipeline.submit(scan(2000 + i, device="scan2")) for i in range(50)]
        # Not shed whatever the pressure: link events and what the gateway queues itself.
        link = pipeline.submit(DeviceEvent(ts_us=5, device="scan1", kind="link_down"))
        pipeline.submit_all([DeviceEvent(ts_us=6, device="gateway", kind="gateway_started")])

        assert all(f.done() and isinstance(f.exception(), RecordShedError) for f in shed)
        assert not any(f.done() for f in [*queued, link])
        assert [pipeline.shedding.raised] == [True]
        assert pipeline.shedding.totals == {
            ("scan1", "label_scans"): 250,
            ("scan2", "label_scans"): 50,
        }
        # queued + the raised alert + link_down + gateway_started
        assert store.pending_count == LIMIT + 3

        clock.advance(2.0)
        async with committing(store):
            await asyncio.wait_for(asyncio.gather(*queued, link), 20)
        assert not pipeline.shedding.raised

        assert await count(store, "SELECT count(*) FROM label_scans") == LIMIT
        rows = await store.fetchall(
            "SELECT device, json_extract(detail, '$.count'), "
            "json_extract(detail, '$.kinds.label_scans'), json_extract(detail, '$.first_us'), "
            "json_extract(detail, '$.last_us') FROM device_events WHERE kind = ? ORDER BY device",
            (SHED_EVENT_KIND,),
        )
        assert rows == [
            ("scan1", 250, 250, 1_000_000 + LIMIT, 1_000_000 + LIMIT + 249),
            ("scan2", 50, 50, 1_002_000, 1_002_049),
        ]
        stored = await count(store, "SELECT count(*) FROM label_scans")
        counted = sum(int(row[1]) for row in rows)
        assert stored + counted == LIMIT + 300, "every record stored or counted as shed"

        alerts = await store.fetchall(
            "SELECT state, severity, ts_us, seq FROM alerts WHERE alert_id = ? ORDER BY seq",
            (ALERT_ID,),
        )
        assert [row[:3] for row in alerts] == [
            ("raised", "major", clock.wall_us() - 2_000_000),
            ("cleared", "major", clock.wall_us()),
        ]
        evidence = await store.fetchall(
            "SELECT min(seq), max(seq) FROM device_events WHERE kind = ?", (SHED_EVENT_KIND,)
        )
        assert alerts[0][3] < evidence[0][0] <= evidence[0][1] < alerts[1][3], (
            "raised at the first shed; cleared after the counts are stored"
        )


class _AlertOnEveryRecord(RulesEngine):
    """Rules that make one alert of every record (the consequences of a stored record)."""

    def evaluate(self, record: Record) -> list[Record]:
        return [
            AlertRecord(
                ts_us=record.ts_us,
                alert_id=f"test.{record.ts_us}",
                rule="test",
                subject="s",
                severity=Severity.WARNING,
                state="raised",
                message="m",
            )
        ]


async def test_records_queued_without_a_future_commit_in_order_and_are_shed_alike(
    config: StoreSection,
) -> None:
    """The adapters' path (Pipeline.enqueue, no future per reading) and the awaited one
    (submit) share one queue: the same order, numbers and shedding."""
    clock = ManualClock()
    async with Store(config, clock) as store:
        pipeline = Pipeline(store, RunIndex())
        first = pipeline.submit(scan(0))
        for i in range(1, LIMIT - 1):
            pipeline.enqueue(scan(i))
        last = pipeline.submit(scan(LIMIT - 1))
        assert store.pending_count == LIMIT
        pipeline.enqueue(scan(LIMIT))  # over the limit: shed, counted and alerted
        assert pipeline.shedding.totals == {("scan1", "label_scans"): 1}
        clock.advance(1.0)
        async with committing(store):
            numbers = await asyncio.wait_for(asyncio.gather(first, last), 20)
        rows = await store.fetchall("SELECT seq, raw FROM label_scans ORDER BY seq")
    assert [bytes(raw) for _, raw in rows] == [scan(i).raw for i in range(LIMIT)]
    assert list(numbers) == [rows[0][0], rows[-1][0]]
    seqs = [seq for seq, _ in rows]
    assert seqs == list(range(seqs[0], seqs[0] + LIMIT))


async def test_the_consequences_of_a_queued_record_are_never_shed(config: StoreSection) -> None:
    clock = ManualClock()
    async with Store(config, clock) as store:
        rules = _AlertOnEveryRecord(RulesSection(), RunIndex(), clock)
        pipeline = Pipeline(store, RunIndex(), rules=rules)
        for i in range(LIMIT // 2 - 1):
            pipeline.submit(scan(i))  # each with its alert: LIMIT - 2 pending
        last = pipeline.submit(scan(LIMIT))  # fits: its alert is queued behind it, over the limit
        after = pipeline.submit(scan(LIMIT + 1))  # shed, and so never evaluated
        assert store.pending_count == LIMIT + 1  # + the intake.shed alert
        assert isinstance(after.exception(), RecordShedError)
        async with committing(store):
            await asyncio.wait_for(last, 20)
        test_alerts = await count(store, "SELECT count(*) FROM alerts WHERE rule = 'test'")
        scans = await count(store, "SELECT count(*) FROM label_scans")
        assert scans == test_alerts == LIMIT // 2


class _Recorder(DeviceRecorder):
    def __init__(self, sink: Pipeline, clock: ManualClock) -> None:
        self.device_id = "scan1"
        self.state = LinkState.UP
        self._line = "L1"
        self._sink = sink
        self._clock = clock


async def test_shed_records_make_no_log_flood_and_no_unretrieved_exceptions(
    config: StoreSection, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    async with Store(config, clock) as store:
        pipeline = Pipeline(store, RunIndex())
        recorder = _Recorder(pipeline, clock)
        caplog.set_level(logging.DEBUG)
        recorder._emit([scan(i) for i in range(LIMIT + 500)])  # adapters' path, with callbacks
        for i in range(500):
            pipeline.submit(scan(10_000 + i))  # the scanner's path: futures dropped at once
        await settle()  # done callbacks run
        gc.collect()  # dropped futures finalised: "never retrieved" would be logged now
        assert pipeline.shedding.total == 1000
        async with committing(store):
            pass
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"intake: {LIMIT + 1} records wait for the store (limit {LIMIT}); shedding device "
        "records until it catches up, starting with a LabelScan of device scan1 (counted per "
        "device in records_shed events)"
    ]
    assert getattr(errors[0], "device", None) == "scan1"
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
