"""A loopback TCP fault proxy, placed between the gateway and one of its peers.

    async with FaultProxy(upstream_port) as proxy:      # in the test's event loop
        config points at proxy.port
        proxy.blackhole()        # half-open: connections stay open, nothing gets through
        proxy.pass_through()     # what was held back flows again
        proxy.reset()            # RST every connection (SO_LINGER 0), and each new one
        proxy.latency(0.2)       # every chunk 0.2 s late, each way (pipelined)
        proxy.throttle(20_000)   # at most 20 kB/s each way, per connection
        proxy.cut_after(100)     # a connection is reset once 100 bytes went upstream
        proxy.stats.connections, proxy.stats.bytes_up, proxy.stats.bytes_down

    with ThreadedFaultProxy(upstream_port) as proxy:     # from plain code (a child gateway)
        proxy.blackhole()                                # the same methods, blocking

Modes (docs/reference/reliability.md §5: netem is missing on this kernel, toxiproxy is not
packaged):

* **pass**: bytes are copied both ways as they come.
* **blackhole**: a hung peer or a black-holed route. Every connection stays open and nothing
  is forwarded, either way (what the sender wrote is held in the proxy's and the kernel's
  buffers); new connections are accepted (and connected upstream) but get nothing either.
  Switching back to pass forwards what was held, as a healed route does; a peer that lost
  its state is modelled by :meth:`FaultProxy.reset` (or :meth:`FaultProxy.reset_connections`)
  instead.
* **reset**: every open connection is aborted with ``SO_LINGER`` 0, so both ends get an RST,
  and every new connection is reset right after it is accepted.
* **latency**: each chunk is forwarded ``seconds`` after it was read, order kept; reading
  goes on meanwhile, so latency does not cut throughput.
* **throttle**: each direction of each connection is paced to ``bytes_per_s``.
* **cut after N bytes**: a connection is reset once ``n`` bytes have gone upstream (client to
  peer; ``direction="down"`` counts the other way) since the mode was set or the connection
  was opened; exactly ``n`` bytes are delivered before the RST.

Latency and throttle combine with pass; blackhole, reset and cut replace each other.
``capture=True`` keeps a copy of what went upstream (e.g. to prove which OPC UA security
policy a client asked for: it travels in clear text in OpenSecureChannel).
Everything binds 127.0.0.1. Counters are in :attr:`FaultProxy.stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

CHUNK = 65536
THROTTLED_CHUNK = 1024
CAPTURE_LIMIT = 16 * 1024 * 1024
QUEUE_CHUNKS = 64
"""Chunks read ahead per direction before reading waits (bounded memory under throttle)."""


class Mode(enum.StrEnum):
    """What the proxy does with traffic."""

    PASS = "pass"
    BLACKHOLE = "blackhole"
    RESET = "reset"
    CUT = "cut"


@dataclass
class ProxyStats:
    """Counters since the proxy started."""

    connections: int = 0
    """Connections accepted."""
    active: int = 0
    """Connections open right now."""
    bytes_up: int = 0
    """Bytes forwarded from clients to the peer."""
    bytes_down: int = 0
    """Bytes forwarded from the peer to clients."""
    resets: int = 0
    """Connections aborted with an RST (reset mode, cut, :meth:`FaultProxy.reset_connections`)."""
    cuts: int = 0
    """Connections cut after their byte allowance."""
    upstream_failures: int = 0
    """Connections the peer refused (the client then got an RST)."""


def _rst(writer: asyncio.StreamWriter) -> None:
    """Abort with SO_LINGER 0: the kernel sends an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One proxied connection: the client's side and the peer's side."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.sent = {"up": 0, "down": 0}
        """Bytes forwarded each way since the link opened or the cut mode was set."""
        self.closed = False

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        _rst(self.client)
        if self.upstream is not None:
            _rst(self.upstream)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.client.transport.abort()
        if self.upstream is not None:
            self.upstream.transport.abort()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream_host:upstream_port``; see the module.

    Use it as an async context manager (or :meth:`start` / :meth:`close`) inside a running
    event loop; the mode methods are plain methods, effective at once.
    """

    def __init__(
        self,
        upstream_port: int,
        upstream_host: str = "127.0.0.1",
        *,
        port: int = 0,
        capture: bool = False,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = port
        self.capture = capture
        self.captured = bytearray()
        """With ``capture``: every byte forwarded upstream (client to peer), in order."""
        self.stats = ProxyStats()
        self.mode = Mode.PASS
        self.delay_s = 0.0
        self.rate: float | None = None
        self.cut_bytes = 0
        self.cut_direction = "up"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Listen (on ``port``, or an ephemeral one that :attr:`port` then holds)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and abort every connection."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect."""
        return ("127.0.0.1", self.port)

    # ------------------------------------------------------------------ modes

    def pass_through(self) -> None:
        """Forward everything (keeps latency and throttle; clears a cut)."""
        self._set(Mode.PASS)

    def blackhole(self) -> None:
        """Hold every byte; keep every connection open (a hung peer, half-open)."""
        self._set(Mode.BLACKHOLE)

    def reset(self) -> None:
        """RST every open connection now, and every new one until the mode changes."""
        self._set(Mode.RESET)
        self.reset_connections()

    def cut_after(self, n: int, direction: str = "up") -> None:
        """Reset each connection once ``n`` more bytes have gone ``direction`` ("up"/"down")."""
        if direction not in ("up", "down") or n < 0:
            raise ValueError("cut_after needs n >= 0 and direction 'up' or 'down'")
        self.cut_bytes = n
        self.cut_direction = direction
        for link in self._links:
            link.sent = {"up": 0, "down": 0}
        self._set(Mode.CUT)

    def latency(self, seconds: float) -> None:
        """Forward each chunk ``seconds`` after it was read (0 for none)."""
        self.delay_s = max(0.0, seconds)

    def throttle(self, bytes_per_s: float | None) -> None:
        """Pace each direction of each connection (``None`` for no limit)."""
        self.rate = bytes_per_s if bytes_per_s and bytes_per_s > 0 else None

    def reset_connections(self) -> int:
        """RST every open connection (the mode stays); how many there were."""
        links = [link for link in self._links if not link.closed]
        for link in links:
            link.abort()
            self.stats.resets += 1
        return len(links)

    def _set(self, mode: Mode) -> None:
        self.mode = mode
        if mode is Mode.BLACKHOLE:
            self._flowing.clear()
        else:
            self._flowing.set()

    # ------------------------------------------------------------------ connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The connection is served by a task of our own, so closing can cancel it.
        task = asyncio.create_task(self._serve(reader, writer), name="fault-proxy-link")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        self.stats.connections += 1
        self.stats.active += 1
        self._links.add(link)
        try:
            if self.mode is Mode.RESET:
                link.abort()
                self.stats.resets += 1
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
            except OSError:
                self.stats.upstream_failures += 1
                link.abort()
                return
            link.upstream = up_writer
            if link.closed:  # reset while connecting upstream
                up_writer.transport.abort()
                return
            await asyncio.gather(
                self._pump(link, reader, up_writer, "up"),
                self._pump(link, up_reader, writer, "down"),
            )
        finally:
            link.close()
            self._links.discard(link)
            self.stats.active -= 1

    async def _pump(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        """Copy one direction: a reader fills a bounded queue, a writer drains it."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
        loop = asyncio.get_running_loop()

        async def read() -> None:
            try:
                while not link.closed:
                    await self._flowing.wait()
                    data = await source.read(THROTTLED_CHUNK if self.rate else CHUNK)
                    if not data:
                        break
                    await queue.put((loop.time() + self.delay_s, data))
            except OSError:
                link.close()  # a reset on one side: the other side loses its connection too
            await queue.put(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                while data:
                    await self._flowing.wait()
                    if link.closed:
                        return
                    data = await self._forward(link, sink, direction, data)
            # The source closed: pass the half-close on.
            if not link.closed and sink.can_write_eof():
                with contextlib.suppress(OSError):
                    sink.write_eof()
        except OSError:
            link.close()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _forward(
        self, link: _Link, sink: asyncio.StreamWriter, direction: str, data: bytes
    ) -> bytes:
        """Write what the mode allows of ``data``; return what is left for later."""
        piece = data
        cut = False
        if self.mode is Mode.CUT and direction == self.cut_direction:
            allowed = self.cut_bytes - link.sent[direction]
            if allowed <= len(piece):
                piece, cut = piece[: max(allowed, 0)], True
        if piece:
            sink.write(piece)
            await sink.drain()
            link.sent[direction] += len(piece)
            if direction == "up":
                self.stats.bytes_up += len(piece)
                if self.capture and len(self.captured) < CAPTURE_LIMIT:
                    self.captured.extend(piece)
            else:
                self.stats.bytes_down += len(piece)
            if self.rate:
                await asyncio.sleep(len(piece) / self.rate)
        if cut:
            self.stats.cuts += 1
            self.stats.resets += 1
            link.abort()
            return b""
        return data[len(piece) :]


class ThreadedFaultProxy:
    """A :class:`FaultProxy` on its own event loop in a daemon thread, for plain code.

    The mode methods block until the proxy's loop has applied them.
    """

    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", *, port: int = 0
    ) -> None:
        self._upstream = (upstream_host, upstream_port, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._proxy: FaultProxy | None = None
        self._stopped: asyncio.Event | None = None

    def start(self) -> ThreadedFaultProxy:
        """Start the thread and wait until the proxy listens."""
        started = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            host, upstream_port, port = self._upstream
            self._proxy = FaultProxy(upstream_port, host, port=port)
            self._stopped = asyncio.Event()
            try:
                await self._proxy.start()
            except BaseException as exc:
                failure.append(exc)
                started.set()
                raise
            self._loop = asyncio.get_running_loop()
            started.set()
            try:
                await self._stopped.wait()
            finally:
                await self._proxy.close()

        self._thread = threading.Thread(
            target=lambda: asyncio.run(main()), name="fault-proxy", daemon=True
        )
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        if self._loop is None:
            raise RuntimeError("the fault proxy did not start")
        return self

    def close(self) -> None:
        """Close every connection, stop the loop and join the thread."""
        if self._loop is not None and self._stopped is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> ThreadedFaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def proxy(self) -> FaultProxy:
        """The proxy itself (read its counters; change it through this wrapper's methods)."""
        assert self._proxy is not None, "start() first"
        return self._proxy

    @property
    def port(self) -> int:
        """Where clients connect."""
        return self.proxy.port

    @property
    def stats(self) -> ProxyStats:
        """The proxy's counters (read from another thread: a consistent enough view)."""
        return self.proxy.stats

    def _call(self, method: Callable[[], T]) -> T:
        assert self._loop is not None, "start() first"

        async def run() -> T:
            return method()

        coroutine: Coroutine[Any, Any, T] = run()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def pass_through(self) -> None:
        """See :meth:`FaultProxy.pass_through`."""
        self._call(self.proxy.pass_through)

    def blackhole(self) -> None:
        """See :meth:`FaultProxy.blackhole`."""
        self._call(self.proxy.blackhole)

    def reset(self) -> None:
        """See :meth:`FaultProxy.reset`."""
        self._call(self.proxy.reset)

    def cut_after(self, n: int, direction: str = "up") -> None:
        """See :meth:`FaultProxy.cut_after`."""
        self._call(lambda: self.proxy.cut_after(n, direction))

    def latency(self, seconds: float) -> None:
        """See :meth:`FaultProxy.latency`."""
        self._call(lambda: self.proxy.latency(seconds))

    def throttle(self, bytes_per_s: float | None) -> None:
        """See :meth:`FaultProxy.throttle`."""
        self._call(lambda: self.proxy.throttle(bytes_per_s))

    def reset_connections(self) -> int:
        """See :meth:`FaultProxy.reset_connections`."""
        return self._call(self.proxy.reset_connections)


__all__ = ["FaultProxy", "Mode", "ProxyStats", "ThreadedFaultProxy"]
