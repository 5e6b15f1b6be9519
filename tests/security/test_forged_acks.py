"""Issue 18: a forged ack deletes nothing and quarantines nothing.

With the ingest stopped, a client of the broker publishes acks in the gateway's name:
for a batch that is not in flight (listing every sequence number), the same retained, with
a forged ``conflicts`` list, and a flood of distinct batch ids. The uplink is real (its
store, its outbox, a real mosquitto). None of it may touch the outbox: every record is still
there, none quarantined, no quarantine alert; once the real ingest comes back, every record
lands exactly once.
"""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from sync.outbox import Outbox
from sync.protocol import Ack, ack_topic, encode_ack
from tests.support.mosquitto import Mosquitto
from tests.support.uplink_harness import (
    GW,
    SITE,
    FakeIngest,
    commit,
    pack,
    running_store,
    running_uplink,
)
from tests.support.waiting import wait_for

RECORDS = 248


def forger(broker: Mosquitto) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="forger", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect(broker.host, broker.port, keepalive=5)
    client.loop_start()
    return client


async def test_forged_acks_delete_and_quarantine_nothing(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    try:
        await run_forgeries(tmp_path, broker)
    finally:
        broker.kill()


async def run_forgeries(tmp_path: Path, broker: Mosquitto) -> None:
    async with running_store(tmp_path) as store:
        seqs = await commit(store, [pack(i) for i in range(RECORDS)])
        outbox = Outbox(store, gateway=GW, site=SITE)
        async with running_uplink(store, broker) as uplink:
            await wait_for(lambda: uplink.stats.batches_sent > 0, 10, "batches in flight")
            client = forger(broker)
            try:
                topic = ack_topic(SITE, GW)
                everything = tuple(range(1, 5000))
                forged = [
                    (Ack(gateway=GW, batch_id="nope", committed=everything), False),
                    (Ack(gateway=GW, batch_id="nope-retained", committed=everything), True),
                    (
                        Ack(
                            gateway=GW,
                            batch_id="nope-conflicts",
                            committed=(),
                            conflicts=tuple((s, "forged") for s in seqs),
                        ),
                        False,
                    ),
                    *(
                        (
                            Ack(
                                gateway=GW,
                                batch_id=f"flood-{i}",
                                committed=(),
                                conflicts=((seqs[0], "x"),),
                            ),
                            False,
                        )
                        for i in range(100)
                    ),
                ]
                for ack, retain in forged:
                    client.publish(topic, encode_ack(ack), qos=1, retain=retain).wait_for_publish(5)
                await wait_for(
                    lambda: uplink.stats.bad_acks >= len(forged), 10, "every forged ack seen"
                )
            finally:
                client.publish(ack_topic(SITE, GW), b"", qos=1, retain=True).wait_for_publish(5)
                client.disconnect()
                client.loop_stop()
            assert await outbox.depth() == RECORDS, "a forged ack deleted records"
            assert uplink.stats.records_acked == 0
            assert uplink.stats.records_quarantined == 0
            quarantine_alerts = await store.fetchall(
                "SELECT count(*) FROM alerts WHERE rule = 'sync_quarantined'"
            )
            assert quarantine_alerts == [(0,)]

            ingest = FakeIngest(broker).start()
            try:
                await wait_for(lambda: ingest.received >= set(seqs), 30, "every record delivered")
                await wait_for(lambda: uplink.in_flight == 0, 10, "every batch acknowledged")
                assert await outbox.depth() == 0
            finally:
                ingest.stop()
    assert ingest.received == set(seqs)
    assert ingest.duplicates >= 0
