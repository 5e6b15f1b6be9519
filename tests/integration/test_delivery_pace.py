"""The delivery pace against a real mosquitto and the real ingest (SQLite warehouse).

On the default settings a backlog is carried in batches that grow past the sizes the pace
starts from, and every record still lands exactly once. Over a link whose acks come slower
than a quarter of the ack timeout, the pace never leaves its start: no more queued ahead of
an alert than with the fixed sizes of before. A broker that announces a Maximum Packet Size
below the batch size gets batches cut to fit, on one connection (a publish above it would
end the connection, and the same batch sent again would end the next one); a single record
too large for it is quarantined, not sent.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from gateway.core.link import LinkState
from gateway.core.records import DeviceEvent, PackEvent, Record
from sync.delivery_pace import START_BYTES, START_RECORDS, START_WINDOW, PaceLimits
from sync.ingest import IngestService
from sync.mqtt_uplink import MqttUplink
from tests.support.faultproxy import FaultProxy
from tests.support.mosquitto import Mosquitto
from tests.support.sync_harness import check_conservation, ingest_settings, start_ingest, stop_task
from tests.support.uplink_harness import commit, running_store, running_uplink
from tests.support.waiting import wait_for

GATEWAY = "gw-pace"
START = PaceLimits(START_RECORDS, START_BYTES, START_WINDOW)


def _packs(count: int) -> list[Record]:
    return [
        PackEvent(ts_us=1_000_000 + i, line="L1", device="cw1", net_g=240 + i % 13)
        for i in range(count)
    ]


def _noise(count: int, hex_chars: int) -> list[Record]:
    """Device events carrying random hex: about half of it survives compression."""
    return [
        DeviceEvent(
            ts_us=1_000_000 + i,
            device="cw1",
            line="L1",
            kind="diagnostic",
            detail={"dump": os.urandom(hex_chars // 2).hex()},
        )
        for i in range(count)
    ]


async def _drain(
    tmp_path: Path,
    broker: Mosquitto,
    records: list[Record],
    port: int | None = None,
    *,
    quarantined: int = 0,
    **options: float,
) -> tuple[list[PaceLimits], int, MqttUplink]:
    """Drain a backlog; every pace the uplink used, the warehouse's batch count, the uplink."""
    db_path, warehouse_path = tmp_path / "lineside.db", tmp_path / "warehouse.db"
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    ingest_task = await start_ingest(ingest)
    paces: list[PaceLimits] = []
    try:
        async with running_store(tmp_path) as store:
            await commit(store, records)
            # The pace's own sizes and timeouts, not the harness's small fixed ones.
            settings = {"max_records": 2000, "ack_timeout_s": 10.0, "ack_timeout_max_s": 120.0}
            async with running_uplink(
                store,
                broker,
                port=port or broker.port,
                site="test-site",
                gateway=GATEWAY,
                keepalive_s=10,
                **{**settings, **options},
            ) as uplink:
                await wait_for(lambda: uplink.state is LinkState.UP, 15)

                async def drained() -> bool:
                    limits = uplink.batches.pace.limits
                    if not paces or paces[-1] != limits:
                        paces.append(limits)
                    return await uplink.outbox.depth() == 0

                await wait_for(drained, 120, interval=0.005)
        assert ingest.warehouse is not None
        batches = ingest.warehouse.stats.batches
    finally:
        await stop_task(ingest_task)
    if quarantined:
        _check_quarantine(db_path, warehouse_path, len(records), quarantined)
    else:
        assert check_conservation(db_path, GATEWAY, warehouse_path) == len(records)
    return paces, batches, uplink


def _check_quarantine(db_path: Path, warehouse_path: Path, committed: int, count: int) -> None:
    """``count`` records quarantined for the broker's limit, all the others in the warehouse."""
    edge = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    warehouse = sqlite3.connect(f"file:{warehouse_path}?mode=ro", uri=True)
    try:
        reasons = [row[0] for row in edge.execute("SELECT reason FROM outbox_quarantine")]
        assert len(reasons) == count, reasons
        assert all("above the broker's packet limit" in reason for reason in reasons), reasons
        assert edge.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
        stored = warehouse.execute(
            "SELECT count(*) FROM records WHERE gateway = ? AND stream = 'device_events'",
            (GATEWAY,),
        ).fetchone()[0]
        assert stored == committed - count
    finally:
        edge.close()
        warehouse.close()


async def test_a_backlog_on_the_defaults_goes_in_batches_larger_than_the_start(
    tmp_path: Path, broker: Mosquitto
) -> None:
    backlog = 40_000
    paces, batches, _ = await _drain(tmp_path, broker, _packs(backlog))
    print(f"paces {paces}, {batches} batches")
    assert paces[0] == START
    assert max(p.records for p in paces) > START_RECORDS
    # Fixed 500-record batches would have taken 80.
    assert batches < backlog // START_RECORDS


async def test_acks_slower_than_a_quarter_of_the_ack_timeout_keep_the_start(
    tmp_path: Path, broker: Mosquitto
) -> None:
    async with FaultProxy(broker.port) as proxy:
        proxy.latency(0.2)  # each way: every ack comes 0.4 s or more after its publish
        paces, _, _ = await _drain(
            tmp_path, broker, _packs(3_000), port=proxy.port, ack_timeout_s=1.2
        )
    print(f"paces {paces}")
    assert paces == [START]


async def test_batches_are_cut_to_the_packet_size_the_broker_announces(tmp_path: Path) -> None:
    limit = 64 * 1024
    with Mosquitto(tmp_path / "broker", extra_config=f"max_packet_size {limit}") as broker:
        # 3,000 records of about 700 bytes: at the default 1 MiB, 500-record batches would
        # compress to about 180 KiB each, far above the broker's limit.
        paces, batches, uplink = await _drain(tmp_path, broker, _noise(3_000, 600))
    print(f"paces {paces}, {batches} batches, {uplink.stats.connects} connection(s)")
    assert uplink.stats.connects == 1
    assert uplink.batches.max_packet == limit
    assert all(pace.bytes <= limit for pace in paces)


async def test_a_record_too_large_for_the_broker_is_quarantined_not_sent_forever(
    tmp_path: Path,
) -> None:
    limit = 16 * 1024
    records = [*_noise(20, 200), *_noise(1, 60_000), *_noise(20, 200)]
    with Mosquitto(tmp_path / "broker", extra_config=f"max_packet_size {limit}") as broker:
        _, _, uplink = await _drain(tmp_path, broker, records, quarantined=1)
    assert uplink.stats.connects == 1
    assert uplink.stats.records_quarantined == 1
