"""A TCP client for fixed industrial label scanners.

Most fixed scanners (Cognex, Datalogic, SICK, Zebra) can act as a TCP server that sends each
read followed by a terminator. The adapter connects, splits the stream on the terminator,
and hands each read to the label interpreter (GS1 parsing, rejection of garbage). A read
split over several TCP segments is joined; a read longer than ``max_read_bytes`` without a
terminator is rejected as garbage and the stream resynchronises at the next terminator.
The connection is re-established with capped, jittered backoff; each outage is recorded as
``link_down``/``link_up`` device events.

Backpressure: before each read from the socket the adapter waits until the store has room
(:meth:`RecordSink.wait_for_space`). While it waits nothing is read, the kernel's receive
buffer fills and TCP flow control stops the scanner from sending, so a flood of reads waits
in the scanner and the network rather than in the gateway's memory. Reads are never dropped
here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from adapters.base import RecordSink, TagSample
from adapters.roles import Interpreter, interpreter_for
from gateway.config import ScannerTcpDevice
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.errors import DeviceUnreachable
from gateway.core.link import LinkState
from gateway.core.records import DeviceEvent

log = logging.getLogger(__name__)

TERMINATORS = {"CRLF": b"\r\n", "CR": b"\r", "LF": b"\n"}

READ_BYTES = 4096
"""Bytes taken from the socket at a time: about a hundred reads of a GS1 label, handled
between two turns of the event loop."""


KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_PROBES = 3
"""A scanner may rightly stay silent for hours (no packs), so silence is no sign of a dead
link. TCP keep-alive is: after 10 s idle the kernel probes every 5 s, and three unanswered
probes (a switched-off scanner, a cut cable: no RST ever comes) end the connection in about
25 s, so the link goes DOWN and reconnects instead of showing UP forever."""


def enable_keepalive(sock: socket.socket) -> None:
    """Turn on TCP keep-alive with the timers above (Linux names; others keep defaults)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class ScannerAdapter:
    """Reads a TCP label scanner until cancelled."""

    def __init__(self, device: ScannerTcpDevice, sink: RecordSink, clock: Clock) -> None:
        self.device = device
        self.device_id = device.id
        self.sink = sink
        self.clock = clock
        self.state = LinkState.DISABLED if not device.enabled else LinkState.CONNECTING
        self.last_error = ""
        self.reconnects = 0
        self.reads = 0
        self.connect_attempts = 0
        self.interpreter: Interpreter = interpreter_for(device, {})
        self._terminator = TERMINATORS[device.terminator]
        self._down_since: float | None = None

    async def run(self) -> None:
        """Connect, read, reconnect; return only when cancelled."""
        backoff = Backoff(initial=self.device.reconnect_min_s, maximum=self.device.reconnect_max_s)
        try:
            while True:
                try:
                    await self._session(backoff)
                except DeviceUnreachable as exc:
                    self._link_down(str(exc))
                delay = backoff.next_delay()
                log.debug("scanner %s: reconnect in %.2fs", self.device_id, delay)
                await asyncio.sleep(delay)
        finally:
            # Cancelled while a connection was being opened: the attempt is over, and a
            # stopped adapter must not show as connecting.
            if self.state is LinkState.CONNECTING:
                self.state = LinkState.DOWN

    async def _session(self, backoff: Backoff) -> None:
        self.state = LinkState.CONNECTING
        self.connect_attempts += 1
        try:
            async with asyncio.timeout(self.device.timeout_s):
                reader, writer = await asyncio.open_connection(self.device.host, self.device.port)
        except (OSError, TimeoutError) as exc:
            raise DeviceUnreachable(self.device_id, f"cannot connect: {exc!r}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            enable_keepalive(sock)
        try:
            self._link_up()
            backoff.reset()
            await self._read_loop(reader)
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        buffer = b""
        discarding = False
        while True:
            await self.sink.wait_for_space()
            try:
                chunk = await reader.read(READ_BYTES)
            except OSError as exc:
                raise DeviceUnreachable(self.device_id, f"connection lost: {exc!r}") from exc
            if not chunk:
                raise DeviceUnreachable(self.device_id, "scanner closed the connection")
            buffer += chunk
            while True:
                line, found, rest = buffer.partition(self._terminator)
                if not found:
                    break
                buffer = rest
                if discarding:
                    discarding = False  # end of an over-long read: resynchronised
                    continue
                if len(line) > self.device.max_read_bytes:
                    self._reject_oversized(line)
                    continue
                self._deliver(line)
            if len(buffer) > self.device.max_read_bytes:
                if not discarding:
                    self._reject_oversized(buffer)
                discarding, buffer = True, b""
            # A StreamReader holding buffered data returns from read() without suspending,
            # and so does wait_for_space() when there is room: without this a busy scanner
            # would keep the event loop to itself (no health answers, no control socket,
            # no commits).
            await asyncio.sleep(0)

    def _deliver(self, line: bytes) -> None:
        # A CR left over from a CRLF scanner configured as LF is not part of the read.
        read = line.strip(b"\r\n")
        if not read.strip():
            return  # keep-alive blank lines some scanners send
        self.reads += 1
        now = self.clock.wall_us()
        for record in self.interpreter.interpret([TagSample("barcode", read)], now):
            self.sink.submit(record)

    def _reject_oversized(self, buffer: bytes) -> None:
        record = self.interpreter.reject_raw(
            self.clock.wall_us(),
            "barcode",
            buffer[:64].hex(" "),
            "too_long",
            f"no terminator within {self.device.max_read_bytes} bytes",
        )
        self.sink.submit(record)

    def _link_up(self) -> None:
        now = self.clock.monotonic()
        detail: dict[str, object] = {"endpoint": f"{self.device.host}:{self.device.port}"}
        if self._down_since is not None:
            detail["down_for_s"] = round(now - self._down_since, 3)
            self.reconnects += 1
        self._down_since = None
        self.state = LinkState.UP
        self.last_error = ""
        self.sink.submit(self._event("link_up", detail))
        log.info("scanner %s: connected", self.device_id)

    def _link_down(self, error: str) -> None:
        self.last_error = error
        self.state = LinkState.DOWN
        if self._down_since is None:
            self._down_since = self.clock.monotonic()
            self.sink.submit(self._event("link_down", {"error": error}))
            log.warning("scanner %s: %s", self.device_id, error)

    def _event(self, kind: str, detail: dict[str, object]) -> DeviceEvent:
        return DeviceEvent(
            ts_us=self.clock.wall_us(),
            device=self.device_id,
            line=self.device.line,
            kind=kind,
            detail=detail,
        )
