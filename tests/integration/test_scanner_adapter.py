"""The TCP label scanner adapter against the real scanner simulator on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

import adapters.scanner.client as scanner_client
from adapters.scanner import ScannerAdapter
from adapters.simulators import ScannerSimulator, ScenarioName
from gateway.config import ScannerTcpDevice
from gateway.core.clock import SystemClock
from gateway.core.link import LinkState
from gateway.core.records import LabelScan, RejectedInput
from tests.support.collector import Collector, HeldSink
from tests.support.waiting import wait_for

VALID = b"]C1010950110153000317261201101234\x1d21000042"


def device(port: int, **extra: object) -> ScannerTcpDevice:
    return ScannerTcpDevice(
        id="scan1",
        kind="scanner_tcp",
        line="L1",
        role="label_scanner",
        host="127.0.0.1",
        port=port,
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
async def quiet_scanner():
    # speed 0-ish scenario traffic is avoided by sending our own reads only
    async with ScannerSimulator(scenario=ScenarioName.NORMAL, pack_rate_hz=0.001) as sim:
        yield sim


async def test_reads_split_over_segments_and_garbage(quiet_scanner: ScannerSimulator) -> None:
    sink = Collector()
    adapter = ScannerAdapter(device(quiet_scanner.port, max_read_bytes=64), sink, SystemClock())
    task = asyncio.create_task(adapter.run())
    try:
        await wait_for(lambda: adapter.state is LinkState.UP)
        await quiet_scanner.wait_for_clients(1)
        await quiet_scanner.send(VALID[:10])
        await asyncio.sleep(0.05)  # a pause inside one read: two TCP segments
        await quiet_scanner.send(VALID[10:] + b"\r\n")
        await quiet_scanner.send(b"]C10109501101530004\r\n")  # bad check digit
        await quiet_scanner.send(b"\r\n")  # keep-alive blank line: ignored
        await quiet_scanner.send(b"x" * 200)  # no terminator for too long
        await quiet_scanner.send(b"tail-of-garbage\r\n" + VALID + b"\r\n")
        await wait_for(lambda: len(sink.of(LabelScan)) == 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    scans = sink.of(LabelScan)
    assert [s.raw for s in scans] == [VALID, VALID]
    assert scans[0].gtin == "09501101530003"
    assert scans[0].batch == "1234"
    reasons = [r.reason for r in sink.of(RejectedInput)]
    assert reasons == ["gs1_bad_check_digit", "too_long"]


async def test_scanner_restart_is_recovered_and_the_gap_recorded(
    quiet_scanner: ScannerSimulator,
) -> None:
    sink = Collector()
    adapter = ScannerAdapter(device(quiet_scanner.port), sink, SystemClock())
    task = asyncio.create_task(adapter.run())
    try:
        await wait_for(lambda: adapter.state is LinkState.UP)
        await quiet_scanner.stop()
        await wait_for(lambda: adapter.state is LinkState.DOWN)
        attempts = adapter.connect_attempts
        # An outage spanning a few reconnect attempts.
        await wait_for(lambda: adapter.connect_attempts >= attempts + 3)
        await quiet_scanner.start()
        await wait_for(lambda: len(sink.events("link_up")) == 1)  # the recovery
        await quiet_scanner.wait_for_clients(1)
        await quiet_scanner.send(VALID + b"\r\n")
        await wait_for(lambda: len(sink.of(LabelScan)) == 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(sink.events("link_down")) == 1, "one event per outage, not per attempt"
    assert sink.events("link_up")[0].detail["down_for_s"] > 0
    assert len(sink.first_link_up()) == 1
    assert adapter.reconnects == 1


async def test_unreachable_scanner_backs_off_and_cancels_cleanly() -> None:
    sink = Collector()
    # Port 9 on loopback: nothing listens, connections are refused at once.
    adapter = ScannerAdapter(device(9), sink, SystemClock())
    before = len(asyncio.all_tasks())
    task = asyncio.create_task(adapter.run())
    await wait_for(lambda: adapter.connect_attempts >= 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert adapter.state is LinkState.DOWN
    assert len(sink.events("link_down")) == 1
    assert "cannot connect" in adapter.last_error
    assert len(asyncio.all_tasks()) == before
    # Backoff, not a busy loop: five refused attempts took at least a few delays.
    assert adapter.connect_attempts < 50


async def test_the_connection_uses_tcp_keepalive_to_notice_a_dead_scanner(
    quiet_scanner: ScannerSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A silent scanner is normal, so only keep-alive probes notice one that is gone."""
    sockets: list[socket.socket] = []
    original = scanner_client.enable_keepalive

    def record(sock: socket.socket) -> None:
        original(sock)
        sockets.append(sock)

    monkeypatch.setattr(scanner_client, "enable_keepalive", record)
    adapter = ScannerAdapter(device(quiet_scanner.port), Collector(), SystemClock())
    task = asyncio.create_task(adapter.run())
    try:
        await wait_for(lambda: adapter.state is LinkState.UP)
        [sock] = sockets
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
        probes = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
        assert (idle, interval, probes) == (10, 5, 3)
        assert idle + interval * probes <= 30, "a dead scanner is noticed within 30 s"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_flood_waits_in_tcp_while_the_sink_has_no_room() -> None:
    """Backpressure: nothing is read while the sink has no room, so the kernel's buffers fill
    and the scanner cannot send more; given room again, every read sent is delivered."""
    read = VALID + b"\r\n"
    chunk = read * 1000
    loop = asyncio.get_running_loop()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        sink = HeldSink()
        adapter = ScannerAdapter(device(listener.getsockname()[1]), sink, SystemClock())
        task = asyncio.create_task(adapter.run())
        try:
            conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 10)
            with conn:
                conn.setblocking(False)
                # A small send buffer: the kernel's default would hold megabytes of reads.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
                await asyncio.wait_for(sink.asked.wait(), 10)
                sent, ceiling = 0, 256 * 2**20
                with contextlib.suppress(BlockingIOError):
                    while sent < ceiling:
                        sent += conn.send(chunk[sent % len(read) :] if sent % len(read) else chunk)
                        await asyncio.sleep(0)  # the adapter's transport reads what it may
                assert sent < ceiling, "TCP flow control stopped the flood"
                assert adapter.reads == 0
                assert sink.of(LabelScan) == []
                sink.room.set()
                # The read the full buffers cut off is completed.
                if sent % len(read):
                    await loop.sock_sendall(conn, read[sent % len(read) :])
                    sent += len(read) - sent % len(read)
                await wait_for(lambda: adapter.reads == sent // len(read), timeout=60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert len(sink.of(LabelScan)) == sent // len(read)
    assert sink.waits >= sent // scanner_client.READ_BYTES, "room is asked before every read"
