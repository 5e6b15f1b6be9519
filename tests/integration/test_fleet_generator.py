"""The fleet generator at 200 gateways in one process: they start, all deliver, and stop clean.

Two hundred real stores and MQTT uplinks need about 1,400 descriptors; paho's network loop
cannot watch one numbered 1024 or above, so the generator opens its stores above the numbers
the sockets need (bench/fleet_gateways.py). Proven here against mosquitto and one real
``lineside ingest`` into PostgreSQL: every gateway delivers (every record in the warehouse
once, with the payload hash its store gives), and after the fleet stops no paho thread is
left and its descriptors are all closed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from pathlib import Path

import pytest

from bench.fleet_gateways import Fleet, FleetSpec
from bench.fleet_records import expected_streams
from tests.support.fleet_ingest import FleetIngest, write_tokens_file
from tests.support.fleet_warehouse import assert_fleet_stored
from tests.support.mosquitto import Mosquitto
from tests.support.pg_database import fresh_database

pytestmark = pytest.mark.slow

GATEWAYS = 200
RECORDS = 5


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def paho_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("paho-mqtt-client-")]


async def test_two_hundred_gateways_start_deliver_and_stop_cleanly(tmp_path: Path) -> None:
    with (
        fresh_database("fleet_generator") as dsn,
        Mosquitto(tmp_path / "broker") as broker,
    ):
        ingest = FleetIngest(
            "ingest-1",
            tmp_path,
            dsn,
            tokens=write_tokens_file(tmp_path / "tokens", {}),
            broker=broker,
        )
        try:
            await ingest.ready()
            descriptors_before = open_descriptors()
            spec = FleetSpec(gateways=GATEWAYS, sites=10, broker_port=broker.port)
            async with Fleet(spec, tmp_path / "fleet") as fleet:
                await fleet.produce(RECORDS)
                drained = await fleet.wait_drained(timeout_s=40)
                assert drained, f"{await fleet.outbox_depth()} records left in the outboxes"
                committed = await fleet.committed()
            assert len(committed) == GATEWAYS
            assert all(len(seqs) == RECORDS for seqs in committed.values())
            await assert_fleet_stored(dsn, committed, expected_streams(RECORDS))
            assert fleet.delivered() == GATEWAYS * RECORDS
        finally:
            ingest.end()

    assert paho_threads() == []
    del fleet  # the clients' wake-up socket pairs close with them
    gc.collect()
    await asyncio.sleep(0)
    assert open_descriptors() <= descriptors_before
