"""MQTT in a process holding more than 1,024 descriptors: the ingest and the gateway's uplink
still connect, and every record reaches the warehouse.

paho's own loop waits with ``select()``, which cannot watch a descriptor numbered 1024 or
above; its clients then never sent a CONNECT and retried silently for ever (seen when a test
process had leaked descriptors: the ingest's broker log had 64 connections and no CONNECT).
Here every descriptor below 1100 is taken before either client opens a socket, so each of
their sockets is numbered above 1023, against a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from gateway.config import load_config
from gateway.core.records import PackEvent
from gateway.service import run_gateway
from sync.ingest import IngestService, IngestSettings
from tests.support.configs import minimal_config_text
from tests.support.descriptors import low_descriptors_taken
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for

PACKS = 50


async def test_ingest_and_uplink_connect_with_every_socket_above_1023(
    tmp_path: Path, broker: Mosquitto
) -> None:
    warehouse_path = tmp_path / "warehouse.db"
    db_path = tmp_path / "gw.db"
    config_path = tmp_path / "gw.toml"
    config_path.write_text(
        minimal_config_text(db_path, commit_interval_ms=20)
        + f'[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    config = load_config(config_path)
    with low_descriptors_taken():
        ingest = IngestService(
            IngestSettings(
                mqtt_host=broker.host,
                mqtt_port=broker.port,
                http_enabled=False,
                sqlite_path=warehouse_path,
            )
        )
        ingest_task = asyncio.create_task(ingest.run())
        stop = asyncio.Event()
        started: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        gateway = asyncio.create_task(run_gateway(config, stop=stop, on_ready=started.set_result))
        try:
            await asyncio.wait_for(ingest.ready.wait(), 15)
            consumer = ingest.consumer
            assert consumer is not None
            await wait_for(lambda: consumer.connected, timeout=15, what="the ingest's CONNACK")
            sock = consumer._client.socket()
            assert sock is not None
            assert sock.fileno() > 1023
            store = await asyncio.wait_for(started, 15)
            await asyncio.gather(
                *(
                    store.submit(  # type: ignore[attr-defined]
                        PackEvent(ts_us=1_000_000 + i, line="L1", device="cw1", net_g=240.0)
                    )
                    for i in range(PACKS)
                )
            )

            async def drained() -> bool:
                rows = await store.fetchall("SELECT count(*) FROM outbox")  # type: ignore[attr-defined]
                return int(rows[0][0]) == 0

            await wait_for(drained, timeout=30, what="every record acknowledged")
        finally:
            stop.set()
            await asyncio.wait_for(gateway, 15)
            ingest_task.cancel()
            await asyncio.gather(ingest_task, return_exceptions=True)
    with contextlib.closing(sqlite3.connect(warehouse_path)) as warehouse:
        (packs,) = warehouse.execute(
            "SELECT count(*) FROM records WHERE stream = 'packs'"
        ).fetchone()
    assert packs == PACKS
