"""Simulated fixed-mount label scanner: a TCP server pushing one line per read.

Fixed industrial scanners usually act as TCP servers; the gateway connects as a client. Each
read is the label's GS1 element string (``]C1`` symbology identifier, GS (0x1D) after
variable-length fields) followed by CR LF, sent to every connected client. Anything clients
send is read and ignored. The ``dropout`` script closes the listener and every connection for
its duration, then listens again on the same port.

:meth:`ScannerSimulator.send` writes raw bytes as they are (no terminator), so tests can inject
garbage, partial reads and a read split over two TCP segments.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Final

from adapters.simulators._driver import ScenarioServer
from adapters.simulators.scenario import (
    DropoutChanged,
    LineSpec,
    PackEvent,
    ScenarioName,
    SimEvent,
)

__all__ = ["TERMINATOR", "ScannerSimulator"]

log = logging.getLogger(__name__)

TERMINATOR: Final = b"\r\n"
"""End of each read on the wire."""

# A client that does not read for this long is dropped rather than stalling every other one.
_DRAIN_TIMEOUT_S: Final = 2.0


class ScannerSimulator(ScenarioServer):
    """An asyncio TCP server that sends each label read, CR LF terminated, to all clients.

    Args:
        host: address to listen on.
        port: TCP port; 0 picks a free one on first start, kept across restarts.
        seed: scenario random seed.
        scenario: the script to play.
        speed: simulated seconds per real second.
        pack_rate_hz: packs per second per checkweigher.
        line: the simulated line (default :class:`LineSpec` with today's pack date).
        checkweigher: the checkweigher whose labelled packs pass this scanner.
        drive: play the scenario; ``False`` only sends what :meth:`send` is given.
        epoch: ``loop.time()`` at which simulated time is 0 (default: first start).
    """

    _kind = "scanner"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        scenario: ScenarioName | str = ScenarioName.NORMAL,
        speed: float = 1.0,
        pack_rate_hz: float = 1.0,
        line: LineSpec | None = None,
        checkweigher: str = "CW1",
        drive: bool = True,
        epoch: float | None = None,
    ) -> None:
        self._init_scenario(
            host=host,
            port=port,
            seed=seed,
            scenario=scenario,
            speed=speed,
            pack_rate_hz=pack_rate_hz,
            line=line,
            drive=drive,
            epoch=epoch,
        )
        self._engine.line.checkweigher(checkweigher)
        self._checkweigher = checkweigher
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self._reads_sent = 0
        self._clients_changed = asyncio.Condition()

    # ------------------------------------------------------------------ public API

    @property
    def client_count(self) -> int:
        """Number of connected clients."""
        return len(self._writers)

    @property
    def reads_sent(self) -> int:
        """Scenario reads sent so far (to however many clients were connected)."""
        return self._reads_sent

    async def send(self, raw: bytes) -> None:
        """Write ``raw`` unchanged to every connected client and wait until it is sent."""
        writers = list(self._writers)
        for writer in writers:
            writer.write(raw)
        for writer in writers:
            try:
                async with asyncio.timeout(_DRAIN_TIMEOUT_S):
                    await writer.drain()
            except (TimeoutError, ConnectionError):
                log.warning("scanner simulator dropping a client that does not read")
                self._forget(writer)

    async def send_read(self, read: str | bytes) -> None:
        """Send one read followed by CR LF (``str`` is encoded as UTF-8)."""
        data = read.encode("utf-8") if isinstance(read, str) else read
        await self.send(data + TERMINATOR)

    async def wait_for_clients(self, count: int = 1) -> None:
        """Wait until at least ``count`` clients are connected (wrap it in a timeout)."""
        async with self._clients_changed:
            await self._clients_changed.wait_for(lambda: len(self._writers) >= count)

    # ------------------------------------------------------------------ internals

    async def _start_server(self) -> None:
        if self._server is not None:
            return
        server = await asyncio.start_server(self._handle, self._host, self._port)
        self._port = int(server.sockets[0].getsockname()[1])
        self._server = server
        log.info("scanner simulator listening on %s", self.address)

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            self._forget(writer)
        # Python 3.11's wait_closed() does not wait for connection handlers: cancel and
        # await them here so none outlives the simulator.
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
        log.info("scanner simulator on %s stopped", self.address)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Each write leaves as its own segment, so a split read really arrives in two.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        async with self._clients_changed:
            self._clients_changed.notify_all()
        try:
            while await reader.read(1024):
                pass  # scanners ignore host input here
        except ConnectionError:
            pass
        except asyncio.CancelledError:
            # The server is stopping (a dropout, or the end: _stop_server cancels its
            # handlers). Ending normally, not cancelled: Python 3.11's stream server asks a
            # cancelled handler task for its exception, which raises and is logged as an
            # error with a traceback at every dropout (3.12 checks for cancellation first).
            # The same as the gateway's control socket (gateway/control.py).
            pass
        finally:
            self._forget(writer)
            if task is not None:
                self._handlers.discard(task)

    def _forget(self, writer: asyncio.StreamWriter) -> None:
        if writer in self._writers:
            self._writers.discard(writer)
            writer.close()

    async def _apply(self, events: Sequence[SimEvent]) -> None:
        for event in events:
            match event:
                case PackEvent(checkweigher_id=cw, label=label) if (
                    cw == self._checkweigher and label is not None
                ):
                    self._reads_sent += 1
                    await self.send_read(label)
                case DropoutChanged(active=True):
                    await self._stop_server()
                case DropoutChanged(active=False):
                    await self._start_server()
