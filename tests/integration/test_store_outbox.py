"""The outbox's statements in the store: each change to the outbox and its quarantine is
one transaction, and :meth:`Store.fetchall` only reads."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import pytest

from gateway.config import StoreSection
from gateway.core.clock import ManualClock
from gateway.core.records import PackEvent
from gateway.store import Store
from sync.outbox import Outbox

# A trigger that makes the outbox refuse deletes, so the second statement of a quarantine
# or an acknowledgement fails after the first has run.
NO_OUTBOX_DELETES = """
CREATE TRIGGER no_outbox_deletes BEFORE DELETE ON outbox
BEGIN SELECT RAISE(ABORT, 'outbox deletes refused'); END
"""


def pack(i: int) -> PackEvent:
    return PackEvent(ts_us=1_000 + i, line="L1", device="cw1", net_g=240.0, pack_counter=i)


async def stored_packs(store: Store, count: int) -> list[int]:
    committer = asyncio.create_task(store.run_committer())
    try:
        return [await store.write(pack(i)) for i in range(count)]
    finally:
        await store.stop_committer()
        with contextlib.suppress(asyncio.CancelledError):
            await committer


def add_trigger(store_config: StoreSection, sql: str) -> None:
    # A second connection, as another process would: the test's set-up stays out of the
    # store's write path, which is what is under test.
    db = sqlite3.connect(store_config.path)
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


async def test_fetchall_refuses_a_write(store_config: StoreSection) -> None:
    async with Store(store_config, ManualClock()) as store:
        seqs = await stored_packs(store, 2)
        for statement in (
            "DELETE FROM outbox",
            "INSERT INTO meta (key, value) VALUES ('k', 'v')",
            "CREATE TABLE t (x INTEGER)",
            "PRAGMA user_version=99",
        ):
            with pytest.raises(ValueError, match="only reads"):
                await store.fetchall(statement)
        assert [row[0] for row in await store.fetchall("SELECT seq FROM outbox")] == seqs
        assert await store.fetchall("SELECT count(*) FROM meta") == [(0,)]


async def test_a_failed_quarantine_leaves_the_record_in_the_outbox_only(
    store_config: StoreSection,
) -> None:
    async with Store(store_config, ManualClock()) as store:
        seqs = await stored_packs(store, 3)
        outbox = Outbox(store, gateway="gw", site="site")
        add_trigger(store_config, NO_OUTBOX_DELETES)
        with pytest.raises(sqlite3.IntegrityError, match="outbox deletes refused"):
            await outbox.quarantine(seqs[:2], "refused by the warehouse")
        # The copy into the quarantine was rolled back with the failed delete: the records
        # are where they were, not in both tables.
        assert await outbox.quarantined() == []
        assert await outbox.depth() == 3
        add_trigger(store_config, "DROP TRIGGER no_outbox_deletes")
        assert await outbox.quarantine(seqs[:2], "refused by the warehouse") == 2
        assert [seq for seq, _, _ in await outbox.quarantined()] == seqs[:2]
        assert await outbox.depth() == 1


async def test_a_failed_requeue_leaves_the_record_in_the_quarantine_only(
    store_config: StoreSection,
) -> None:
    async with Store(store_config, ManualClock()) as store:
        seqs = await stored_packs(store, 2)
        outbox = Outbox(store, gateway="gw", site="site")
        assert await outbox.quarantine(seqs, "refused by the warehouse") == 2
        add_trigger(
            store_config,
            "CREATE TRIGGER no_quarantine_deletes BEFORE DELETE ON outbox_quarantine "
            "BEGIN SELECT RAISE(ABORT, 'quarantine deletes refused'); END",
        )
        with pytest.raises(sqlite3.IntegrityError, match="quarantine deletes refused"):
            await outbox.requeue(seqs)
        assert await outbox.depth() == 0
        assert [seq for seq, _, _ in await outbox.quarantined()] == seqs
        add_trigger(store_config, "DROP TRIGGER no_quarantine_deletes")
        moved, refused = await outbox.requeue(seqs)
        assert [entry.seq for entry in moved] == seqs
        assert refused == {}
        assert await outbox.depth() == 2
        assert await outbox.quarantined() == []
