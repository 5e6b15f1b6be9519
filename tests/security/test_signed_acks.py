"""Issue 18: acks are signed per gateway, so they cannot be forged even on a misconfigured
broker.

The broker here is anonymous and has no ACL (the shipped configuration is *not* used): any
client may read the data topics and publish on a gateway's ack topic. The gateway has an ack
key; the attacker reads a batch in flight on the data topic, copies its batch id and
sequence numbers, and acknowledges (or refuses) all of them, unsigned or signed with a key of
its own. Nothing is deleted or quarantined. The real ingest, with the gateway's key, then
acknowledges everything, and every record lands exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sync.ingest import IngestService, IngestSettings
from sync.ingest.ack_keys import AckKeyFileError, AckKeys, parse_ack_keys
from sync.outbox import Outbox
from sync.protocol import (
    ACK_SIGNATURE_PROPERTY,
    DATA_SUBSCRIPTION,
    Ack,
    Batch,
    ack_topic,
    decode_batch,
    encode_ack,
    sign_ack,
    verify_ack,
)
from tests.security.conftest import Ingest
from tests.support.mosquitto import Mosquitto
from tests.support.uplink_harness import GW, SITE, commit, pack, running_store, running_uplink
from tests.support.waiting import wait_for, wait_for_sync

KEY = b"hull-gw1-ack-key-0123456789abcdef"
"""The victim gateway's ack key (the ingest has the same)."""
ATTACKER_KEY = b"attacker-made-up-key-0123456789"
RECORDS = 120


@pytest.fixture
def open_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A misconfigured broker: anonymous clients, no ACL."""
    with Mosquitto(tmp_path / "broker") as broker:
        yield broker


def ingest_settings(
    broker: Mosquitto, warehouse: Path, keys: AckKeys | None, *, port: int | None = None
) -> IngestSettings:
    """A test ingest's settings: MQTT only, quick reconnects, one fixed client id."""
    return IngestSettings(
        mqtt_host=broker.host,
        mqtt_port=port or broker.port,
        client_id="lineside-ingest-test",
        reconnect_initial_s=0.05,
        reconnect_max_s=0.3,
        http_enabled=False,
        sqlite_path=warehouse,
        ack_keys=keys,
    )


@contextlib.asynccontextmanager
async def real_ingest(
    broker: Mosquitto, warehouse: Path, keys: AckKeys | None, *, port: int | None = None
) -> AsyncIterator[Ingest]:
    """The central ingest on ``broker`` (or on a relay to it at ``port``)."""
    service = IngestService(ingest_settings(broker, warehouse, keys, port=port))
    task = asyncio.create_task(service.run())
    consumer = service.consumer
    assert consumer is not None
    await wait_for(lambda: task.done() or consumer.subscribed.is_set(), 15, "ingest subscribed")
    if task.done():
        task.result()
    try:
        yield Ingest(service, warehouse)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Eavesdropper:
    """An anonymous client reading every batch on the data topics, and publishing acks."""

    def __init__(self, broker: Mosquitto) -> None:
        self._lock = threading.Lock()
        self.batches: dict[str, Batch] = {}
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="eavesdropper",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        wait_for_sync(self._subscribed.is_set, 5, "eavesdropper subscribed")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(DATA_SUBSCRIPTION, qos=1)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        batch = decode_batch(bytes(message.payload))
        with self._lock:
            self.batches[batch.batch_id] = batch

    def seen(self) -> dict[str, Batch]:
        with self._lock:
            return dict(self.batches)

    def ack(self, ack: Ack, *, signature: str | None = None) -> None:
        properties = None
        if signature is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = (ACK_SIGNATURE_PROPERTY, signature)
        payload = encode_ack(ack)
        info = self.client.publish(ack_topic(SITE, GW), payload, qos=1, properties=properties)
        info.wait_for_publish(5)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def test_signatures_cover_the_payload_and_the_key() -> None:
    payload = encode_ack(Ack(gateway=GW, batch_id="b", committed=(1, 2, 3)))
    signature = sign_ack(payload, KEY)
    assert signature.startswith("hmac-sha256:")
    assert verify_ack(payload, signature, KEY)
    assert not verify_ack(payload, signature, ATTACKER_KEY)
    assert not verify_ack(payload, None, KEY)
    assert not verify_ack(payload, signature.upper(), KEY)
    other = encode_ack(Ack(gateway=GW, batch_id="b", committed=(1, 2, 3, 4)))
    assert not verify_ack(other, signature, KEY)
    assert not verify_ack(payload, "", KEY)


def test_ack_keys_file_is_strict() -> None:
    keys = parse_ack_keys(f"# comment\n\n{GW}:{KEY.decode()}\n")
    assert keys == {GW: KEY}
    for bad in (f"{GW}:short", f"not a gateway:{KEY.decode()}", f"{GW}:{KEY.decode()}\n" * 2):
        with pytest.raises(AckKeyFileError):
            parse_ack_keys(bad)


async def test_forged_acks_for_a_batch_in_flight_delete_nothing(
    tmp_path: Path, open_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sync.mqtt_uplink")
    eavesdropper = Eavesdropper(open_broker)
    try:
        async with running_store(tmp_path) as store:
            seqs = await commit(store, [pack(i) for i in range(RECORDS)])
            outbox = Outbox(store, gateway=GW, site=SITE)
            async with running_uplink(store, open_broker, ack_key=KEY) as uplink:
                await wait_for(lambda: bool(eavesdropper.seen()), 10, "a batch on the data topic")
                await wait_for(lambda: uplink.in_flight > 0, 10, "batches in flight")
                forged = 0
                for batch in eavesdropper.seen().values():
                    batch_seqs = tuple(seq for seq, _ in batch.records)
                    commit_all = Ack(gateway=GW, batch_id=batch.batch_id, committed=batch_seqs)
                    refuse_all = Ack(
                        gateway=GW,
                        batch_id=batch.batch_id,
                        committed=(),
                        conflicts=tuple((seq, "forged") for seq in batch_seqs),
                    )
                    for ack in (commit_all, refuse_all):
                        eavesdropper.ack(ack)  # unsigned
                        eavesdropper.ack(ack, signature=sign_ack(encode_ack(ack), ATTACKER_KEY))
                        eavesdropper.ack(ack, signature="hmac-sha256:" + "0" * 64)
                        forged += 3
                await wait_for(
                    lambda: uplink.stats.unauthenticated_acks >= forged, 10, "forged acks seen"
                )
                assert await outbox.depth() == RECORDS, "a forged ack deleted records"
                assert uplink.stats.records_acked == 0
                assert uplink.stats.records_quarantined == 0
                assert await store.fetchall(
                    "SELECT count(*) FROM alerts WHERE rule = 'sync_quarantined'"
                ) == [(0,)]
                # Counted every time, logged rate-limited (once a minute).
                refusals = [r for r in caplog.records if "ack on" in r.getMessage()]
                assert 1 <= len(refusals) < forged
                assert not any("not authenticated" in r.getMessage() for r in caplog.records)

                async with real_ingest(
                    open_broker, tmp_path / "warehouse.db", AckKeys(keys={GW: KEY})
                ) as ingest:
                    await wait_for(_empty(outbox), 30, "every record acknowledged")
                    await wait_for(lambda: uplink.in_flight == 0, 10, "nothing in flight")
                    stored = ingest.records()
                    consumer = ingest.service.consumer
                    assert consumer is not None
                    assert consumer.stats.acks_signed > 0
                    assert consumer.stats.acks_unsigned == 0
            assert uplink.stats.records_acked == RECORDS
            assert uplink.stats.records_quarantined == 0
    finally:
        eavesdropper.close()
    assert [seq for _, seq, _ in stored] == sorted(seqs), "every record exactly once"
    assert {gateway for gateway, _, _ in stored} == {GW}


async def test_unsigned_acks_of_an_ingest_without_the_key_are_refused(
    tmp_path: Path, open_broker: Mosquitto
) -> None:
    async with running_store(tmp_path) as store:
        await commit(store, [pack(i) for i in range(10)])
        outbox = Outbox(store, gateway=GW, site=SITE)
        async with running_uplink(store, open_broker, ack_key=KEY) as uplink:
            # The ingest has keys, but none for this gateway: its acks go out unsigned.
            keys = AckKeys(keys={"hull-gw9": ATTACKER_KEY})
            async with real_ingest(open_broker, tmp_path / "warehouse.db", keys) as ingest:
                consumer = ingest.service.consumer
                assert consumer is not None
                await wait_for(lambda: consumer.stats.acks_unsigned > 0, 10, "an unsigned ack")
                await wait_for(lambda: uplink.stats.unauthenticated_acks > 0, 10, "the ack refused")
                assert len(ingest.records()) == 10  # the warehouse has them ...
            assert await outbox.depth() == 10  # ... but the gateway keeps them until a signed ack
            assert uplink.stats.records_acked == 0


async def test_without_a_key_acks_are_not_authenticated_and_say_so(
    tmp_path: Path, open_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sync.mqtt_uplink")
    async with running_store(tmp_path) as store:
        await commit(store, [pack(i) for i in range(10)])
        outbox = Outbox(store, gateway=GW, site=SITE)
        async with (
            running_uplink(store, open_broker) as uplink,
            real_ingest(open_broker, tmp_path / "warehouse.db", AckKeys(keys={GW: KEY})),
        ):
            await wait_for(_empty(outbox), 20, "every record acknowledged")
            assert uplink.stats.unauthenticated_acks == 0
    warnings = [r for r in caplog.records if "acks are not authenticated" in r.getMessage()]
    assert len(warnings) == 1


def _empty(outbox: Outbox) -> Any:
    async def check() -> bool:
        return await outbox.depth() == 0

    return check
