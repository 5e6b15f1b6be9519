"""The ERP poller, the run join and operator run control, against the simulated ERP over HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.erp.http_source import HttpErpSource
from adapters.erp.simulator import ErpFault, ErpSimulator
from gateway.config import HttpErp, StoreSection
from gateway.control import ControlServer, RunControl, send_command
from gateway.core.clock import ManualClock
from gateway.core.records import PackEvent, RecordFlag, TemperatureReading
from gateway.core.runs import Product, ProductionRun, RunStatus, Tier, run_to_json, run_version
from gateway.erp_sync import (
    FAILURES_BEFORE_ALERT,
    LOAD_CHUNK_ROWS,
    WATERMARK_KEY,
    ErpPoller,
    load_known_runs,
)
from gateway.pipeline import Pipeline
from gateway.report import build_report, format_report
from gateway.runs import RunIndex, to_us
from gateway.store import Store
from tests.support.waiting import wait_for

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = NOW.astimezone(UTC)


def erp_config(url: str) -> HttpErp:
    return HttpErp(kind="http", url=url, retries=0, stale_after_s=60, watermark_overlap_s=120)


@pytest.fixture
async def erp() -> AsyncIterator[ErpSimulator]:
    async with ErpSimulator(now=lambda: NOW) as simulator:
        yield simulator


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    clock = ManualClock(wall_us=to_us(NOW))
    async with Store(StoreSection(path=tmp_path / "erp.db", commit_interval_ms=10), clock) as s:
        committer = asyncio.create_task(s.run_committer())
        yield s
        await s.stop_committer()
        await committer


def poller_for(erp: ErpSimulator, store: Store, clock: ManualClock | None = None) -> ErpPoller:
    config = erp_config(erp.url)
    return ErpPoller(
        config, HttpErpSource(config), store, RunIndex(), clock or ManualClock(wall_us=to_us(NOW))
    )


def is_provisional(poller: ErpPoller) -> bool:
    """``poller.provisional`` read afresh: mypy keeps an ``assert`` narrowing of the attribute
    across the polls that change it."""
    return poller.provisional


async def count(store: Store, sql: str) -> int:
    return int((await store.fetchall(sql))[0][0])


async def test_poll_stores_versions_and_watermark_together_and_ignores_rereads(
    erp: ErpSimulator, store: Store
) -> None:
    poller = poller_for(erp, store)
    try:
        assert await poller.poll_once()
        versions = await count(store, "SELECT count(*) FROM run_versions")
        assert versions == len(erp.runs) == len(poller.index)
        watermark = await store.get_meta(WATERMARK_KEY)
        assert watermark is not None
        assert datetime.fromisoformat(watermark) == poller.watermark
        # Every version is queued for the warehouse in the same transaction.
        assert (
            await count(store, "SELECT count(*) FROM outbox WHERE stream = 'run_versions'")
            == versions
        )
        # The next poll re-reads the overlap window; unchanged runs add nothing.
        assert await poller.poll_once()
        assert await count(store, "SELECT count(*) FROM run_versions") == versions
        assert datetime.fromisoformat(await store.get_meta(WATERMARK_KEY) or "") == poller.watermark
        assert erp.methods_seen == {"GET"}
    finally:
        await poller.source.close()


async def test_a_restarted_poller_continues_from_the_store(erp: ErpSimulator, store: Store) -> None:
    first = poller_for(erp, store)
    await first.poll_once()
    await first.source.close()
    second = poller_for(erp, store)
    try:
        await second.load()
        assert len(second.index) == len(erp.runs)
        assert second.watermark == first.watermark
        requests_before = len(erp.requests)
        await second.poll_once()
        query = erp.requests[requests_before].query
        assert "updated_since" in query, "incremental, not a full reload"
    finally:
        await second.source.close()


async def test_offline_keeps_runs_marks_provisional_and_alerts_once(
    erp: ErpSimulator, store: Store
) -> None:
    clock = ManualClock(wall_us=to_us(NOW))
    poller = poller_for(erp, store, clock)
    try:
        assert await poller.poll_once()
        assert not is_provisional(poller)
        known = len(poller.index)
        erp.set_down(True)
        for _ in range(FAILURES_BEFORE_ALERT + 2):
            clock.advance(30)
            assert not await poller.poll_once()
        assert len(poller.index) == known, "the last known runs stay in force"
        assert is_provisional(poller)
        assert poller.staleness_s == pytest.approx(30 * (FAILURES_BEFORE_ALERT + 2))
        assert "503" in poller.last_error or "unavailable" in poller.last_error.lower()
        await wait_for(lambda: store.pending_count == 0, what="the queued alert committed")
        rows = await store.fetchall("SELECT rule, state FROM alerts ORDER BY seq")
        assert rows == [("erp_unavailable", "raised")], "one alert per outage, not per poll"
        erp.set_down(False)
        assert await poller.poll_once()
        assert not is_provisional(poller)
        rows = await store.fetchall("SELECT rule, state FROM alerts ORDER BY seq")
        assert rows == [("erp_unavailable", "raised"), ("erp_unavailable", "cleared")]
    finally:
        await poller.source.close()


async def test_a_changed_run_is_reconciled_with_an_alert(erp: ErpSimulator, store: Store) -> None:
    poller = poller_for(erp, store)
    try:
        await poller.poll_once()
        run_number = next(r["RunNumber"] for r in erp.runs if r["Status"] == "Running")
        erp.update_run(str(run_number), BatchCodes=["CHANGED-1"])
        await poller.poll_once()
        [(rule, subject, detail)] = await store.fetchall("SELECT rule, subject, detail FROM alerts")
        assert (rule, subject) == ("erp_run_changed", run_number)
        assert json.loads(detail)["fields"] == ["batch_codes"]
        run = poller.index.get(str(run_number))
        assert run is not None
        assert run.batch_codes == ("CHANGED-1",)
    finally:
        await poller.source.close()


async def test_garbage_rows_are_stored_as_rejected_with_reasons(
    erp: ErpSimulator, store: Store
) -> None:
    erp.add_run(
        {
            "RunNumber": "BROKEN-1",
            "Line": "L1",
            "Updated": NOW.replace(tzinfo=None).isoformat(),
            "ShelfLifeAdjust": 7,
            "RawMaterialKg": "lots",
        }
    )
    poller = poller_for(erp, store)
    try:
        await poller.poll_once()
        [(source, tag, reason, detail)] = await store.fetchall(
            "SELECT source, tag, reason, detail FROM rejected_inputs"
        )
        assert (source, tag, reason) == ("erp", "BROKEN-1", "erp_row_invalid")
        assert "ShelfLifeAdjust" in detail
        assert "RawMaterialKg" in detail
        assert poller.index.get("BROKEN-1") is None
    finally:
        await poller.source.close()


async def test_a_rejected_run_is_named_in_its_log_line(
    erp: ErpSimulator, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/operations-logs.md: every refused thing is named, with why."""
    erp.add_run(
        {
            "RunNumber": "BROKEN-2",
            "Line": "L1",
            "Updated": NOW.replace(tzinfo=None).isoformat(),
            "RawMaterialKg": "lots",
        }
    )
    poller = poller_for(erp, store)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.erp_sync"):
            await poller.poll_once()
    finally:
        await poller.source.close()
    [record] = [r for r in caplog.records if "BROKEN-2" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "rejected" in record.getMessage()
    assert "RawMaterialKg" in record.getMessage()
    assert "batch code" in record.getMessage()
    assert getattr(record, "run", None) == "BROKEN-2"


async def test_pack_during_a_run_carries_it_and_between_runs_carries_none(
    erp: ErpSimulator, store: Store
) -> None:
    poller = poller_for(erp, store)
    try:
        await poller.poll_once()
    finally:
        await poller.source.close()
    pipeline = Pipeline(store, poller.index, provisional=lambda: poller.provisional)
    running = next(
        r for r in poller.index.runs() if r.line == "L1" and r.actual_end is None and r.actual_start
    )
    finished = next(r for r in poller.index.runs() if r.line == "L1" and r.actual_end is not None)
    assert finished.actual_end is not None
    assert running.actual_start is not None
    during = to_us(running.actual_start) + 60_000_000
    in_old_run = to_us(finished.actual_end) - 60_000_000
    between = to_us(finished.actual_end) + 1_000_000
    assert between < to_us(running.actual_start), "the simulated day has a gap between runs"
    seqs = [
        await pipeline.submit(PackEvent(ts_us=during, line="L1", device="cw1", net_g=241.0)),
        await pipeline.submit(PackEvent(ts_us=in_old_run, line="L1", device="cw1", net_g=240.5)),
        await pipeline.submit(PackEvent(ts_us=between, line="L1", device="cw1", net_g=239.0)),
        await pipeline.submit(
            TemperatureReading(ts_us=during, line="L1", device="p", probe="P1", celsius=2.0)
        ),
    ]
    rows = await store.fetchall("SELECT seq, run_number, flags FROM packs ORDER BY seq")
    assert [r[0] for r in rows] == seqs[:3]
    assert [(r[1], r[2]) for r in rows] == [
        (running.run_number, 0),
        (finished.run_number, 0),
        (None, 0),
    ]
    assert pipeline.without_run["PackEvent"] == 1
    assert pipeline.joined["PackEvent"] == 2
    [(temperature_run,)] = await store.fetchall("SELECT run_number FROM temperatures")
    assert temperature_run == running.run_number

    # While the ERP is unreachable the join still works, flagged provisional.
    provisional = Pipeline(store, poller.index, provisional=lambda: True)
    seq = await provisional.submit(PackEvent(ts_us=during, line="L1", device="cw1", net_g=242.0))
    [(run_number, flags)] = await store.fetchall(
        "SELECT run_number, flags FROM packs WHERE seq = ?", (seq,)
    )
    assert run_number == running.run_number
    assert flags & RecordFlag.PROVISIONAL_RUN


async def test_operators_start_and_end_runs_over_the_control_socket(
    tmp_path: Path, store: Store
) -> None:
    clock = ManualClock(wall_us=to_us(NOW))
    index = RunIndex()
    control = RunControl(store, index, clock, {"L1"})
    socket_path = tmp_path / "control.sock"
    server = ControlServer(
        socket_path, {"start_run": control.start_run, "end_run": control.end_run}
    )
    serving = asyncio.create_task(server.serve())
    try:
        await wait_for(socket_path.exists)
        answer = await send_command(
            socket_path,
            {"command": "start_run", "line": "L1", "run_number": "R-LINE-1", "operator": "Ann"},
        )
        assert answer["ok"] is True
        pipeline = Pipeline(store, index)
        clock.advance(60)
        seq = await pipeline.submit(
            PackEvent(ts_us=clock.wall_us(), line="L1", device="cw1", net_g=240.0)
        )
        clock.advance(60)
        answer = await send_command(
            socket_path, {"command": "end_run", "run_number": "R-LINE-1", "operator": "Bo"}
        )
        assert answer["ok"] is True
        clock.advance(1)
        after = await pipeline.submit(
            PackEvent(ts_us=clock.wall_us(), line="L1", device="cw1", net_g=240.0)
        )
        refused = await send_command(
            socket_path,
            {"command": "start_run", "line": "L9", "run_number": "X", "operator": "Ann"},
        )
        garbage = await send_command(socket_path, {"command": "format_disk"})
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    runs = dict(await store.fetchall("SELECT seq, run_number FROM packs"))
    assert runs == {seq: "R-LINE-1", after: None}
    versions = await store.fetchall("SELECT source, actor, status FROM run_versions ORDER BY seq")
    assert versions == [("operator", "Ann", "running"), ("operator", "Bo", "finished")]
    assert refused == {"ok": False, "error": "unknown line 'L9'"}
    assert garbage["ok"] is False
    assert "unknown command" in garbage["error"]
    assert not socket_path.exists(), "the socket is removed when the gateway stops"


@pytest.mark.parametrize(
    "fault",
    [
        ErpFault.HTML_LOGIN,
        ErpFault.TRUNCATED,
        ErpFault.WRONG_SHAPE,
        ErpFault.HUGE,
        ErpFault.HUGE_CHUNKED,
        ErpFault.RATE_LIMITED,
        ErpFault.SERVER_ERROR,
        ErpFault.SLOW_DRIP,
        ErpFault.REDIRECT_HTTP,
        ErpFault.DOWN,
    ],
    ids=lambda f: f.value,
)
async def test_every_kind_of_erp_garbage_keeps_the_last_known_runs(
    erp: ErpSimulator, store: Store, fault: ErpFault, caplog: pytest.LogCaptureFixture
) -> None:
    config = HttpErp(
        kind="http",
        url=erp.url,
        retries=0,
        total_timeout_s=1.0,
        read_timeout_s=0.5,
        max_response_bytes=1024 * 1024,
    )
    poller = ErpPoller(config, HttpErpSource(config), store, RunIndex(), ManualClock())
    try:
        assert await poller.poll_once()
        known = {r.run_number: r for r in poller.index.runs()}
        erp.set_fault(fault)
        with caplog.at_level(logging.ERROR, logger="gateway.erp_sync"):
            assert not await poller.poll_once()  # never raises
        assert {r.run_number: r for r in poller.index.runs()} == known
        assert poller.provisional
        assert poller.last_error
        assert any("erp poll failed" in m for m in caplog.messages), "a clear logged error"
        erp.set_fault(None)
        assert await poller.poll_once(), "and it recovers by itself"
    finally:
        await poller.source.close()
    assert erp.methods_seen == {"GET"}


async def test_run_report_from_the_store(erp: ErpSimulator, store: Store) -> None:
    poller = poller_for(erp, store)
    try:
        await poller.poll_once()
    finally:
        await poller.source.close()
    run = next(r for r in poller.index.runs() if r.run_number.endswith("-L1-02"))
    assert run.actual_start is not None
    pipeline = Pipeline(store, poller.index)
    start = to_us(run.actual_start)
    weights = [241.0, 243.0, 245.0, 230.0, 220.0]  # one below T1 (231), one below T2 (222)
    for i, net in enumerate(weights):
        await pipeline.submit(
            PackEvent(ts_us=start + i, line="L1", device="cw1", net_g=net, nominal_g=240.0)
        )
    report = build_report(store.path, run.run_number)
    [product] = [p for p in report.products if p.plu == "41240"]
    assert (product.packs, product.below_t1, product.below_t2) == (5, 2, 1)
    assert product.mean_g == pytest.approx(235.8)
    assert product.giveaway_g == pytest.approx(-4.2)
    assert report.kg == pytest.approx(1.179)
    text = format_report(report)
    assert run.run_number in text
    assert "41240" in text


def _stored_run(number: int, nominal: str) -> ProductionRun:
    start = NOW - timedelta(hours=2 * number + 2)
    return ProductionRun(
        run_number=f"R{number}",
        line=f"L{1 + number % 3}",
        batch_codes=(f"B{number}",),
        description="Salmon fillets",
        species="salmon",
        product_type="fillet",
        products=(
            Product(plu="41240", nominal_g=Decimal(nominal), tier=Tier.PREMIUM),
            Product(plu="41250", nominal_g=None, tier=Tier.EXPORT, catch_weight=True),
        ),
        raw_material_kg=Decimal(1000),
        pack_date=start.date(),
        shelf_life_adjust=0,
        planned_start=start,
        planned_end=None,
        actual_start=start,
        actual_end=start + timedelta(hours=2),
        status=RunStatus.FINISHED,
        updated=start,
    )


async def test_every_stored_run_is_loaded_in_order_across_read_chunks(store: Store) -> None:
    """More runs than one read takes: all of them, in the order stored, each exactly as
    stored; equal products are one object, but 200 g and 200.0 g keep their own text."""
    count_runs = 2 * LOAD_CHUNK_ROWS + 7
    runs = [_stored_run(n, "200.0" if n % 2 else "200") for n in range(count_runs)]
    for run in runs:
        store.submit(run_version(run, to_us(NOW)))
    await store.commit_pending()
    while store.pending_count:
        await store.commit_pending()
    loaded = await load_known_runs(store)
    assert [r.run_number for r in loaded] == [r.run_number for r in runs]
    assert [run_to_json(r) for r in loaded] == [run_to_json(r) for r in runs]
    assert loaded[0].products[0] is loaded[2].products[0]  # the same 200 g product
    assert loaded[1].products[0] is loaded[3].products[0]  # the same 200.0 g product
    assert loaded[0].products[0] is not loaded[1].products[0]
    assert loaded[0].products[1] is loaded[1].products[1]  # the catch-weight product
