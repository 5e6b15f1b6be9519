"""Three MQTT ingest instances share twenty gateways, through an ingest crash and a broker crash.

Real parties: one mosquitto with persistence running the shipped configuration and ACL (each
gateway logs in as itself, each ingest instance as ``lineside-ingest-N``), three ``lineside
ingest`` processes in one shared subscription group (``--share-group fleet``) signing their
acks with each gateway's key, into one fresh PostgreSQL database, and twenty gateways of the
fleet generator (bench/fleet_gateways.py: each its own store, outbox and the real MQTT uplink)
in this process.

One instance is SIGKILLed in the middle of the drain (the warehouse holds a tenth or more);
the batches it had taken and not acknowledged are sent again by their gateways after the ack
timeout and land on the other two. Later, while more records are delivered, the broker is
SIGKILLed and started again on the same port. Then (docs/fleet-load.md): every record each
gateway committed is in the warehouse exactly once with the same payload hash, the typed fact
rows match, each of the three instances committed a share of the batches, and every outbox
is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from bench.fleet_credentials import fleet_credentials, write_ack_keys
from bench.fleet_gateways import Fleet, FleetSpec
from bench.fleet_records import expected_streams
from tests.support.fleet_ingest import (
    FleetIngest,
    batches_per_instance,
    produce_and_kill,
    write_tokens_file,
)
from tests.support.fleet_warehouse import Timeline, assert_fleet_stored, stored_records
from tests.support.mosquitto import Mosquitto
from tests.support.pg_database import fresh_database
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

GATEWAYS = 20
FIRST = 240
"""Records per gateway produced before and during the ingest's crash."""
SECOND = 120
"""Records per gateway produced afterwards, delivered through the broker's crash."""
RATE = 60.0
"""Records/s per gateway: the first part takes 4 s, and the drain follows it closely."""


INSTANCES = ("lineside-ingest-1", "lineside-ingest-2", "lineside-ingest-3")
"""Ingest logins the shipped ACL knows."""


@contextlib.contextmanager
def ingest_instances(
    tmp_path: Path, dsn: str, broker: Mosquitto, ack_keys: Path
) -> Iterator[list[FleetIngest]]:
    tokens = write_tokens_file(tmp_path / "tokens", {})
    started: list[FleetIngest] = []
    try:
        for name in INSTANCES:
            password_file = tmp_path / f"{name}.password"
            password_file.write_text(broker_users(broker)[name])
            started.append(
                FleetIngest(
                    name,
                    tmp_path,
                    dsn,
                    tokens=tokens,
                    broker=broker,
                    share_group="fleet",
                    password_file=password_file,
                    ack_keys=ack_keys,
                )
            )
        yield started
    finally:
        for ingest in started:
            ingest.end()


def broker_users(broker: Mosquitto) -> dict[str, str]:
    assert broker.users is not None
    return broker.users


def fleet_spec() -> FleetSpec:
    # Small batches, so each gateway's records go in many batches over all three instances;
    # a short ack timeout, so what the crashed instance took is sent again within seconds.
    spec = FleetSpec(
        gateways=GATEWAYS,
        sites=4,
        records_per_s=RATE,
        batch_records=40,
        ack_timeout_s=3.0,
        ack_timeout_max_s=6.0,
        poll_interval_s=0.1,
        reconnect_max_s=1.0,
        commit_interval_ms=50,
    )
    # Each gateway logs in as itself and checks the ack signatures (its own key).
    return fleet_credentials(spec)


async def test_three_ingests_share_the_fleet_through_an_ingest_and_a_broker_crash(
    tmp_path: Path,
) -> None:
    spec = fleet_spec()
    users = {**spec.mqtt_passwords, **{name: secrets.token_urlsafe(18) for name in INSTANCES}}
    ack_keys = write_ack_keys(tmp_path / "ack-keys", spec.ack_keys)
    with (
        fresh_database("fleet_mqtt") as dsn,
        Mosquitto(
            tmp_path / "broker", users=users, persistence=True, extra_config="autosave_interval 1"
        ) as broker,
        ingest_instances(tmp_path, dsn, broker, ack_keys) as ingests,
    ):
        # The three start together: their migrations meet under the advisory lock.
        await asyncio.gather(*(ingest.ready() for ingest in ingests))
        victim = ingests[0]
        timeline = Timeline(dsn)
        async with Fleet(replace(spec, broker_port=broker.port), tmp_path / "fleet") as fleet:
            await timeline.mark("gateways started")
            await produce_and_kill(fleet, victim, timeline, FIRST)

            before = await stored_records(dsn)

            async def delivering() -> bool:
                return await stored_records(dsn) >= before + GATEWAYS * 20

            async with asyncio.TaskGroup() as group:
                group.create_task(fleet.produce(SECOND), name="fleet.produce")
                await wait_for(delivering, 30, "delivery after the ingest's crash", interval=0.1)
                await asyncio.to_thread(broker.kill)
                await timeline.mark("broker killed")
                await asyncio.to_thread(broker.start)  # the same port, the persistence file
            drained = await fleet.wait_drained(timeout_s=45)
            assert drained, f"{await fleet.outbox_depth()} records left in the outboxes"
            await timeline.mark("drained")

            committed = await fleet.committed()
            resent = fleet.resent()

        await assert_fleet_stored(dsn, committed, expected_streams(FIRST + SECOND))
        shares = await batches_per_instance(ingests)
        assert all(batches > 0 for batches in shares.values()), shares
        duplicates = sum(ingest.duplicates for ingest in ingests)
        print(
            f"{timeline}\nbatches per instance {shares}; resent {resent}; duplicates {duplicates}"
        )
        # The broker's crash cut every connection with batches in flight: they were resent.
        assert resent > 0
        with psycopg.connect(dsn) as conn:
            (conflicts,) = conn.execute("SELECT count(*) FROM conflicts").fetchone() or (0,)
        assert conflicts == 0
