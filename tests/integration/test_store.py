"""The store: group commit, transactional outbox, constraints, migrations, quarantine,
size budget, and sequence numbers that are never reused."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from gateway.config import StoreSection
from gateway.core.clock import ManualClock
from gateway.core.errors import StoreError
from gateway.core.records import (
    AlertRecord,
    DeviceEvent,
    LabelScan,
    PackEvent,
    RejectedInput,
    Severity,
    TemperatureReading,
)
from gateway.store import Store, StoreState
from gateway.store.schema import SCHEMA_VERSION
from tests.support.waiting import wait_for


def pack(i: int) -> PackEvent:
    return PackEvent(ts_us=1_000 + i, line="L1", device="cw1", net_g=240.0 + i / 10, pack_counter=i)


async def test_records_commit_with_increasing_sequence_and_outbox(
    store_config: StoreSection,
) -> None:
    async with Store(store_config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        seqs = [
            await store.write(pack(1)),
            await store.write(
                TemperatureReading(ts_us=2, line="L1", device="p", probe="P1", celsius=2.5)
            ),
            await store.write(
                LabelScan(ts_us=3, line="L1", device="s", raw=b"]C1010950110153000317260101")
            ),
            await store.write(DeviceEvent(ts_us=4, device="cw1", kind="link_up")),
            await store.write(
                RejectedInput(ts_us=5, source="cw1", tag="net", raw="nan", reason="non_finite")
            ),
            await store.write(
                AlertRecord(
                    ts_us=6,
                    alert_id="a",
                    rule="r",
                    subject="s",
                    severity=Severity.CRITICAL,
                    state="raised",
                    message="m",
                )
            ),
        ]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
        outbox = await store.fetchall("SELECT seq, stream, priority FROM outbox ORDER BY seq")
        streams = {seq: (stream, prio) for seq, stream, prio in outbox}
        # The gateway's own start event is not written here; every record has its outbox row.
        assert [streams[s] for s in seqs] == [
            ("packs", 1),
            ("temperatures", 1),
            ("label_scans", 1),
            ("device_events", 2),
            ("rejected_inputs", 2),
            ("alerts", 0),
        ]
        await store.stop_committer()
        await committer


async def test_one_commit_of_mixed_records_queues_each_once_with_its_stream(
    tmp_path: Path,
) -> None:
    # The outbox rows of a commit are inserted per table (gateway/store/batch_insert.py):
    # records of several tables, interleaved in one batch, each get exactly one row.
    config = StoreSection(path=tmp_path / "m.db", commit_interval_ms=5000, commit_max_rows=60)
    clock = ManualClock(wall_us=1_800_000_000_000_000)
    async with Store(config, clock) as store:
        committer = asyncio.create_task(store.run_committer())
        kinds: list[tuple[str, int]] = []
        futures = []
        for i in range(60):
            if i % 4 == 0:
                record: PackEvent | TemperatureReading | DeviceEvent = pack(i)
                kinds.append(("packs", 1))
            elif i % 4 == 3:
                record = DeviceEvent(ts_us=i, device="cw1", kind="link_up")
                kinds.append(("device_events", 2))
            else:
                record = TemperatureReading(ts_us=i, line="L1", device="p", probe="P1", celsius=2)
                kinds.append(("temperatures", 1))
            futures.append(store.submit(record))
        await wait_for(lambda: all(f.done() for f in futures))
        assert store.stats.batches_committed == 1
        seqs = [f.result() for f in futures]
        rows = await store.fetchall(
            "SELECT seq, stream, priority, enqueued_us FROM outbox ORDER BY seq"
        )
        assert rows == [
            (seq, stream, priority, 1_800_000_000_000_000)
            for seq, (stream, priority) in zip(seqs, kinds, strict=True)
        ]
        await store.stop_committer()
        await committer


async def test_group_commit_batches_by_rows(tmp_path: Path) -> None:
    config = StoreSection(path=tmp_path / "g.db", commit_interval_ms=5000, commit_max_rows=100)
    async with Store(config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        futures = [store.submit(pack(i)) for i in range(250)]
        # Two full batches go at once; the remaining 50 wait for the interval.
        await wait_for(lambda: store.stats.batches_committed == 2)
        assert store.pending_count == 50
        assert all(f.done() for f in futures[:200])
        assert not any(f.done() for f in futures[200:])
        await store.stop_committer()  # stopping flushes the partial batch
        await committer
        assert all(f.done() for f in futures)
        assert (await store.fetchall("SELECT count(*) FROM packs"))[0][0] == 250


async def test_group_commit_by_interval(tmp_path: Path) -> None:
    config = StoreSection(path=tmp_path / "i.db", commit_interval_ms=50, commit_max_rows=10_000)
    async with Store(config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        future = store.submit(pack(1))
        await asyncio.wait_for(future, timeout=5)
        assert store.stats.batches_committed == 1
        await store.stop_committer()
        await committer


async def test_close_commits_the_pending_batch(store_config: StoreSection) -> None:
    store = Store(store_config, ManualClock())
    await store.open()
    futures = [store.submit(pack(i)) for i in range(10)]
    await store.close()
    assert all(f.done() and f.result() > 0 for f in futures)
    db = sqlite3.connect(store_config.path)
    assert db.execute("SELECT count(*) FROM packs").fetchone()[0] == 10


def test_records_refuse_non_finite_measurements() -> None:
    with pytest.raises(ValueError, match="finite"):
        PackEvent(ts_us=1, line="L1", device="cw1", net_g=float("nan"))
    with pytest.raises(ValueError, match="finite"):
        TemperatureReading(ts_us=1, line="L1", device="p", probe="P1", celsius=float("inf"))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), None])
async def test_tables_refuse_null_and_non_finite_measurements(
    store_config: StoreSection, value: float | None
) -> None:
    async with Store(store_config, ManualClock()):
        pass
    db = sqlite3.connect(store_config.path)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO packs (seq, ts_us, line, device, net_g) VALUES (1, 1, 'L1', 'cw1', ?)",
            (value,),
        )
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO temperatures (seq, ts_us, line, device, probe, celsius) "
            "VALUES (1, 1, 'L1', 'p', 'P1', ?)",
            (value,),
        )


async def test_schema_is_strict_wal_full_and_versioned(store_config: StoreSection) -> None:
    async with Store(store_config, ManualClock()) as store:
        assert (await store.fetchall("PRAGMA journal_mode"))[0][0] == "wal"
        assert (await store.fetchall("PRAGMA synchronous"))[0][0] == 2  # FULL
        assert (await store.fetchall("PRAGMA user_version"))[0][0] == SCHEMA_VERSION
        with pytest.raises(sqlite3.IntegrityError):  # STRICT: no text in an INTEGER column
            await store.write_in_transaction(
                [
                    (
                        "INSERT INTO packs (seq, ts_us, line, device, net_g) "
                        "VALUES (1, 'x', 'L', 'd', 1.0)",
                        (),
                    )
                ]
            )
    # Re-opening an up-to-date database migrates nothing and keeps the data.
    async with Store(store_config, ManualClock()) as store:
        assert (await store.fetchall("PRAGMA user_version"))[0][0] == SCHEMA_VERSION


async def test_a_newer_schema_is_refused(store_config: StoreSection) -> None:
    async with Store(store_config, ManualClock()):
        pass
    db = sqlite3.connect(store_config.path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this Lineside"):
        await Store(store_config, ManualClock()).open()


def _garbage_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"\x00garbage" * 12)


def _flip_page(path: Path) -> None:
    # Damage the header of a b-tree page in the middle of the file (docs/reference/reliability.md §7
    # row 8).
    pages = path.stat().st_size // 4096
    with open(path, "r+b") as f:
        f.seek(4096 * (pages // 2))
        f.write(b"\xff" * 64)


def _truncate_half(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)


@pytest.mark.parametrize(
    "damage", [_garbage_header, _flip_page, _truncate_half], ids=["header", "page", "truncated"]
)
async def test_corrupt_database_is_quarantined_and_recording_continues(
    store_config: StoreSection, damage: object
) -> None:
    # A database with enough pages that page 3 holds b-tree data.
    async with Store(store_config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        for i in range(2000):
            store.submit(pack(i))
        await store.stop_committer()
        await committer
        old_max = (await store.fetchall("SELECT max(seq) FROM packs"))[0][0]
    damage(store_config.path)  # type: ignore[operator]

    async with Store(store_config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        assert store.state is StoreState.OK
        [moved] = store.stats.quarantined
        assert moved.exists()
        assert moved.parent.parent == store_config.quarantine_path
        assert (
            "quick_check" in (moved.parent / "REASON.txt").read_text()
            or "malformed" in (moved.parent / "REASON.txt").read_text()
            or "not a database" in (moved.parent / "REASON.txt").read_text()
        )
        seq = await store.write(pack(1))
        assert seq > old_max, "a fresh database continues above every number ever issued"
        await store.stop_committer()
        await committer
        alerts = await store.fetchall("SELECT rule, severity, detail FROM alerts")
        assert len(alerts) == 1
        rule, severity, detail = alerts[0]
        assert (rule, severity) == ("store_quarantined", "major")
        assert str(moved) in detail
        assert (await store.fetchall("PRAGMA quick_check"))[0][0] == "ok"


async def test_size_budget_full_keeps_records_and_recovers(tmp_path: Path) -> None:
    config = StoreSection(
        path=tmp_path / "full.db", commit_interval_ms=10, commit_max_rows=500, max_size_mb=4
    )
    async with Store(config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        futures = [
            store.submit(DeviceEvent(ts_us=i, device="d", kind="filler", detail={"pad": "x" * 400}))
            for i in range(20_000)
        ]
        await wait_for(lambda: store.state is StoreState.FULL)
        assert store.pending_count > 0, "what did not fit waits in memory"
        committed = sum(1 for f in futures if f.done())
        assert committed > 0
        # Make room the way eviction will: delete rows from another connection.
        other = sqlite3.connect(config.path, timeout=5)
        other.execute("DELETE FROM device_events")
        other.execute("DELETE FROM outbox")
        other.commit()
        other.close()
        await wait_for(lambda: store.pending_count < 20_000 - committed, timeout=30)
        assert store.stats.full_events >= 1
        await wait_for(lambda: store.state is StoreState.OK, timeout=30)
        assert (await store.fetchall("PRAGMA quick_check"))[0][0] == "ok"
        committer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await committer
        # Leave the remaining backlog behind: close() would need more room than 4 MB.
        store._pending.clear()


async def test_sequence_numbers_survive_a_restored_older_database(
    store_config: StoreSection,
) -> None:
    async with Store(store_config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        await store.write(pack(1))
        await store.stop_committer()
        await committer
    snapshot = store_config.path.with_name("snapshot.db")
    shutil.copy(store_config.path, snapshot)
    async with Store(store_config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        issued = [await store.write(pack(i)) for i in range(5)]
        await store.stop_committer()
        await committer
    # Power loss / restore: the older copy comes back, without the five newer records.
    for suffix in ("-wal", "-shm"):
        store_config.path.with_name(store_config.path.name + suffix).unlink(missing_ok=True)
    shutil.copy(snapshot, store_config.path)
    async with Store(store_config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        fresh = await store.write(pack(99))
        assert fresh > max(issued), "numbers that already left are never handed out again"
        await store.stop_committer()
        await committer


async def test_damaged_sequence_file_falls_back_above_and_alerts(
    store_config: StoreSection,
) -> None:
    async with Store(store_config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        first = await store.write(pack(1))
        await store.stop_committer()
        await committer
    store_config.path.with_name(store_config.path.name + ".seq").write_text("garbage")
    async with Store(store_config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        assert await store.write(pack(2)) > first
        await store.stop_committer()
        await committer
        rules = await store.fetchall("SELECT rule FROM alerts")
        assert rules == [("store_sequence_file",)]


async def test_last_pack_counter_comes_from_the_newest_record(store_config: StoreSection) -> None:
    async with Store(store_config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        assert await store.last_pack_counter("cw1") is None
        await store.write(
            DeviceEvent(ts_us=1, device="cw1", kind="pack_counter_baseline", detail={"counter": 40})
        )
        assert await store.last_pack_counter("cw1") == 40
        await store.write(pack(41))
        assert await store.last_pack_counter("cw1") == 41
        assert await store.last_pack_counter("other") is None
        await store.stop_committer()
        await committer


async def test_a_lone_record_after_an_idle_period_commits_within_the_interval(
    tmp_path: Path,
) -> None:
    config = StoreSection(path=tmp_path / "idle.db", commit_interval_ms=30, commit_max_rows=1000)
    async with Store(config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        await asyncio.sleep(0.1)  # the committer is idle, waiting for work
        for i in range(3):
            await asyncio.wait_for(store.write(pack(i)), timeout=2)
            await asyncio.sleep(0.05)
        assert store.stats.batches_committed == 3
        await store.stop_committer()
        await committer


async def test_a_cancelled_commit_with_meta_never_leaves_a_transaction_open(
    store_config: StoreSection,
) -> None:
    """The ERP poller is cancelled at shutdown, or when its first poll takes too long; its
    runs and watermark are all stored or none, and the store keeps committing."""
    async with Store(store_config, ManualClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        batches = 0
        for attempt in range(12):
            records = [
                PackEvent(ts_us=attempt * 10_000 + i, line="L1", device="cw1", net_g=240.0)
                for i in range(3000)
            ]
            task = asyncio.create_task(store.commit_with_meta(records, {"mark": str(attempt)}))
            for _ in range(attempt + 1):  # cancel at a different point each time
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # The next group commit must work: no transaction left open on the connection.
            await asyncio.wait_for(
                store.write(PackEvent(ts_us=1, line="L1", device="cw2", net_g=1.0)), 10
            )
            mark = await store.get_meta("mark")
            stored = (await store.fetchall("SELECT count(*) FROM packs WHERE device = 'cw1'"))[0][0]
            batches += mark == str(attempt)
            assert stored % 3000 == 0, "a batch is stored whole or not at all"
            assert stored == 3000 * batches or mark == str(attempt)
        await store.stop_committer()
        await committer
    assert batches == 12, "a cancelled caller's transaction still completes"
