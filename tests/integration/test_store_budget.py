"""The store near its disk budget: telemetry is evicted oldest first and counted, compliance
records and alerts never are, one "edge storage full" alert, automatic recovery."""

from __future__ import annotations

import asyncio
import errno
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.config import StoreSection
from gateway.core.clock import ManualClock
from gateway.core.errors import StoreFullError
from gateway.core.records import (
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    RejectedInput,
    TemperatureReading,
)
from gateway.store import MIB, Store, StoreState
from gateway.store.eviction import ALERT_ID
from tests.support.waiting import wait_for

PAD = "x" * 400


def event(i: int) -> DeviceEvent:
    return DeviceEvent(ts_us=i, device="d", kind="filler", detail={"pad": PAD})


def rejected(i: int) -> RejectedInput:
    return RejectedInput(ts_us=i, source="cw1", tag="net", raw=PAD, reason="non_finite")


def pack(i: int) -> PackEvent:
    return PackEvent(ts_us=i, line="L1", device="cw1", net_g=240.0 + i / 10, pack_counter=i)


def scan(i: int) -> LabelScan:
    return LabelScan(ts_us=i, line="L1", device="s", raw=b"]C1" + b"0" * 2000, serial=str(i))


def config(tmp_path: Path, **overrides: Any) -> StoreSection:
    values: dict[str, Any] = {
        "path": tmp_path / "budget.db",
        "commit_interval_ms": 10,
        "commit_max_rows": 500,
        "max_size_mb": 4,
    }
    values.update(overrides)
    return StoreSection(**values)


@contextmanager
def committing(store: Store) -> Iterator[asyncio.Task[None]]:
    task = asyncio.create_task(store.run_committer())
    try:
        yield task
    finally:
        task.cancel()


async def stop(store: Store, task: asyncio.Task[None]) -> None:
    await store.stop_committer()
    await task


async def count(store: Store, sql: str, *parameters: object) -> int:
    return int((await store.fetchall(sql, parameters))[0][0])


async def full_alerts(store: Store, state: str) -> list[str]:
    rows = await store.fetchall(
        "SELECT message FROM alerts WHERE alert_id = ? AND state = ? ORDER BY seq",
        (ALERT_ID, state),
    )
    return [str(r[0]) for r in rows]


async def integrity(path: Path) -> str:
    def check() -> str:
        db = sqlite3.connect(path)
        try:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            db.close()

    return await asyncio.to_thread(check)


def all_done(futures: list[asyncio.Future[int]]) -> bool:
    return all(f.done() for f in futures)


async def test_telemetry_is_evicted_oldest_first_and_compliance_is_kept(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with Store(cfg, ManualClock()) as store:
        with committing(store) as task:
            telemetry: list[asyncio.Future[int]] = []
            compliance: list[asyncio.Future[int]] = []
            # ~7 MB of telemetry interleaved with compliance records, into a 4 MB budget.
            for i in range(14_000):
                telemetry.append(store.submit(rejected(i) if i % 7 == 0 else event(i)))
                if i % 5 == 0:
                    compliance.append(
                        store.submit(
                            pack(i)
                            if i % 2
                            else TemperatureReading(
                                ts_us=i, line="L1", device="p", probe="P1", celsius=2.5
                            )
                        )
                    )
            await wait_for(lambda: all_done(telemetry + compliance), timeout=20)
            assert all(not f.exception() for f in telemetry + compliance)
            assert store.state is StoreState.OK

            evicted = store.stats.evicted
            assert evicted.get("device_events", 0) > 0
            assert evicted.get("rejected_inputs", 0) > 0
            assert set(evicted) == {"device_events", "rejected_inputs"}
            kept = {
                int(r[0])
                for r in await store.fetchall(
                    "SELECT seq FROM device_events UNION ALL SELECT seq FROM rejected_inputs"
                )
            }
            written = sorted(f.result() for f in telemetry)
            # Oldest first, across both tables: what is left is exactly the newest telemetry.
            assert sorted(kept) == written[sum(evicted.values()) :]
            # Their outbox rows went with them; every compliance record and its row is there.
            assert await count(store, "SELECT count(*) FROM outbox WHERE priority = 2") == len(kept)
            assert await count(store, "SELECT count(*) FROM packs") == 1400
            assert await count(store, "SELECT count(*) FROM temperatures") == 1400
            stored = {
                int(r[0])
                for r in await store.fetchall(
                    "SELECT seq FROM packs UNION ALL SELECT seq FROM temperatures"
                )
            }
            assert stored == {f.result() for f in compliance}
            assert await count(store, "SELECT count(*) FROM outbox WHERE priority = 1") == 2800

            # One alert, naming the counts; recording goes on.
            await wait_for(lambda: store.pending_count == 0)
            raised = await full_alerts(store, "raised")
            assert len(raised) == 1
            assert raised[0].startswith("edge storage full: ")
            assert "device_events" in raised[0]
            assert "rejected_inputs" in raised[0]
            more = [await store.write(pack(100_000 + i)) for i in range(3)]
            assert len(set(more)) == 3
            assert await full_alerts(store, "raised") == raised
            await stop(store, task)
    assert await integrity(cfg.path) == "ok"


async def test_only_compliance_left_waits_in_memory_and_recovers_when_space_returns(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    async with Store(cfg, ManualClock()) as store:
        with committing(store) as task:
            events = [store.submit(event(i)) for i in range(300)]
            await wait_for(lambda: all_done(events))
            # ~5 MB of label scans into a 4 MB budget: the telemetry goes first, then FULL.
            scans = [store.submit(scan(i)) for i in range(2_500)]
            await wait_for(lambda: store.state is StoreState.FULL and store.stats.full_events >= 3)
            assert store.pending_count > 0, "what does not fit waits in memory"
            assert await count(store, "SELECT count(*) FROM device_events") == 0
            assert store.stats.evicted == {"device_events": 300}
            committed = [f.result() for f in scans if f.done()]
            assert 0 < len(committed) < len(scans)
            assert await count(store, "SELECT count(*) FROM label_scans") == len(committed)
            # Nothing lost: every scan is either stored or waiting in memory.
            waiting = [p for p in store._pending if isinstance(p.record, LabelScan)]
            assert len(committed) + len(waiting) == len(scans)

            # The warehouse acknowledged the oldest scans and retention removed them (from
            # another connection, as the outbox and a retention job would).
            acknowledged = sorted(committed)[: len(committed) * 3 // 4]
            marks = ",".join(map(str, acknowledged))

            def retention() -> None:
                # In a thread: the store's writer must be able to finish its transaction.
                other = sqlite3.connect(cfg.path, timeout=10)
                with other:
                    other.execute(f"DELETE FROM outbox WHERE seq IN ({marks})")
                    other.execute(f"DELETE FROM label_scans WHERE seq IN ({marks})")
                other.close()

            await asyncio.to_thread(retention)

            await wait_for(lambda: all_done(scans), timeout=20)
            assert store.state is StoreState.OK
            await wait_for(lambda: store.pending_count == 0)
            await wait_for(lambda: full_alerts_count(store, "cleared"), timeout=10)
            raised = await full_alerts(store, "raised")
            assert len(raised) == 1
            assert "only compliance records and alerts remain" in raised[0] or (
                "evicting" in raised[0]
            )
            seqs = {int(r[0]) for r in await store.fetchall("SELECT seq FROM label_scans")}
            assert seqs == {f.result() for f in scans} - set(acknowledged)
            await stop(store, task)
    assert await integrity(cfg.path) == "ok"


async def full_alerts_count(store: Store, state: str) -> bool:
    return len(await full_alerts(store, state)) == 1


async def test_budget_is_recomputed_from_free_disk_space_on_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(tmp_path, max_size_mb=64, headroom_mb=1)
    real = shutil.disk_usage
    filled = {"yes": True}

    def disk_usage(path: Any) -> Any:
        usage = real(path)
        if not filled["yes"]:
            return usage
        # Another process has filled the volume: what is left is 1 MiB of headroom and
        # 1 MiB for the database file.
        size = cfg.path.stat().st_size if cfg.path.exists() else 0
        return usage._replace(free=max(2 * MIB - size, 0))

    monkeypatch.setattr("gateway.store.budget.shutil.disk_usage", disk_usage)
    async with Store(cfg, ManualClock()) as store:
        assert store.stats.max_pages * 4096 <= 1 * MIB
        with committing(store) as task:
            scans = [store.submit(scan(i)) for i in range(1_500)]
            await wait_for(lambda: store.state is StoreState.FULL)
            assert store.pending_count > 0
            stalled = sum(1 for f in scans if f.done())
            assert stalled < len(scans)
            await wait_for(lambda: store.stats.full_events >= 3)
            filled["yes"] = False  # the filler is removed: the next retry sees the space
            await wait_for(lambda: all_done(scans), timeout=20)
            assert store.state is StoreState.OK
            assert await count(store, "SELECT count(*) FROM label_scans") == len(scans)
            await stop(store, task)
    assert await integrity(cfg.path) == "ok"


async def test_enospc_from_the_os_is_handled_like_a_full_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(tmp_path)
    async with Store(cfg, ManualClock()) as store:
        failures = {"left": 3}

        def reserve(count: int) -> None:
            if failures["left"]:
                failures["left"] -= 1
                raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(store._sequence, "needs_reservation", lambda count: True)
        monkeypatch.setattr(store._sequence, "reserve", reserve)
        with committing(store) as task:
            records: list[Record] = [pack(i) for i in range(50)]
            futures = [store.submit(r) for r in records]
            await wait_for(lambda: all_done(futures), timeout=20)
            assert store.stats.full_events == 3
            assert store.state is StoreState.OK
            assert await count(store, "SELECT count(*) FROM packs") == 50
            await stop(store, task)

        # An I/O error while the volume has no free space is a full disk, not a fatal error.
        usage = shutil.disk_usage(tmp_path)._replace(free=0)
        monkeypatch.setattr("gateway.store.sqlite_errors.shutil.disk_usage", lambda path: usage)
        error = sqlite3.OperationalError("disk I/O error")
        error.sqlite_errorcode = 778  # SQLITE_IOERR_WRITE
        assert store._classify(error) is StoreFullError
