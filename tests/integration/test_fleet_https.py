"""Three HTTPS ingest instances behind HAProxy share twenty gateways, through an instance crash.

Real parties: HAProxy from Debian in TCP mode, passing TLS through to the instances
(tests/support/haproxy.py says why), three ``lineside ingest --no-mqtt`` processes serving
HTTPS with the test CA's certificate and one gateway tokens file, into one fresh PostgreSQL
database; twenty gateways of the fleet generator (bench/fleet_gateways.py: each its own store,
outbox, token and the real HTTPS uplink) in this process, posting to HAProxy.

One instance is SIGKILLed in the middle of the drain (the warehouse holds a tenth or more):
the requests it had open fail (or time out), the gateways post the same batches again with the
same Idempotency-Key, and HAProxy sends them to the other two. Then: every record each gateway
committed is in the warehouse exactly once with the same payload hash, the typed fact rows
match, each instance committed a share of the batches, and every outbox is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fleet_credentials import fleet_tokens
from bench.fleet_gateways import Fleet, FleetSpec
from bench.fleet_records import expected_streams
from tests.support.fleet_ingest import (
    FleetIngest,
    batches_per_instance,
    produce_and_kill,
    write_tokens_file,
)
from tests.support.fleet_warehouse import Timeline, assert_fleet_stored
from tests.support.haproxy import HaProxy
from tests.support.pg_database import fresh_database
from tests.support.pki import issue, make_ca

pytestmark = pytest.mark.slow

GATEWAYS = 20
RECORDS = 400
"""Records per gateway."""
RATE = 60.0
"""Records/s per gateway: producing takes about 7 s, and the drain follows it closely."""


@contextlib.contextmanager
def https_instances(
    tmp_path: Path, dsn: str, tokens: dict[str, str]
) -> Iterator[tuple[list[FleetIngest], Path]]:
    """Three instances with the same server certificate and tokens file; and the CA."""
    ca = make_ca(tmp_path, "fleet-test-ca")
    server = issue(tmp_path, ca, "ingest", server=True)
    tokens_file = write_tokens_file(tmp_path / "tokens", tokens)
    started: list[FleetIngest] = []
    try:
        for n in (1, 2, 3):
            started.append(
                FleetIngest(
                    f"ingest-{n}",
                    tmp_path,
                    dsn,
                    tokens=tokens_file,
                    tls=(server.cert, server.key),
                    ca_file=ca.path,
                )
            )
        yield started, ca.path
    finally:
        for ingest in started:
            ingest.end()


async def test_three_https_ingests_behind_haproxy_share_the_fleet_through_a_crash(
    tmp_path: Path,
) -> None:
    unbound = FleetSpec(gateways=GATEWAYS, transport="https", ingest_url="https://unset")
    tokens = fleet_tokens(unbound)
    with (
        fresh_database("fleet_https") as dsn,
        https_instances(tmp_path, dsn, tokens) as (ingests, ca),
    ):
        await asyncio.gather(*(ingest.ready() for ingest in ingests))
        backends = {ingest.name: ingest.http_port for ingest in ingests}
        with HaProxy(tmp_path / "haproxy", backends, ca) as proxy:
            await proxy.ready()
            spec = FleetSpec(
                gateways=GATEWAYS,
                sites=4,
                transport="https",
                ingest_url=f"https://127.0.0.1:{proxy.port}/v1/ingest",
                ca_file=ca,
                tokens=tokens,
                records_per_s=RATE,
                batch_records=40,
                request_timeout_s=5.0,
                poll_interval_s=0.1,
                reconnect_min_s=0.1,
                reconnect_max_s=1.0,
                commit_interval_ms=50,
            )
            victim = ingests[0]
            timeline = Timeline(dsn)
            async with Fleet(spec, tmp_path / "fleet") as fleet:
                await timeline.mark("gateways started")
                await produce_and_kill(fleet, victim, timeline, RECORDS)
                drained = await fleet.wait_drained(timeout_s=45)
                assert drained, f"{await fleet.outbox_depth()} records left in the outboxes"
                await timeline.mark("drained")
                committed = await fleet.committed()
                resent = fleet.resent()
            sessions = {name: int(row["stot"]) for name, row in proxy.servers().items()}

        await assert_fleet_stored(dsn, committed, expected_streams(RECORDS))
        shares = await batches_per_instance(ingests)
        assert all(batches > 0 for batches in shares.values()), shares
        duplicates = sum(ingest.duplicates for ingest in ingests)
        print(timeline, f"batches per instance {shares}", f"HAProxy sessions {sessions}", sep="\n")
        print(f"resent {resent}; duplicates {duplicates}")
        # The gateways connected to the killed instance (round robin gave it some of the
        # twenty) connected again, through HAProxy, to the others. Whether a POST was open
        # at the crash (and so resent) is chance: reported, not asserted.
        assert sum(sessions.values()) > GATEWAYS, sessions
