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
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.records import (
    LabelScan,
)
from sync.andon import AndonPublisher, andon_payload
from sync.mqtt_uplink import MqttUplink
from sync.outbox import Outbox, batch_seqs
from sync.protocol import (
    alerts_topic,
    andon_topic,
    status_topic,
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


def test_andon_state_is_latest_wins_and_stale_alerts_expire() -> None:
    clock = ManualClock()
    andon = AndonPublisher(SITE, GW, clock=clock, alert_expiry_s=3600)
    assert andon.update("L1", "red", [{"alert_id": "t1", "severity": "critical"}])
    assert not andon.update("L1", "red", [{"alert_id": "t1", "severity": "critical"}])
    assert andon.update("L1", "green")
    (message,) = andon.retained_messages(everything=False)
    assert message.retain
    assert message.topic == andon_topic(SITE, GW, "L1")
    assert json.loads(message.payload)["state"] == "green"
    assert andon.retained_messages(everything=False) == []
    assert len(andon.retained_messages(everything=True)) == 1  # re-published on reconnect

    andon.alert("L1", {"alert_id": "old", "state": "raised"})
    clock.advance(3000)
    andon.alert("L1", {"alert_id": "new", "state": "raised"})
    clock.advance(700)
    (fresh,) = andon.alert_messages()
    assert json.loads(fresh.payload)["alert_id"] == "new"
    assert fresh.expiry_s == 2900  # counted from the transition, not from the publish
    assert andon.stats.alerts_expired == 1
    assert json.loads(andon_payload("L1", "amber", [], 7)) == {
        "v": 1,
        "line": "L1",
        "state": "amber",
        "alerts": [],
        "updated_us": 7,
    }


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
        async with (
            running_store(tmp_path) as store,
            running_uplink(store, broker, andon=andon) as uplink,
        ):
            await wait_for(lambda: uplink.state.value == "up")
            andon.update("L1", "red", [{"alert_id": "t1", "severity": "critical"}])
            andon.alert("L1", {"alert_id": "t1", "state": "raised"})
            await wait_for(lambda: live.last(alerts_topic(SITE, GW, "L1")) is not None)
            expiry = live.messages[-1].properties.MessageExpiryInterval  # type: ignore[union-attr]
            assert 3500 < expiry <= 3600

            late = Watcher(broker, board, status)
            await wait_for(lambda: late.last(board) is not None and late.last(status) == b"online")
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
from gateway.clock import SystemClock
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
