"""Issue 18: a session takeover (MQTT 5 DISCONNECT 0x8E) is reported by name, with an alert.

On a broker that does not tie client ids to logins (anonymous here), a client connects with
the gateway's client id: the broker disconnects the gateway with "Session taken over". The
gateway logs it by name, its link state's last error says so, and it stores a MAJOR
``sync_session_taken_over`` alert naming the client id; it reconnects (taking the session
back), clears the alert once the connection lasts, and every record still lands exactly
once. The same client id trick against the ingest is logged by name, and that ingest stops
(two ingests with one client id would otherwise steal the session from each other forever).

The mosquitto here is 2.0.11, which closes the old connection without the DISCONNECT 0x8E
that MQTT 5 §3.1.4 asks for (sent from 2.0.15 on, mosquitto issue #2607). So the victim
reaches the real broker through :class:`TakeoverProxy`, a TCP relay that, once armed, adds
what a conforming broker sends before the close it relays: ``DISCONNECT`` with reason code
0x8E. The takeover itself (the impostor's CONNECT with the same client id, and the broker
dropping the victim) is the real broker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.core.link import LinkState
from sync.ingest import IngestService
from sync.ingest.ack_keys import AckKeys
from sync.ingest.mqtt_consumer import IngestSessionTakenOver
from sync.outbox import Outbox
from tests.security.conftest import Client
from tests.security.test_signed_acks import KEY, _empty, ingest_settings, real_ingest
from tests.support.mosquitto import Mosquitto
from tests.support.uplink_harness import GW, SITE, commit, pack, running_store, running_uplink
from tests.support.waiting import wait_for

TAKEN_OVER = "session taken over by another client with our client id"
DISCONNECT_TAKEN_OVER = bytes([0xE0, 0x02, 0x8E, 0x00])
"""MQTT 5 DISCONNECT, reason code 0x8E (Session taken over), no properties."""


class TakeoverProxy:
    """A TCP relay to the broker; armed, it sends ``DISCONNECT 0x8E`` to a client whose
    broker connection the broker closes (once), then closes it as the broker did."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.armed = False
        self.injected = 0
        self.port = 0
        self.host = "127.0.0.1"
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_broker: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if from_broker and self.armed:
                self.armed = False
                self.injected += 1
                writer.write(DISCONNECT_TAKEN_OVER)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.broker.host, self.broker.port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, from_broker=False),
            self._pipe(up_reader, writer, from_broker=True),
        )

    def _spawn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TakeoverProxy]:
        server = await asyncio.start_server(self._spawn, self.host, 0)
        self.port = int(server.sockets[0].getsockname()[1])
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()


@pytest.fixture
def open_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that lets anyone connect with any client id."""
    with Mosquitto(tmp_path / "broker") as broker:
        yield broker


async def takeover_rows(store: object) -> list[tuple[str, str, str, str]]:
    rows = await store.fetchall(  # type: ignore[attr-defined]
        "SELECT state, subject, severity, message FROM alerts "
        "WHERE rule = 'sync_session_taken_over' ORDER BY seq"
    )
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]


async def test_gateway_session_takeover_raises_an_alert_and_loses_nothing(
    tmp_path: Path, open_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sync.mqtt_uplink")
    impostor: Client | None = None
    async with (
        TakeoverProxy(open_broker).running() as proxy,
        running_store(tmp_path) as store,
    ):
        first = await commit(store, [pack(i) for i in range(60)])
        outbox = Outbox(store, gateway=GW, site=SITE)
        async with (
            running_uplink(
                store, open_broker, host=proxy.host, port=proxy.port, ack_key=KEY
            ) as uplink,
            real_ingest(open_broker, tmp_path / "warehouse.db", AckKeys(keys={GW: KEY})) as ingest,
        ):
            await wait_for(_empty(outbox), 20, "the first records acknowledged")
            assert uplink.state is LinkState.UP

            impostor = Client(open_broker, client_id=uplink.client_id)
            proxy.armed = True
            try:
                assert impostor.connect() == 0
                await wait_for(
                    lambda: uplink.stats.sessions_taken_over >= 1, 10, "the takeover noticed"
                )
                assert TAKEN_OVER in uplink.stats.last_error
                assert uplink.client_id in uplink.stats.last_error
                assert any(
                    TAKEN_OVER in r.getMessage() and r.levelno == logging.ERROR
                    for r in caplog.records
                )

                async def raised() -> bool:
                    return any(row[0] == "raised" for row in await takeover_rows(store))

                await wait_for(raised, 10, "the takeover alert stored")
                _, subject, severity, message = (await takeover_rows(store))[0]
                assert subject == uplink.client_id
                assert severity.lower() == "major"
                assert TAKEN_OVER in message
                assert uplink.client_id in message

                # Records written meanwhile still land once the gateway has its session back.
                second = await commit(store, [pack(1000 + i) for i in range(60)])

                async def cleared() -> bool:
                    return [row[0] for row in await takeover_rows(store)][-1] == "cleared"

                await wait_for(cleared, 15, "the takeover alert cleared once the link lasts")
                await wait_for(_empty(outbox), 30, "every record acknowledged")
                transitions = len(await takeover_rows(store))
                assert uplink.state is LinkState.UP
            finally:
                impostor.close()
            stored = ingest.records()
    # Every pack exactly once (the alert transitions the gateway stored are synced, too).
    seqs = [seq for _, seq, _ in stored]
    assert len(seqs) == len(set(seqs)), "a record stored twice"
    assert set(first + second) <= set(seqs), "a record lost"
    assert len(seqs) == len(first) + len(second) + transitions, "unexpected records"
    assert uplink.stats.records_quarantined == 0


async def test_ingest_session_takeover_stops_the_ingest_by_name(
    tmp_path: Path, open_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Two real ingests with one client id: the first (reached through the relay that adds
    the 0x8E mosquitto 2.0.11 omits) is told and stops; the second keeps the session."""
    caplog.set_level(logging.INFO, logger="sync.ingest.mqtt_consumer")
    async with TakeoverProxy(open_broker).running() as proxy:
        first = IngestService(
            ingest_settings(open_broker, tmp_path / "a.db", None, port=proxy.port)
        )
        first_task = asyncio.create_task(first.run(), name="first-ingest")
        second_task: asyncio.Task[None] | None = None
        try:
            assert first.consumer is not None
            await wait_for(first.consumer.subscribed.is_set, 15, "the first ingest subscribed")
            proxy.armed = True
            second = IngestService(ingest_settings(open_broker, tmp_path / "b.db", None))
            second_task = asyncio.create_task(second.run(), name="second-ingest")
            with pytest.raises(IngestSessionTakenOver, match="same client id"):
                await asyncio.wait_for(first_task, 15)
            assert first.consumer.stats.sessions_taken_over == 1
            assert second.consumer is not None
            await wait_for(second.consumer.subscribed.is_set, 10, "the second ingest subscribed")
            assert not second_task.done()
            # The first one does not come back to take the session again.
            assert proxy.injected == 1
        finally:
            for task in (first_task, second_task):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        "another ingest connected with the same client id (lineside-ingest-test)" in m
        and "give each instance its own --client-id" in m
        for m in messages
    )
