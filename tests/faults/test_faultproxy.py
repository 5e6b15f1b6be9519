"""The fault proxy (tests/faultproxy.py) against a trivial echo server, one test per mode."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.faultproxy import FaultProxy, Mode, ThreadedFaultProxy
from tests.support.waiting import wait_for, wait_for_sync


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    """An asyncio echo server on loopback; yields its port."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def proxied_echo() -> AsyncIterator[FaultProxy]:
    async with echo_server() as port, FaultProxy(port) as proxy:
        yield proxy


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*proxy.address)


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> bytes:
    writer.write(payload)
    await writer.drain()
    return await reader.readexactly(len(payload))


async def read_until_closed(reader: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await asyncio.wait_for(reader.read(100), 5):
        into.extend(chunk)


async def test_pass_forwards_both_ways_and_counts() -> None:
    async with proxied_echo() as proxy:
        reader, writer = await connect(proxy)
        assert await roundtrip(reader, writer, b"hello") == b"hello"
        assert await roundtrip(reader, writer, b"x" * 200_000) == b"x" * 200_000
        second = await connect(proxy)
        assert await roundtrip(*second, b"again") == b"again"
        await wait_for(lambda: proxy.stats.active == 2)
        writer.close()
        second[1].close()
        await wait_for(lambda: proxy.stats.active == 0)
    assert proxy.stats.connections == 2
    assert proxy.stats.bytes_up == 5 + 200_000 + 5
    assert proxy.stats.bytes_down == proxy.stats.bytes_up
    assert proxy.stats.resets == 0


async def test_blackhole_holds_bytes_keeps_the_socket_open_and_releases_on_pass() -> None:
    async with proxied_echo() as proxy:
        reader, writer = await connect(proxy)
        assert await roundtrip(reader, writer, b"before") == b"before"
        proxy.blackhole()
        assert proxy.mode is Mode.BLACKHOLE
        writer.write(b"held")
        await writer.drain()
        # Half-open: no answer and no EOF either, the connection just hangs.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(100), 0.3)
        assert not reader.at_eof()
        # A new connection is accepted, and hangs the same way.
        late_reader, late_writer = await connect(proxy)
        late_writer.write(b"late")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(late_reader.read(100), 0.2)
        assert proxy.stats.bytes_up == len(b"before")
        assert proxy.stats.connections == 2
        proxy.pass_through()
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"
        assert await asyncio.wait_for(late_reader.readexactly(4), 5) == b"late"
        writer.close()
        late_writer.close()


async def test_reset_sends_rst_to_open_and_new_connections() -> None:
    async with proxied_echo() as proxy:
        reader, writer = await connect(proxy)
        assert await roundtrip(reader, writer, b"ping") == b"ping"
        proxy.reset()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 5)
        new_reader, new_writer = await connect(proxy)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(new_reader.read(100), 5)
        new_writer.close()
        proxy.pass_through()
        third = await connect(proxy)
        assert await roundtrip(*third, b"back") == b"back"
        third[1].close()
    assert proxy.stats.resets == 2
    assert proxy.stats.connections == 3


async def test_latency_delays_each_way_without_reordering() -> None:
    async with proxied_echo() as proxy:
        reader, writer = await connect(proxy)
        proxy.latency(0.15)
        started = time.monotonic()
        for i in range(5):
            writer.write(b"%d," % i)
        await writer.drain()
        got = await asyncio.wait_for(reader.readexactly(10), 5)
        elapsed = time.monotonic() - started
        assert got == b"0,1,2,3,4,"
        assert elapsed >= 0.3 - 0.02  # 0.15 s up + 0.15 s down
        proxy.latency(0)
        writer.close()


async def test_throttle_paces_throughput() -> None:
    async with proxied_echo() as proxy:
        reader, writer = await connect(proxy)
        proxy.throttle(20_000)
        started = time.monotonic()
        assert await asyncio.wait_for(roundtrip(reader, writer, b"t" * 8_000), 10) == b"t" * 8_000
        assert time.monotonic() - started >= 8_000 / 20_000 - 0.05
        proxy.throttle(None)
        writer.close()


async def test_cut_after_delivers_exactly_n_bytes_then_resets() -> None:
    async with proxied_echo() as proxy:
        reader, writer = await connect(proxy)
        proxy.cut_after(40)
        writer.write(b"a" * 100)
        await writer.drain()
        received = bytearray()
        with pytest.raises(ConnectionResetError):
            await read_until_closed(reader, received)
        assert len(received) <= 40
        assert proxy.stats.bytes_up == 40
        assert proxy.stats.cuts == 1
        # A new connection gets its own allowance; the 40th byte is the last.
        reader2, writer2 = await connect(proxy)
        assert await roundtrip(reader2, writer2, b"b" * 39) == b"b" * 39
        writer2.write(b"cd")
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader2.readexactly(1), 5)
    assert proxy.stats.cuts == 2


async def test_refused_upstream_resets_the_client() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    async with FaultProxy(dead_port) as proxy:
        reader, writer = await connect(proxy)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 5)
        writer.close()
    assert proxy.stats.upstream_failures == 1


# ---------------------------------------------------------------------- from a thread


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


@contextlib.contextmanager
def threaded_echo() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_threaded_proxy_switches_modes_from_plain_code() -> None:
    with threaded_echo() as port, ThreadedFaultProxy(port) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        client.sendall(b"one")
        assert client.recv(10) == b"one"
        proxy.blackhole()
        client.sendall(b"two")
        client.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.recv(10)
        proxy.pass_through()
        client.settimeout(5)
        assert client.recv(10) == b"two"
        proxy.reset()
        with pytest.raises(ConnectionResetError):
            client.recv(10)
        client.close()
        assert proxy.reset_connections() == 0
        proxy.pass_through()
        proxy.latency(0.01)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as again:
            again.sendall(b"three")
            assert again.recv(10) == b"three"
        wait_for_sync(lambda: proxy.stats.active == 0)
        assert proxy.stats.connections == 2
        assert proxy.stats.resets == 1
