"""The fault proxy on the two HTTP routes: to the ERP and to the central ingest.

* ERP (docs/reference/reliability.md §7 row 15): the route black-holed (the ERP hangs: each poll
  runs into its timeout), then answers cut short mid-body. Every such poll fails with a clear error,
  the last known runs stay in force, one ``erp_unavailable`` alert is raised after
  ``FAILURES_BEFORE_ALERT`` failed polls (not one per poll), and it clears when the ERP
  answers again. Builds on ``test_erp_sync.py`` (ERP down with 503) and ``test_erp_http.py``
  (garbage bodies).
* Ingest over HTTPS' request path (row 17): requests reset part-way through the upload, then
  answers cut after the warehouse has committed (an ambiguous outcome). The batch is resent
  under the same ``Idempotency-Key`` until acknowledged, the warehouse stores each record
  once, nothing is lost. Builds on ``test_https_uplink.py`` (500/429/timeouts injected in the
  ingest itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.erp.http_source import HttpErpSource
from adapters.erp.simulator import ErpSimulator
from gateway.config import HttpErp, StoreSection
from gateway.core.backoff import Backoff
from gateway.core.clock import ManualClock, SystemClock
from gateway.core.records import AlertRecord, PackEvent, Record, Severity
from gateway.erp_sync import FAILURES_BEFORE_ALERT, ErpPoller
from gateway.runs import RunIndex, to_us
from gateway.store import Store
from sync.https_uplink import HttpsUplink
from sync.ingest import IngestService, IngestSettings
from sync.ingest.http_app import INGEST_PATH
from tests.support.faultproxy import FaultProxy
from tests.support.gateway_tokens import token_for, tokens
from tests.support.waiting import wait_for

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    config = StoreSection(path=tmp_path / "gw.db", commit_interval_ms=10)
    async with Store(config, SystemClock()) as opened:
        committer = asyncio.create_task(opened.run_committer())
        try:
            yield opened
        finally:
            await opened.stop_committer()
            await committer


async def alert_rows(store: Store) -> list[tuple[object, ...]]:
    return await store.fetchall("SELECT rule, state FROM alerts ORDER BY seq")


def is_provisional(poller: ErpPoller) -> bool:
    """``poller.provisional`` read afresh: mypy keeps an ``assert`` narrowing of the attribute
    across the polls that change it."""
    return poller.provisional


async def test_erp_route_hung_or_cut_keeps_the_runs_and_alerts_once(store: Store) -> None:
    clock = ManualClock(wall_us=to_us(NOW))
    async with ErpSimulator(now=lambda: NOW) as erp, FaultProxy(erp.port) as proxy:
        config = HttpErp(
            kind="http",
            url=f"http://127.0.0.1:{proxy.port}{erp.url.removeprefix(erp.base_url)}",
            retries=0,
            stale_after_s=60,
            connect_timeout_s=0.5,
            read_timeout_s=0.3,
            total_timeout_s=1.0,
        )
        poller = ErpPoller(config, HttpErpSource(config), store, RunIndex(), clock)
        try:
            assert await poller.poll_once()
            known = len(poller.index)
            assert known > 0

            proxy.blackhole()  # the ERP hangs: connections open, not a byte back
            for _ in range(FAILURES_BEFORE_ALERT):
                clock.advance(30)
                assert not await poller.poll_once()
            hung_error = poller.last_error
            proxy.cut_after(150, direction="down")  # answers cut short mid-body
            for _ in range(2):
                clock.advance(30)
                assert not await poller.poll_once()
            cut_error = poller.last_error

            assert len(poller.index) == known, "the last known runs stay in force"
            assert is_provisional(poller)
            await wait_for(lambda: _rows_are(store, [("erp_unavailable", "raised")]))

            proxy.pass_through()
            clock.advance(30)
            assert await poller.poll_once()
            assert not is_provisional(poller)
            await wait_for(
                lambda: _rows_are(
                    store, [("erp_unavailable", "raised"), ("erp_unavailable", "cleared")]
                )
            )
        finally:
            await poller.source.close()
    assert "timed out" in hung_error.lower() or "timeout" in hung_error.lower(), hung_error
    assert cut_error, "a cut answer is an error too"
    assert cut_error != hung_error, cut_error
    assert proxy.stats.cuts >= 2
    assert proxy.stats.connections >= FAILURES_BEFORE_ALERT + 2


async def _rows_are(store: Store, expected: list[tuple[str, str]]) -> bool:
    return await alert_rows(store) == expected


# ---------------------------------------------------------------------------- ingest


@pytest.fixture
async def ingest(tmp_path: Path) -> AsyncIterator[IngestService]:
    service = IngestService(
        IngestSettings(
            mqtt_enabled=False,
            http_port=0,
            sqlite_path=tmp_path / "warehouse.db",
            gateway_tokens=tokens("gw-test"),
        )
    )
    task = asyncio.create_task(service.run())
    await wait_for(lambda: task.done() or service.ready.is_set(), 10)
    if task.done():
        task.result()
    try:
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def rows_per_seq(path: Path) -> dict[int, int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT seq, count(*) FROM records GROUP BY seq").fetchall()
    return {int(seq): int(n) for seq, n in rows}


async def test_uploads_cut_mid_request_or_mid_answer_are_resent_and_stored_once(
    tmp_path: Path, store: Store, ingest: IngestService
) -> None:
    assert ingest.http_port is not None
    warehouse = tmp_path / "warehouse.db"
    records: list[Record] = [
        PackEvent(ts_us=1_000 + i, line="L1", device="cw1", net_g=240.0 + i / 10) for i in range(60)
    ]
    records.append(
        AlertRecord(
            ts_us=5,
            alert_id="a1",
            rule="haccp_upper",
            subject="P1",
            severity=Severity.CRITICAL,
            state="raised",
            message="P1 above 5 °C",
        )
    )
    seqs = list(await asyncio.gather(*(store.submit(r) for r in records)))
    async with FaultProxy(ingest.http_port) as proxy:
        proxy.cut_after(300)  # each upload reset part-way through its request
        uplink = HttpsUplink(
            store,
            url=f"http://127.0.0.1:{proxy.port}{INGEST_PATH}",
            site="test-site",
            gateway="gw-test",
            token=token_for("gw-test"),
            max_records=20,
            timeout_s=0.5,
            poll_interval_s=0.02,
            backoff=Backoff(initial=0.05, maximum=0.2),
        )
        task = asyncio.create_task(uplink.run())
        try:
            await wait_for(lambda: uplink.stats.batches_resent >= 3, 10)
            assert not warehouse.exists() or not rows_per_seq(warehouse)
            assert proxy.stats.cuts >= 3

            proxy.cut_after(60, direction="down")  # committed, then the answer is cut
            await wait_for(lambda: warehouse.exists() and bool(rows_per_seq(warehouse)), 10)
            retries = uplink.stats.batches_resent
            await wait_for(lambda: uplink.stats.batches_resent > retries, 10)
            assert uplink.stats.records_acked == 0, "no answer arrived whole: nothing deleted"

            proxy.pass_through()
            await wait_for(lambda: uplink.stats.records_acked == len(seqs), 15)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    per_seq = rows_per_seq(warehouse)
    assert set(per_seq) == set(seqs)
    assert all(n == 1 for n in per_seq.values())
    assert ingest.warehouse.stats.duplicates > 0, "the ambiguous outcome was resent"
    assert ingest.warehouse.stats.conflicts == 0
    assert uplink.stats.records_quarantined == 0
    assert await store.fetchall("SELECT count(*) FROM outbox") == [(0,)]
