"""A fleet of simulated gateways in one process, to load a real ingest with many of them.

Each simulated gateway has its own identity (gateway id, site), its own real
:class:`gateway.store.Store` (a SQLite file in its own folder), its own
:class:`sync.outbox.Outbox` and the real uplink (:class:`sync.mqtt_uplink.MqttUplink` with its
alert feed, or :class:`sync.https_uplink.HttpsUplink`), built with the arguments the gateway
gives them (gateway/uplink_factory.py) and the gateway's batch defaults unless told otherwise.
What a gateway commits is decided by :mod:`bench.fleet_records`; it goes through the store's
normal API (:meth:`Store.append`: it waits when the store holds intake back, as the
gateway's pipeline does).

Everything runs under one :class:`asyncio.TaskGroup` (every store's committer and every
uplink, each a named task); leaving ``async with Fleet(...)`` cancels the uplinks, as the
gateway's shutdown does, then lets each committer flush and closes every store. A task that
fails ends the whole fleet (its error is raised from the ``async with``).

Resources per gateway: one aiosqlite thread, one paho network thread (MQTT) and about seven
file descriptors (the database, its WAL and shared memory, the lock file, the socket and
paho's wake-up socket pair). The soft limit of open files is lifted to the hard one, and the
stores are opened above the descriptor numbers the sockets need (:mod:`bench.fleet_descriptors`
says why): 200 gateways in one process start, deliver and stop cleanly.

Use it from a test or a benchmark::

    spec = FleetSpec(gateways=20, broker_port=port, records_per_s=50)
    async with Fleet(spec, tmp_path / "fleet") as fleet:
        await fleet.produce(500)
        assert await fleet.wait_drained(timeout_s=60)
        expected = await fleet.committed()

or from a shell (docs/fleet-load.md: options, resources, what it costs), printing produced,
delivered and backlog every second::

    python -m bench.fleet_gateways --gateways 200 --rate 20 --broker 127.0.0.1:1883 --duration 30
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from bench.fleet_descriptors import descriptors_kept_low, raise_fd_limit, sockets_below
from bench.fleet_records import TimeBase, fleet_record
from gateway.config import StoreSection
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock, SystemClock
from gateway.store import Store
from gateway.store.outbox import STREAM_COLUMNS, record_data
from gateway.tls_files import client_tls_context
from sync.alert_feed import AlertFeed
from sync.https_uplink import HttpsUplink
from sync.ingest.warehouse_records import payload_sha256
from sync.mqtt_uplink import RECONNECT_MAX_S, RECONNECT_MIN_S, MqttUplink
from sync.outbox import Outbox

Transport = Literal["mqtt", "https"]

CHUNK = 500
"""Records submitted before their commits are awaited, per gateway, when producing flat out."""

TICK_S = 0.05
"""How often a paced producer submits the records that have become due."""


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """What fleet to simulate and where its uplinks send."""

    gateways: int
    sites: int = 1
    transport: Transport = "mqtt"
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    ingest_url: str = ""
    """``https://host:port/v1/ingest`` for the HTTPS transport."""
    ca_file: Path | None = None
    """The CA that signed the broker's or the ingest's certificate (TLS when given for MQTT)."""
    tokens: Mapping[str, str] = field(default_factory=dict)
    """Bearer token per gateway id (HTTPS), as ``lineside ingest-token add`` makes them."""
    ack_key: bytes | None = None
    """The ingest's ack signing key (MQTT) for every gateway without one in ``ack_keys``;
    None: acks are not authenticated."""
    ack_keys: Mapping[str, bytes] = field(default_factory=dict)
    """Ack signing key per gateway id (MQTT), as the ingest's ``--ack-keys`` file holds them."""
    mqtt_passwords: Mapping[str, str] = field(default_factory=dict)
    """Broker password per gateway id (MQTT): each gateway then logs in as its own user, its
    gateway id, as the shipped ACL's ``%u`` patterns expect (docs/broker.md)."""
    records_per_s: float = 0.0
    """Per gateway; 0 = as fast as the store takes them."""
    batch_records: int = 500
    batch_bytes: int = 256 * 1024
    window: int = 4
    ack_timeout_s: float = 10.0
    """MQTT: an unacknowledged batch is sent again after this (doubling up to the max)."""
    ack_timeout_max_s: float = 120.0
    request_timeout_s: float = 10.0
    """HTTPS: one POST's timeout."""
    poll_interval_s: float = 0.5
    reconnect_min_s: float = RECONNECT_MIN_S
    reconnect_max_s: float = RECONNECT_MAX_S
    commit_interval_ms: int = 250
    """The store's group commit (the gateway's default)."""
    prefix: str = "fleet"
    """Gateway ids are ``<prefix>-gw0001``..., sites ``<prefix>-site01``..."""
    time_base: TimeBase = field(default_factory=TimeBase)

    def __post_init__(self) -> None:
        if self.gateways < 1 or not 1 <= self.sites <= self.gateways:
            raise ValueError("need 1 <= sites <= gateways")
        if self.records_per_s < 0:
            raise ValueError("records_per_s must be >= 0")
        if self.transport == "https" and not self.ingest_url:
            raise ValueError("the HTTPS transport needs ingest_url")

    def identities(self) -> list[tuple[str, str]]:
        """``(gateway id, site)`` of every gateway, gateways spread over the sites in turn."""
        return [
            (f"{self.prefix}-gw{k + 1:04d}", f"{self.prefix}-site{k % self.sites + 1:02d}")
            for k in range(self.gateways)
        ]


@dataclass
class SimulatedGateway:
    """One gateway of the fleet: its store, outbox and uplink, and what it has produced."""

    gateway: str
    site: str
    store: Store
    outbox: Outbox
    uplink: MqttUplink | HttpsUplink
    produced: int = 0
    """Records committed to the store so far (their indexes are ``0 .. produced - 1``)."""

    @property
    def delivered(self) -> int:
        """Records the warehouse acknowledged (deleted from the outbox)."""
        return self.uplink.stats.records_acked


def build_uplink(
    spec: FleetSpec, gw: str, site: str, store: Store, outbox: Outbox
) -> MqttUplink | HttpsUplink:
    """The uplink of one gateway, with the arguments gateway/uplink_factory.py gives it."""
    backoff = Backoff(initial=spec.reconnect_min_s, maximum=spec.reconnect_max_s)
    if spec.transport == "https":
        return HttpsUplink(
            store,
            url=spec.ingest_url,
            site=site,
            gateway=gw,
            outbox=outbox,
            ca_file=spec.ca_file,
            token=spec.tokens.get(gw),
            max_records=spec.batch_records,
            max_bytes=spec.batch_bytes,
            timeout_s=spec.request_timeout_s,
            poll_interval_s=spec.poll_interval_s,
            backoff=backoff,
        )
    tls = None
    if spec.ca_file is not None:
        tls = client_tls_context("sync.mqtt", spec.ca_file, None, None)
    return MqttUplink(
        store,
        host=spec.broker_host,
        port=spec.broker_port,
        site=site,
        gateway=gw,
        outbox=outbox,
        alerts=AlertFeed(store, site=site, gateway=gw),
        backoff=backoff,
        tls_context=tls,
        username=gw if gw in spec.mqtt_passwords else None,
        password=spec.mqtt_passwords.get(gw),
        max_records=spec.batch_records,
        max_bytes=spec.batch_bytes,
        window=spec.window,
        ack_timeout_s=spec.ack_timeout_s,
        ack_timeout_max_s=spec.ack_timeout_max_s,
        poll_interval_s=spec.poll_interval_s,
        ack_key=spec.ack_keys.get(gw, spec.ack_key),
    )


async def close_stores(stores: list[Store]) -> None:
    """Close every store (each commits what is pending), all at once; a store that fails
    to close does not keep the others open."""
    results = await asyncio.gather(*(store.close() for store in stores), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise BaseExceptionGroup("closing the fleet's stores", failures)


class Fleet:
    """N simulated gateways under one TaskGroup; ``async with`` starts and stops them all."""

    def __init__(self, spec: FleetSpec, directory: Path, *, clock: Clock | None = None) -> None:
        self.spec = spec
        self.directory = directory
        self.clock = clock or SystemClock()
        self.gateways: list[SimulatedGateway] = []
        self._stack = contextlib.AsyncExitStack()
        self._group: asyncio.TaskGroup | None = None
        self._uplink_tasks: list[asyncio.Task[None]] = []
        self._producing = asyncio.Lock()

    # ---------------------------------------------------------------- life cycle

    async def __aenter__(self) -> Self:
        raise_fd_limit()
        await self._stack.__aenter__()
        try:
            stores = [self._store(gw) for gw, _ in self.spec.identities()]
            self._stack.push_async_callback(close_stores, stores)
            with descriptors_kept_low(self._sockets_below()):
                await asyncio.gather(*(store.open() for store in stores))
            for (gw, site), store in zip(self.spec.identities(), stores, strict=True):
                outbox = Outbox(store, gateway=gw, site=site)
                uplink = build_uplink(self.spec, gw, site, store, outbox)
                self.gateways.append(SimulatedGateway(gw, site, store, outbox, uplink))
            self._group = asyncio.TaskGroup()
            await self._group.__aenter__()
        except BaseException as exc:
            await self._stack.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        for g in self.gateways:
            self._group.create_task(g.store.run_committer(), name=f"{g.gateway}.committer")
            self._uplink_tasks.append(
                self._group.create_task(g.uplink.run(), name=f"{g.gateway}.uplink")
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # As the gateway stops: the uplinks are cancelled (the outbox keeps what is
            # unacknowledged), then every committer flushes what is pending and returns.
            for task in self._uplink_tasks:
                task.cancel()
            if exc is None:
                await asyncio.gather(*(g.store.stop_committer() for g in self.gateways))
            if self._group is not None:
                await self._group.__aexit__(exc_type, exc, tb)
        finally:
            await self._stack.__aexit__(exc_type, exc, tb)

    def _sockets_below(self) -> int:
        """The descriptor numbers kept free for the MQTT clients' sockets."""
        return sockets_below(self.spec.gateways) if self.spec.transport == "mqtt" else 0

    def _store(self, gateway: str) -> Store:
        config = StoreSection(
            path=self.directory / gateway / "lineside.db",
            commit_interval_ms=self.spec.commit_interval_ms,
        )
        return Store(config, self.clock)

    # ---------------------------------------------------------------- producing

    async def produce(self, records_per_gateway: int) -> None:
        """Commit ``records_per_gateway`` more records to every gateway's store, paced at
        ``records_per_s`` per gateway (or flat out); returns when all are committed. One
        call at a time: a second one waits for the first (record indexes follow on)."""
        async with self._producing, asyncio.TaskGroup() as group:
            for g in self.gateways:
                group.create_task(
                    self._produce(g, records_per_gateway), name=f"{g.gateway}.produce"
                )

    async def _produce(self, g: SimulatedGateway, count: int) -> None:
        first, end = g.produced, g.produced + count
        rate = self.spec.records_per_s
        # Paced on this machine's monotonic clock, not the fleet's: the load is real; only the
        # records' timestamps are simulated.
        started = time.monotonic()
        index = first
        while index < end:
            if rate > 0:
                due = min(end, first + int((time.monotonic() - started) * rate) + 1)
                if due <= index:
                    await asyncio.sleep(TICK_S)
                    continue
            else:
                due = min(end, index + CHUNK)
            futures = [
                await g.store.append(fleet_record(i, self.spec.time_base))
                for i in range(index, due)
            ]
            await asyncio.gather(*futures)
            index = due
            g.produced = index

    # ---------------------------------------------------------------- watching

    def produced(self) -> int:
        """Records committed to the stores so far, all gateways."""
        return sum(g.produced for g in self.gateways)

    def delivered(self) -> int:
        """Records the warehouse acknowledged so far, all gateways."""
        return sum(g.delivered for g in self.gateways)

    def resent(self) -> int:
        """Batches sent again (no ack in time, a failed attempt, a reconnect), all gateways."""
        return sum(g.uplink.stats.batches_resent for g in self.gateways)

    async def outbox_depth(self) -> int:
        """Records still queued in the outboxes (counted in each store), all gateways."""
        depths = await asyncio.gather(*(g.outbox.depth() for g in self.gateways))
        return sum(depths)

    async def wait_drained(self, timeout_s: float, poll_s: float = 0.25) -> bool:
        """Wait until every outbox is empty; False if one still holds records after
        ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            if await self.outbox_depth() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll_s)

    async def committed(self) -> dict[str, dict[int, str]]:
        """Every record each store holds: gateway -> seq -> SHA-256 of its payload as the
        warehouse computes it (its ``records.payload_sha256``)."""
        result: dict[str, dict[int, str]] = {}
        for g in self.gateways:
            result[g.gateway] = await stored_hashes(g.store)
        return result


async def stored_hashes(store: Store) -> dict[int, str]:
    """seq -> payload SHA-256 of every record in ``store``'s record tables, each payload
    built as the outbox sends it (:func:`gateway.store.outbox.record_data`)."""
    hashes: dict[int, str] = {}
    for stream, columns in STREAM_COLUMNS.items():
        # The table and column names come from the store's own table list.
        rows = await store.fetchall(f"SELECT seq, {', '.join(columns)} FROM {stream}")
        for row in rows:
            hashes[int(row[0])] = payload_sha256(record_data(stream, row[1:]))
    return hashes


if __name__ == "__main__":
    from bench.fleet_cli import main

    raise SystemExit(main())
