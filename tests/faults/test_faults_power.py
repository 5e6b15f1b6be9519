"""Power loss, approximated on one machine (docs/reference/reliability.md §7 row 5).

A process crash keeps the page cache, so SIGKILL alone proves nothing about a power cut. Two
approximations instead:

1. **An older snapshot restored**: while the gateway (``lineside run``, a child process fed
   by the simulators) syncs to the warehouse, a consistent snapshot is taken with SQLite's
   backup API; later the gateway is SIGKILLed and the snapshot put back in place of its
   database (``-wal`` and ``-shm`` deleted), as if the last commits never reached the disk.
   The warehouse already holds records the restored database no longer has.
2. **A torn ``-wal`` tail**: the files of a store that stopped mid-stream are copied, the
   ``-wal`` is truncated at random offsets or the last frame gets flipped bits, the ``-shm``
   is gone. No checkpoint ran (the test keeps the ``-wal`` under the auto-checkpoint size),
   so the database file plus any prefix of the ``-wal`` is a state a power cut could leave.

Either way the store must open without being quarantined, pass ``integrity_check``, hold a
prefix of what was committed with the same content, and never hand out a sequence number
again: the warehouse (unique on gateway + seq, with a payload hash) sees no sequence number
reused for different content, and after delivery every record of the surviving store is in
the warehouse exactly once.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest

from adapters.simulators import SimulatorSettings, run_simulators
from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.core.records import PackEvent
from gateway.store import Store
from gateway.store.schema import RECORD_STREAMS
from sync.ingest import IngestService
from sync.mqtt_uplink import MqttUplink
from tests.support.mosquitto import Mosquitto
from tests.support.sync_harness import (
    GatewayProcess,
    demo_config,
    drain_in_process,
    ingest_settings,
    outbox_depth,
    start_ingest,
    stop_task,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

WAL_HEADER = 32
FRAME_HEADER = 24
AUTOCHECKPOINT_FRAMES = 1000


def records(db_path: Path) -> dict[int, tuple[str, tuple[object, ...]]]:
    """Every record row by sequence number: (stream, the whole row)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return {
            int(row[0]): (stream, tuple(row[1:]))
            for stream in RECORD_STREAMS
            for row in db.execute(f"SELECT seq, * FROM {stream}")
        }
    finally:
        db.close()


def seqs(db_path: Path) -> set[int]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return {
            int(seq)
            for stream in RECORD_STREAMS
            for (seq,) in db.execute(f"SELECT seq FROM {stream}")
        }
    finally:
        db.close()


def integrity(db_path: Path) -> str:
    db = sqlite3.connect(db_path)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def warehouse_rows(path: Path, gateway: str) -> tuple[dict[int, int], int]:
    """{seq: copies} for ``gateway``, and the number of conflicts recorded."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(
            "SELECT seq, count(*) FROM records WHERE gateway = ? GROUP BY seq", (gateway,)
        ).fetchall()
        conflicts = int(db.execute("SELECT count(*) FROM conflicts").fetchone()[0])
    finally:
        db.close()
    return {int(s): int(n) for s, n in rows}, conflicts


def snapshot(source: Path, target: Path) -> None:
    """A consistent copy of a live WAL database (SQLite's online backup API)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=5)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


# --------------------------------------------------------------------------------------
# 1. An older snapshot restored after SIGKILL


async def test_restored_older_snapshot_reuses_no_sequence_number(
    tmp_path: Path, broker: Mosquitto
) -> None:
    rng = random.Random(5_102)
    db_path = tmp_path / "gw" / "lineside.db"
    db_path.parent.mkdir()
    warehouse_path = tmp_path / "warehouse.db"
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    ingest_task = await start_ingest(ingest)
    stats = ingest.warehouse.stats
    started: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    simulators = asyncio.create_task(
        run_simulators(
            SimulatorSettings(seed=3, speed=8.0, pack_rate_hz=2.0), on_started=started.set_result
        )
    )
    gateway: GatewayProcess | None = None
    try:
        addresses = await asyncio.wait_for(asyncio.shield(started), 30)
        config = tmp_path / "gw.toml"
        config.write_text(demo_config(addresses, db_path, broker))
        gateway = GatewayProcess(config, tmp_path / "gateway.log", 0)
        await gateway.ready()
        await wait_for(lambda: stats.inserted >= 60, 30)
        await asyncio.sleep(rng.uniform(0.0, 0.4))  # a random moment for the snapshot
        snap = tmp_path / "snapshot.db"
        await asyncio.to_thread(snapshot, db_path, snap)
        snap_seqs = seqs(snap)
        # The warehouse goes on receiving what the snapshot will not have.
        await wait_for(
            lambda: (
                max(warehouse_rows(warehouse_path, "demo-gw1")[0], default=0) > max(snap_seqs) + 50
            ),
            30,
        )
        gateway.proc.send_signal(signal.SIGKILL)
        assert await gateway.wait(10) == -signal.SIGKILL
        gateway.close()
        gateway = None
        before_kill = records(db_path)
        assert set(before_kill) > snap_seqs

        # The power cut: the disk held only the older state.
        shutil.copyfile(snap, db_path)
        for suffix in ("-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)

        gateway = GatewayProcess(config, tmp_path / "gateway.log", 1)
        await gateway.ready()
        inserted = stats.inserted
        await wait_for(lambda: stats.inserted >= inserted + 60, 30)
        await stop_task(simulators)
        await wait_for(lambda: outbox_depth(db_path) == 0, 30)
        gateway.proc.send_signal(signal.SIGTERM)
        assert await gateway.wait(10) == 0, gateway.tail()
        gateway.close()
        gateway = None
        await drain_in_process(db_path, broker, "demo-site", "demo-gw1")
    finally:
        if gateway is not None:
            gateway.close()
        await stop_task(simulators)
        await stop_task(ingest_task)

    assert "quarantine" not in {p.name for p in db_path.parent.iterdir()}
    assert integrity(db_path) == "ok"
    after = records(db_path)
    assert set(after) >= snap_seqs, "the restored records are all there"
    new = set(after) - snap_seqs
    assert new, "the gateway recorded after the restore"
    assert min(new) > max(before_kill), "a sequence number was handed out again"
    stored, conflicts = warehouse_rows(warehouse_path, "demo-gw1")
    assert conflicts == 0, "the warehouse saw a sequence number reused for other content"
    assert stats.conflicts == 0
    assert all(n == 1 for n in stored.values())
    missing = sorted(set(after) - set(stored))
    assert not missing, f"committed and never delivered: {missing[:20]}"
    invented = sorted(set(stored) - set(after) - set(before_kill))
    assert not invented, f"in the warehouse, never committed: {invented[:20]}"
    # Records the restore took from the edge had already reached the warehouse.
    assert set(stored) & (set(before_kill) - set(after))


# --------------------------------------------------------------------------------------
# 2. A torn -wal tail


def wal_of(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + "-wal")


def copy_store(source_dir: Path, target_dir: Path) -> Path:
    """The store's files as they are on disk (database, -wal, sequence file; no -shm)."""
    target_dir.mkdir()
    for name in ("gw.db", "gw.db-wal", "gw.db.seq"):
        shutil.copyfile(source_dir / name, target_dir / name)
    return target_dir / "gw.db"


def tear(db_path: Path, how: str, rng: random.Random) -> str:
    wal = wal_of(db_path)
    data = bytearray(wal.read_bytes())
    if how == "truncate":
        cut = rng.randrange(WAL_HEADER, len(data))
        wal.write_bytes(data[:cut])
        return f"-wal truncated at {cut} of {len(data)} bytes"
    page = int.from_bytes(data[8:12], "big")
    last = len(data) - (FRAME_HEADER + page)
    spot = rng.randrange(last, len(data))
    data[spot] ^= 1 << rng.randrange(8)
    wal.write_bytes(bytes(data))
    return f"bit flipped at {spot} in the last frame ({last}..{len(data)})"


async def test_torn_wal_tail_opens_whole_and_reuses_no_sequence_number(
    tmp_path: Path, broker: Mosquitto
) -> None:
    rng = random.Random(77)
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    warehouse_path = tmp_path / "warehouse.db"
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    ingest_task = await start_ingest(ingest)
    try:
        image, original = await crash_image(live_dir / "gw.db", tmp_path / "image", broker)

        variants = ["truncate", "truncate", "truncate", "flip", "flip"]
        survivors: list[tuple[int, Path]] = []
        for n, how in enumerate(variants):
            variant_dir = tmp_path / f"variant{n}"
            variant = copy_store(image, variant_dir)
            note = tear(variant, how, rng)
            section = StoreSection(path=variant, commit_interval_ms=20)
            async with Store(section, SystemClock()) as opened:
                assert opened.stats.quarantined == [], note
                packs = int((await opened.fetchall("SELECT count(*) FROM packs"))[0][0])
            assert not (variant_dir / "quarantine").exists(), note
            assert integrity(variant) == "ok", note
            kept = records(variant)
            # A prefix of what was committed, each record exactly as committed.
            assert set(kept) <= set(original), note
            if kept:
                assert set(kept) == {s for s in original if s <= max(kept)}, note
            assert all(kept[s] == original[s] for s in kept), note
            assert packs == sum(1 for stream, _ in kept.values() if stream == "packs"), note
            survivors.append((len(kept), variant))

        # Carry on from the most damaged one: the warehouse already has what it lost.
        kept_count, variant = min(survivors)
        assert kept_count < len(original), "the truncation lost committed records"
        section = StoreSection(path=variant, commit_interval_ms=20)
        async with Store(section, SystemClock()) as store:
            committer = asyncio.create_task(store.run_committer())
            fresh = [
                store.submit(
                    PackEvent(ts_us=9_000_000 + i, line="L1", device="cw1", net_g=300.0 + i)
                )
                for i in range(150)
            ]
            new_seqs = set(await asyncio.gather(*fresh))
            await store.stop_committer()
            await committer
        await drain_in_process(variant, broker, "test-site", "gw-test")
    finally:
        await stop_task(ingest_task)
    assert min(new_seqs) > max(original), "a sequence number was handed out again"
    stored, conflicts = warehouse_rows(warehouse_path, "gw-test")
    assert conflicts == 0, "the warehouse saw a sequence number reused for other content"
    assert ingest.warehouse.stats.conflicts == 0
    assert all(n == 1 for n in stored.values())
    final = seqs(variant)
    assert final <= set(stored), "every record of the surviving store was delivered"
    assert set(stored) <= final | set(original)
    assert set(stored) - final, "the warehouse has records the torn store lost"


async def crash_image(
    db_path: Path, image: Path, broker: Mosquitto
) -> tuple[Path, dict[int, tuple[str, tuple[object, ...]]]]:
    """Commit and deliver 1200 packs, then copy the store's files as the disk holds them."""
    store = Store(StoreSection(path=db_path, commit_interval_ms=20), SystemClock())
    await store.open()
    committer = asyncio.create_task(store.run_committer())
    uplink = MqttUplink(
        store,
        host=broker.host,
        port=broker.port,
        site="test-site",
        gateway="gw-test",
        max_records=100,
        ack_timeout_s=0.5,
        poll_interval_s=0.05,
    )
    uplink_task = asyncio.create_task(uplink.run())
    try:
        # Bursts: one transaction each, so the -wal stays under the auto-checkpoint size.
        for burst in range(12):
            futures = [
                store.submit(
                    PackEvent(
                        ts_us=1_000_000 + burst * 1000 + i,
                        line="L1",
                        device="cw1",
                        net_g=240.0 + i % 11,
                    )
                )
                for i in range(100)
            ]
            await asyncio.gather(*futures)
        await wait_for(lambda: uplink.stats.records_acked == 1200, 30)
    finally:
        await uplink.stop()
        await asyncio.wait_for(uplink_task, 10)
    page = store_page_size(db_path)
    frames = (wal_of(db_path).stat().st_size - WAL_HEADER) // (FRAME_HEADER + page)
    assert 0 < frames < AUTOCHECKPOINT_FRAMES, "no checkpoint ran: the -wal holds it all"
    copy_store(db_path.parent, image)
    original = records(db_path)
    await store.stop_committer()
    await committer
    await store.close()
    return image, original


def store_page_size(db_path: Path) -> int:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(db.execute("PRAGMA page_size").fetchone()[0])
    finally:
        db.close()
