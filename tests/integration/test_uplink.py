"""Store-and-forward over MQTT against a real mosquitto (tests/mosquitto.py) and a fake ingest.

The fake ingest is the seam we own: a real paho subscriber on the data topics that decodes
batches with sync.protocol, "commits" them (remembers every seq, counts duplicates) and
publishes acks. Conservation: every committed seq reaches it, and the outbox empties only
through its acks.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gateway.config import StoreSection
from gateway.core.backoff import Backoff
from gateway.core.clock import ManualClock
from gateway.core.records import (
    LabelScan,
)
from gateway.store import Store
from sync.alert_feed import CURSOR_KEY, AlertFeed, AlertMessage
from sync.andon import AndonPublisher, andon_payload
from sync.mqtt_uplink import MqttUplink
from sync.outbox import Outbox, batch_seqs
from sync.protocol import (
    alerts_topic,
    andon_topic,
    decode_batch,
    encode_batch,
    gateway_alerts_topic,
    status_topic,
    wire_records,
)
from tests.support.mosquitto import Mosquitto
from tests.support.paths import REPO
from tests.support.uplink_harness import (
    GW,
    SITE,
    FakeIngest,
    Watcher,
    alert,
    commit,
    mixed,
    pack,
    running_store,
    running_uplink,
    telemetry,
    transition,
)
from tests.support.waiting import wait_for


async def test_outbox_batches_by_priority_then_seq_and_acks_delete(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_store(tmp_path, clock) as store:
        tele = await commit(store, [telemetry(i) for i in range(5)])
        packs = await commit(store, [pack(i) for i in range(30)])
        (scan,) = await commit(store, [LabelScan(ts_us=1, line="L1", device="s", raw=b"\x1d\xff")])
        (urgent,) = await commit(store, [alert("late")])
        outbox = Outbox(store, gateway=GW, site=SITE)
        clock.advance(90)
        assert await outbox.depth() == 37
        assert await outbox.oldest_age_s() == pytest.approx(90)

        first = await outbox.next_batch(100, 100_000)
        assert first is not None
        assert (first.stream, batch_seqs(first)) == ("alerts", (urgent,))
        assert first.records[0][1]["alert_id"] == "late"
        # Packs before the label scan (seq order in one stream); byte cut keeps >= 1 record.
        second = await outbox.next_batch(10, 100_000, exclude=batch_seqs(first))
        assert second is not None
        assert batch_seqs(second) == tuple(packs[:10])
        assert set(second.records[0][1]) >= {"net_g", "pack_counter", "nominal_g"}
        # Sized with the text it is sent with: each record encoded once.
        assert second.wire_records == wire_records(second.records)
        tiny = await outbox.next_batch(10, 1, exclude=[*batch_seqs(first), *batch_seqs(second)])
        assert tiny is not None
        assert batch_seqs(tiny) == (packs[10],)
        rest = await outbox.next_batch(100, 100_000, exclude=[*batch_seqs(first), *packs, *tele])
        assert rest is not None
        assert rest.stream == "label_scans"
        assert rest.records[0][1]["raw"] == "1dff"  # BLOB as hex
        # Alerts only, for the reserved slot: nothing else qualifies.
        only_alerts = await outbox.next_batch(10, 100_000, exclude=(urgent,), max_priority=0)
        assert only_alerts is None

        assert await outbox.acknowledge([urgent, urgent, 999_999_999]) == 1
        assert await outbox.quarantine(tele[:2], "PUBACK 0x87") == 2
        assert await outbox.quarantined() == [
            (tele[0], "device_events", "PUBACK 0x87"),
            (tele[1], "device_events", "PUBACK 0x87"),
        ]
        assert await outbox.depth_by_priority() == {1: 31, 2: 3}
        assert await outbox.acknowledge([*packs, scan, *tele]) == 34
        assert await outbox.next_batch(10, 1000) is None
        assert await outbox.oldest_age_s() == 0.0


def test_andon_state_is_latest_wins() -> None:
    clock = ManualClock()
    andon = AndonPublisher(SITE, GW, clock=clock)
    assert andon.update("L1", "red", [{"alert_id": "t1", "severity": "critical"}])
    assert not andon.update("L1", "red", [{"alert_id": "t1", "severity": "critical"}])
    assert andon.update("L1", "green")
    (message,) = andon.retained_messages(everything=False)
    assert message.retain
    assert message.topic == andon_topic(SITE, GW, "L1")
    assert json.loads(message.payload)["state"] == "green"
    assert andon.retained_messages(everything=False) == []
    assert len(andon.retained_messages(everything=True)) == 1  # re-published on reconnect
    assert json.loads(andon_payload("L1", "amber", [], 7)) == {
        "v": 1,
        "line": "L1",
        "state": "amber",
        "alerts": [],
        "updated_us": 7,
    }


async def publish_all(feed: AlertFeed, *, acks_reversed: bool = True) -> list[AlertMessage]:
    """Play the uplink against a broker that PUBACKs every window, newest first: what the
    feed handed out, in order. The cursor may move only over the oldest confirmed ones."""
    published: list[AlertMessage] = []
    while True:
        window: list[AlertMessage] = []
        while (message := await feed.next_message()) is not None:
            assert len(feed._page) <= feed.page_rows  # never more than a page in memory
            feed.sent(message.seq)
            window.append(message)
        if not window:
            return published
        assert len(window) <= feed.window
        before = feed.cursor
        for message in reversed(window) if acks_reversed else window:
            feed.confirmed(message.seq, feed.epoch)
            if message is not window[0] and acks_reversed:
                assert feed.cursor == before  # the oldest is not confirmed yet
        assert feed.cursor == window[-1].seq
        published += window


async def test_alert_feed_pages_in_seq_order_passes_over_expired_and_resumes_after_its_cursor(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    async with running_store(tmp_path, clock) as store:
        now = clock.wall_us()
        stale = await commit(store, [transition(i, now - 7_200_000_000) for i in range(30)])
        await commit(store, [pack(i) for i in range(5)])  # other streams in between
        lines = ["L1", "L2", None]
        fresh = await commit(
            store, [transition(i, now - 100_000_000, line=lines[i % 3]) for i in range(120)]
        )
        feed = AlertFeed(store, site=SITE, gateway=GW, window=7, page_rows=25)
        await feed.load()
        assert feed.cursor == 0

        published = await publish_all(feed)
        assert [m.seq for m in published] == fresh
        assert feed.stats.expired == len(stale)  # two hours old: not shown as new
        assert feed.stats.pages >= (len(stale) + len(fresh)) / feed.page_rows
        first = published[0]
        assert first.expiry_s == 3500  # counted from the transition, not from the publish
        body = json.loads(first.payload)
        assert (body["seq"], body["gateway"], body["state"]) == (fresh[0], GW, "raised")
        assert {m.topic for m in published} == {
            alerts_topic(SITE, GW, "L1"),
            alerts_topic(SITE, GW, "L2"),
            gateway_alerts_topic(SITE, GW),
        }
        assert published[2].topic == gateway_alerts_topic(SITE, GW)  # no line

        await feed.save(force=True)
        assert await store.get_meta(CURSOR_KEY) == str(fresh[-1])
        # A restart resumes after the stored cursor.
        later = await commit(store, [transition(i, clock.wall_us()) for i in range(5)])
        again = AlertFeed(store, site=SITE, gateway=GW, window=3, page_rows=2)
        await again.load()
        # Only the oldest PUBACK comes before the connection drops ...
        window: list[AlertMessage] = []
        while (message := await again.next_message()) is not None:
            again.sent(message.seq)
            window.append(message)
        assert [m.seq for m in window] == later[:3]
        again.confirmed(later[0], again.epoch)
        stale_epoch = again.epoch
        again.rewind()  # a new connection
        again.confirmed(later[1], stale_epoch)  # a late PUBACK of the old one: ignored
        repeated = await publish_all(again, acks_reversed=False)
        # ... so the rest is published again, as the same bytes, and the cursor moves on.
        assert [m.seq for m in repeated] == later[1:]
        assert [m.payload for m in repeated[:2]] == [m.payload for m in window[1:]]
        assert again.stats.republished == 2
        assert again.cursor == later[-1]


async def test_alert_feed_publishes_a_transition_only_once_it_is_committed(
    tmp_path: Path,
) -> None:
    config = StoreSection(path=tmp_path / "lineside.db", commit_interval_ms=20)
    async with Store(config, ManualClock()) as store:  # no committer: commits by hand
        feed = AlertFeed(store, site=SITE, gateway=GW)
        store.commit_observers.append(feed.tables_committed)
        await feed.load()
        pending = store.submit(transition(0, store.clock.wall_us()))
        # Queued, not committed: a crash now would lose it, so no board may have seen it.
        assert await feed.next_message() is None
        await store.commit_pending()
        message = await feed.next_message()  # the commit woke the feed: no poll interval
        assert message is not None
        assert message.seq == await pending


async def test_alert_feed_quota_exceeded_starts_again_from_the_cursor_later(
    tmp_path: Path,
) -> None:
    async with running_store(tmp_path) as store:
        seqs = await commit(store, [transition(i, store.clock.wall_us()) for i in range(4)])
        feed = AlertFeed(store, site=SITE, gateway=GW, backoff=Backoff(initial=0.05, maximum=0.1))
        await feed.load()
        sent = []
        while (message := await feed.next_message()) is not None:
            feed.sent(message.seq)
            sent.append(message.seq)
        assert sent == seqs
        feed.confirmed(seqs[0], feed.epoch)
        # The broker takes the third but not the second: publishing the second again alone
        # would put it behind the third on the topic. So: from the cursor, after a delay.
        feed.refused(seqs[1], feed.epoch, 0x97, "Quota exceeded")
        feed.confirmed(seqs[2], feed.epoch - 1)  # of the abandoned round: ignored
        assert feed.cursor == seqs[0]
        assert await feed.next_message() is None  # holding back
        await wait_for(lambda: feed.next_wakeup() <= time.monotonic(), 5)
        again = await publish_all(feed, acks_reversed=False)
        assert [m.seq for m in again] == seqs[1:]
        assert feed.stats.refused == 0  # temporary: nothing passed over
        # A final refusal (0x87, the ACL) is passed over: the cursor moves on.
        (last,) = await commit(store, [transition(9, store.clock.wall_us())])
        feed.wake()
        message = await feed.next_message()
        assert message is not None
        feed.sent(message.seq)
        feed.refused(last, feed.epoch, 0x87, "Not authorized")
        assert (feed.cursor, feed.stats.refused) == (last, 1)


# ---------------------------------------------------------------- over a real broker


async def test_committed_records_reach_the_ingest_and_the_outbox_empties(
    tmp_path: Path, broker: Mosquitto
) -> None:
    ingest = FakeIngest(broker).start()
    try:
        async with running_store(tmp_path) as store:
            seqs = await commit(store, mixed(200))
            async with running_uplink(store, broker) as uplink:
                await wait_for(lambda: set(seqs) <= ingest.received, 15)
                await wait_for(lambda: uplink.in_flight == 0)
                assert await uplink.outbox.depth() == 0
                conn = uplink._conn
                assert conn is not None
                sock = conn.client.socket()
                assert isinstance(sock, socket.socket)
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert uplink.stats.records_acked == len(seqs)
            assert ingest.batches[0][0] == "alerts"  # priority: alerts leave first
            scans = [d for d in ingest.data.values() if d["stream"] == "label_scans"]
            assert scans[0]["raw"] == b"]C1\x1d01\x00".hex()
            print(f"{len(seqs)} records, {ingest.duplicates} duplicates on the wire")
    finally:
        ingest.stop()


async def test_broker_down_then_back_loses_nothing(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    broker.start()
    ingest = FakeIngest(broker).start()
    try:
        async with running_store(tmp_path) as store, running_uplink(store, broker) as uplink:
            before = await commit(store, mixed(50))
            await wait_for(lambda: set(before) <= ingest.received)
            await wait_for(lambda: uplink.in_flight == 0)
            broker.stop()
            await wait_for(lambda: uplink.state.value == "down")
            during = await commit(store, mixed(100))  # committed while the broker is away
            attempts = uplink.stats.connect_attempts
            await wait_for(lambda: uplink.stats.connect_attempts >= attempts + 3)  # refused
            assert await uplink.outbox.depth() == len(during)
            broker.start()
            await wait_for(lambda: set(before + during) <= ingest.received, 15)
            await wait_for(lambda: uplink.in_flight == 0)
            assert await uplink.outbox.depth() == 0
            assert uplink.stats.connects >= 2
    finally:
        ingest.stop()
        broker.kill()


async def test_broker_restart_without_persistence_republishes_from_sqlite(
    tmp_path: Path, broker: Mosquitto
) -> None:
    async with running_store(tmp_path) as store, running_uplink(store, broker) as uplink:
        seqs = await commit(store, mixed(100))
        # No ingest yet: the broker PUBACKs every batch, and drops it (nobody subscribed).
        await wait_for(lambda: uplink.stats.batches_pubacked >= 3)
        assert await uplink.outbox.depth() == len(seqs)  # a PUBACK deletes nothing
        broker.kill()  # crash, persistence off: whatever it held is gone
        broker.start()
        ingest = FakeIngest(broker).start()
        try:
            await wait_for(lambda: set(seqs) <= ingest.received, 15)
            await wait_for(lambda: uplink.in_flight == 0)
            assert await uplink.outbox.depth() == 0
        finally:
            ingest.stop()


async def test_late_subscriber_sees_retained_andon_and_online(
    tmp_path: Path, broker: Mosquitto
) -> None:
    andon = AndonPublisher(SITE, GW)
    status = status_topic(SITE, GW)
    board = andon_topic(SITE, GW, "L1")
    live = Watcher(broker, alerts_topic(SITE, GW, "L1"))
    try:
        async with running_store(tmp_path) as store:
            feed = AlertFeed(store, site=SITE, gateway=GW)
            async with running_uplink(store, broker, andon=andon, alerts=feed) as uplink:
                await wait_for(lambda: uplink.state.value == "up")
                andon.update("L1", "red", [{"alert_id": "t1", "severity": "critical"}])
                (seq,) = await commit(store, [transition(0, store.clock.wall_us())])
                await wait_for(lambda: live.last(alerts_topic(SITE, GW, "L1")) is not None)
                assert json.loads(live.last(alerts_topic(SITE, GW, "L1")) or b"")["seq"] == seq
                message = live.messages[-1]
                expiry = message.properties.MessageExpiryInterval  # type: ignore[union-attr]
                assert 3500 < expiry <= 3600

                late = Watcher(broker, board, status)
                await wait_for(
                    lambda: late.last(board) is not None and late.last(status) == b"online"
                )
                assert json.loads(late.last(board) or b"")["state"] == "red"
                assert all(m.retain for m in late.messages)
                late.stop()

                # The broker restarts empty (persistence off): the red must not be lost...
                await restart_and_expect(broker, uplink, board, status, "red")
                # ...and a red cleared during an outage must not stay red.
                broker.kill()
                await wait_for(lambda: uplink.state.value == "down")
                andon.update("L1", "green")
                await restart_and_expect(broker, uplink, board, status, "green")
        # A clean stop says so.
        after = Watcher(broker, status)
        await wait_for(lambda: after.last(status) == b"offline")
        after.stop()
    finally:
        live.stop()


async def restart_and_expect(
    broker: Mosquitto, uplink: MqttUplink, board: str, status: str, state: str
) -> None:
    broker.kill()
    await wait_for(lambda: uplink.state.value == "down")
    broker.start()
    await wait_for(lambda: uplink.state.value == "up")
    watcher = Watcher(broker, board, status)
    try:
        await wait_for(lambda: watcher.last(board) is not None)
        await wait_for(lambda: watcher.last(status) == b"online")
        assert json.loads(watcher.last(board) or b"")["state"] == state
    finally:
        watcher.stop()


CHILD = """
import asyncio, sys
from pathlib import Path
from gateway.core.clock import SystemClock
from gateway.config import StoreSection
from gateway.store import Store
from sync.mqtt_uplink import MqttUplink

async def main() -> None:
    config = StoreSection(path=Path(sys.argv[2]), commit_interval_ms=20)
    async with Store(config, SystemClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        uplink = MqttUplink(store, host="127.0.0.1", port=int(sys.argv[1]), site=sys.argv[3],
                            gateway=sys.argv[4], keepalive_s=5)
        await uplink.run()

asyncio.run(main())
"""


async def test_killed_gateway_shows_offline_through_the_last_will(
    tmp_path: Path, broker: Mosquitto
) -> None:
    status = status_topic(SITE, GW)
    watcher = Watcher(broker, status)
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", CHILD, str(broker.port), str(tmp_path / "child.db"), SITE, GW),
        cwd=REPO,
    )
    try:
        await wait_for(lambda: watcher.last(status) == b"online", 15)
        child.kill()  # no DISCONNECT: the broker publishes the will
        await asyncio.wait_for(child.wait(), 5)
        await wait_for(lambda: watcher.last(status) == b"offline", 5)
        late = Watcher(broker, status)
        await wait_for(lambda: late.last(status) == b"offline")  # retained
        late.stop()
    finally:
        if child.returncode is None:
            child.kill()
            await asyncio.wait_for(child.wait(), 5)
        watcher.stop()


async def test_new_alert_overtakes_a_telemetry_backlog(tmp_path: Path, broker: Mosquitto) -> None:
    ingest = FakeIngest(broker, ack_delay_s=0.02).start()
    try:
        async with running_store(tmp_path) as store:
            backlog = await commit(store, [telemetry(i) for i in range(3000)])
            async with running_uplink(store, broker) as uplink:
                await wait_for(lambda: len(ingest.batches) >= 2)
                (urgent,) = await commit(store, [alert("fresh")])
                queued_at = len(ingest.batches)
                await wait_for(lambda: urgent in ingest.received)
                position = next(i for i, (_, seqs) in enumerate(ingest.batches) if urgent in seqs)
                telemetry_before = sum(len(s) for _, s in ingest.batches[:position])
                assert telemetry_before < len(backlog)  # the backlog was not drained first
                assert position <= queued_at + uplink.window + uplink.alert_slots
                await wait_for(lambda: set(backlog) <= ingest.received, 15)
                await wait_for(lambda: uplink.in_flight == 0)
                assert await uplink.outbox.depth() == 0
    finally:
        ingest.stop()


def outbox_drained(uplink: MqttUplink) -> Callable[[], Awaitable[bool]]:
    async def drained() -> bool:
        return uplink.in_flight == 0 and await uplink.outbox.depth() == 0

    return drained


async def test_acl_refusal_and_ingest_conflicts_are_quarantined_not_retried(
    tmp_path: Path,
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\ntopic deny lineside/v1/+/gateways/+/data/label_scans\n")
    broker = Mosquitto(tmp_path / "broker", extra_config=f"acl_file {acl}")
    broker.start()
    try:
        async with running_store(tmp_path) as store:
            packs = await commit(store, [pack(i) for i in range(10)])
            scans = await commit(
                store, [LabelScan(ts_us=i, line="L1", device="s", raw=b"x") for i in range(3)]
            )
            ingest = FakeIngest(broker, conflicts={packs[3]: "same sequence, different payload"})
            ingest.start()
            try:
                async with running_uplink(store, broker) as uplink:
                    outbox = uplink.outbox
                    await wait_for(lambda: uplink.stats.records_quarantined == 4)
                    # The uplink's own alerts about them (one per quarantine: the refused
                    # publish and the conflict) reach the warehouse ...
                    await wait_for(
                        lambda: (
                            sum(d.get("rule") == "sync_quarantined" for d in ingest.data.values())
                            == 2
                        ),
                        what="both sync_quarantined alerts in the warehouse",
                    )
                    # ... and then nothing is left to send.
                    await wait_for(
                        outbox_drained(uplink), what="an empty outbox, nothing in flight"
                    )
                    # Quarantined rows have left the outbox, so nothing can be retried now.
                    assert uplink.stats.puback_failures == 1  # refused once, never retried
                    quarantined = {seq: reason for seq, _, reason in await outbox.quarantined()}
                    assert set(quarantined) == {*scans, packs[3]}
                    assert "0x87" in quarantined[scans[0]]
                    assert "different payload" in quarantined[packs[3]]
                    assert set(packs) - {packs[3]} <= ingest.received
                    assert not set(scans) & set(ingest.counts)
            finally:
                ingest.stop()
    finally:
        broker.kill()


def seen_seqs(watcher: Watcher) -> list[int]:
    """The alert seqs a watcher got, in arrival order."""
    return [json.loads(m.payload)["seq"] for m in list(watcher.messages)]


async def test_stored_alerts_reach_their_topics_and_a_refused_one_is_passed_over(
    tmp_path: Path,
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite #\ntopic deny lineside/v1/+/gateways/+/alerts/L2\n")
    broker = Mosquitto(tmp_path / "broker", extra_config=f"acl_file {acl}")
    broker.start()
    lines = ["L1", "L2", None]
    watcher = Watcher(broker, alerts_topic(SITE, GW, "+"), gateway_alerts_topic(SITE, GW))
    try:
        async with running_store(tmp_path) as store:
            now = store.clock.wall_us()
            seqs = await commit(store, [transition(i, now, line=lines[i % 3]) for i in range(30)])
            refused = seqs[1::3]
            feed = AlertFeed(store, site=SITE, gateway=GW)
            async with running_uplink(store, broker, alerts=feed):
                await wait_for(lambda: feed.cursor == seqs[-1], what="every transition settled")
                assert feed.stats.refused == len(refused)
                expected = [seq for seq in seqs if seq not in refused]
                await wait_for(lambda: seen_seqs(watcher) == expected, what="all others, in order")
                topics = {m.topic for m in watcher.messages}
                assert topics == {alerts_topic(SITE, GW, "L1"), gateway_alerts_topic(SITE, GW)}
            assert await store.get_meta(CURSOR_KEY) == str(seqs[-1])  # saved at the stop
            # The next start publishes only what is new.
            more = await commit(store, [transition(i, now) for i in range(4)])
            async with running_uplink(
                store, broker, alerts=AlertFeed(store, site=SITE, gateway=GW)
            ):
                await wait_for(lambda: seen_seqs(watcher) == expected + more)
    finally:
        watcher.stop()
        broker.kill()


async def test_a_full_paho_queue_holds_alerts_back_and_loses_none(
    tmp_path: Path, broker: Mosquitto
) -> None:
    watcher = Watcher(broker, alerts_topic(SITE, GW, "L1"))
    try:
        async with running_store(tmp_path) as store:
            feed = AlertFeed(
                store, site=SITE, gateway=GW, backoff=Backoff(initial=0.02, maximum=0.1)
            )
            # paho takes two messages at a time: "online", batches and alerts compete for them.
            async with running_uplink(store, broker, alerts=feed, max_queued=2) as uplink:
                await wait_for(lambda: uplink.state.value == "up")
                seqs: list[int] = []
                for burst in range(4):
                    now = store.clock.wall_us()
                    seqs += await commit(
                        store, [transition(burst * 25 + i, now) for i in range(25)]
                    )
                await wait_for(lambda: seen_seqs(watcher) == seqs, 30, "every transition, in order")
                assert feed.stats.not_accepted > 0  # the queue was full, and nothing was lost
    finally:
        watcher.stop()


async def test_the_byte_cut_is_the_same_whether_the_batch_is_sized_at_once_or_record_by_record(
    tmp_path: Path,
) -> None:
    """A batch is sized in one go when everything read fits (and keeps that text to send), or
    record by record when not; both count a record as its data's JSON + 20 bytes, so a limit
    of exactly the records' total takes them all and one byte less takes one fewer."""
    async with running_store(tmp_path, ManualClock()) as store:
        packs = await commit(store, [pack(i) for i in range(20)])
        outbox = Outbox(store, gateway=GW, site=SITE)
        whole = await outbox.next_batch(20, 1_000_000)
        assert whole is not None
        assert batch_seqs(whole) == tuple(packs)
        total = sum(len(json.dumps(data, separators=(",", ":"))) + 20 for _, data in whole.records)

        exact = await outbox.next_batch(20, total)
        assert exact is not None
        assert batch_seqs(exact) == tuple(packs)
        assert exact.wire_records == wire_records(exact.records)

        short = await outbox.next_batch(20, total - 1)
        assert short is not None
        assert batch_seqs(short) == tuple(packs[:19])
        assert short.wire_records is None  # cut record by record: encoded when sent
        assert decode_batch(encode_batch(short)).records == short.records
