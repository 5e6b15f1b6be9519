"""The Modbus adapter over Modbus RTU, against a real pymodbus RTU serial server.

The serial line is a null-modem cable made of two pseudo-terminal pairs (``os.openpty``)
whose master ends are bridged byte for byte in the event loop, the way ``socat`` does it:
pymodbus' ``ModbusSerialServer`` opens one slave end by path, the adapter opens the other
through a symlink (like a udev ``/dev/serial/by-id/...`` link), and both go through pyserial
and pymodbus' serial transport exactly as with a USB-RS485 adapter. Nothing is mocked. The
register map, faults and silence come from the project's ModbusSimulator, served over RTU.

A pty has no bit-level framing, so baud rate and parity mean nothing on it; some kernels even
refuse PARENB or CS7 on a pty (EINVAL). The devices here use 8N2 (Modbus over Serial Line
V1.02 §2.5.1: no parity takes two stop bits), which every pty accepts.

Register words are literal hex, worked out by hand. Exception codes: MBAP V1.1b3 §7.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import tty
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
import serial  # type: ignore[import-untyped]  # pyserial ships no type hints
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from adapters.modbus import ModbusAdapter
from adapters.simulators import ModbusSimulator
from adapters.simulators.modbus_server import DEVICE_ID
from gateway.config import ModbusRtuDevice
from gateway.core.clock import SystemClock
from gateway.core.codecs.registers import Table
from gateway.core.link import LinkState
from gateway.core.records import DeviceEvent
from tests.support.collector import Collector, running
from tests.support.waiting import wait_for

FC_HOLDING, FC_INPUT = 3, 4  # MBAP v1.1b3 §6.3 / §6.4

# ----------------------------------------------------------------------------- the line


class NullModem:
    """Two pty pairs with their masters bridged: a serial cable between two port paths.

    ``server_port`` is the device's end. ``port`` is the gateway's end, a symlink that
    :meth:`unplug` removes (closing that pty pair, as when a USB adapter is pulled) and
    :meth:`plug` points at a fresh pty pair. Each pair's slave stays open here too, so its
    master never sees a hang-up while the program on that end has the port closed, and it is
    raw from the start (no echo, no line editing) like a real serial line.
    """

    def __init__(self, link: Path) -> None:
        self.port = str(link)
        self._loop = asyncio.get_running_loop()
        self._server_end = self._open_pair()
        self.server_port = os.ttyname(self._server_end[1])
        self._gateway_end: tuple[int, int] | None = None
        self.plug()

    @staticmethod
    def _open_pair() -> tuple[int, int]:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        return master, slave

    @property
    def gateway_tty(self) -> str:
        """The pty the symlink points at now."""
        return os.path.realpath(self.port)

    def plug(self) -> None:
        """Connect the gateway's end (again): a new pty pair behind the same path."""
        assert self._gateway_end is None
        self._gateway_end = self._open_pair()
        os.symlink(os.ttyname(self._gateway_end[1]), self.port)
        a, b = self._server_end[0], self._gateway_end[0]
        self._loop.add_reader(a, self._copy, a, b)
        self._loop.add_reader(b, self._copy, b, a)

    def unplug(self) -> None:
        """Pull the gateway's end: its pty disappears, a program holding it gets EIO."""
        if self._gateway_end is None:
            return
        master, slave = self._gateway_end
        self._gateway_end = None
        self._loop.remove_reader(self._server_end[0])
        self._loop.remove_reader(master)
        os.unlink(self.port)
        os.close(master)
        os.close(slave)

    def close(self) -> None:
        self.unplug()
        for fd in self._server_end:
            os.close(fd)

    @staticmethod
    def _copy(source: int, target: int) -> None:
        try:
            data = os.read(source, 4096)
            os.write(target, data)
        except (BlockingIOError, InterruptedError):
            pass  # nobody reading the other end for a while: bytes are lost, as on a wire
        except OSError:
            pass  # the other end was just closed


class RtuSimulator(ModbusSimulator):
    """The project's register map and test hooks, served by pymodbus over RTU.

    ``port`` is a serial port path, or ``None`` for RTU framing over TCP (a transparent
    Ethernet-to-serial converter) on ``tcp_port``. Every register request is logged.
    """

    def __init__(self, port: str | None, **kwargs: Any) -> None:
        super().__init__(drive=False, **kwargs)
        self.serial_port = port
        self.tcp_port = 0
        self.log: list[tuple[float, int, int, int]] = []

    async def _start_server(self) -> None:
        if self._server is not None:
            return
        device = SimDevice(  # as ModbusSimulator: every register valid, _action decides
            id=DEVICE_ID,
            simdata=(
                [SimData(0, count=16, values=False, datatype=SimDataType.BITS)],
                [SimData(0, count=16, values=False, datatype=SimDataType.BITS)],
                [SimData(0, count=0x10000, values=0, datatype=SimDataType.REGISTERS)],
                [SimData(0, count=0x10000, values=0, datatype=SimDataType.REGISTERS)],
            ),
            action=self._action,
        )
        server: ModbusSerialServer | ModbusTcpServer
        if self.serial_port is None:
            server = ModbusTcpServer(
                device,
                framer=FramerType.RTU,
                address=("127.0.0.1", self.tcp_port),
                trace_packet=self._trace,
            )
        else:
            server = ModbusSerialServer(
                device,
                framer=FramerType.RTU,
                port=self.serial_port,
                baudrate=19200,
                parity="N",
                stopbits=2,
                trace_packet=self._trace,
            )
        await server.serve_forever(background=True)
        if self.serial_port is None:
            # pymodbus types its transport as a connection's, but a server's is a listener
            listener = cast(asyncio.Server, server.transport)
            self.tcp_port = int(listener.sockets[0].getsockname()[1])
        self._server = server  # type: ignore[assignment]

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: Any,
    ) -> Any:
        self.log.append((time.monotonic(), function_code, address, count))
        return await super()._action(
            function_code, start_address, address, count, registers, set_values
        )

    def requests(self, function_code: int | None = None, since: float = 0.0) -> list[float]:
        """Arrival times of requests (optionally of one function code) after ``since``."""
        return [t for t, fc, _, _ in self.log if t >= since and function_code in (None, fc)]


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[NullModem]:
    cable = NullModem(tmp_path / "ttyUSB-lineside")
    try:
        yield cable
    finally:
        cable.close()


@contextlib.asynccontextmanager
async def rtu_device(line: NullModem) -> AsyncIterator[RtuSimulator]:
    sim = RtuSimulator(line.server_port)
    async with sim:
        yield sim


def opened(path: str) -> int:
    """File descriptors of this process open on ``path`` (Linux /proc)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == path
    return count


TT1 = {"name": "TT1", "table": "input", "address": 0, "type": "int16", "scale": 0.1}
P3 = {
    "name": "P3",
    "table": "holding",
    "address": 100,
    "type": "float32",
    "order": "CDAB",
    "location": "dispatch chiller",
}


def device(port: str, tags: Sequence[dict[str, Any]], **settings: Any) -> ModbusRtuDevice:
    """An RTU temperature probe on ``port``, 8N2, with test-sized timings."""
    config: dict[str, Any] = {
        "kind": "modbus_rtu",
        "id": "rtu1",
        "line": "L1",
        "role": "temperature_probe",
        "serial_port": port,
        "baudrate": 19200,
        "parity": "N",
        "stopbits": 2,
        "bytesize": 8,
        "unit_id": DEVICE_ID,
        "poll_interval_ms": 20,
        "timeout_s": 0.2,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.4,
        "recovery_time_s": 0.3,
        "tags": list(tags),
    }
    return ModbusRtuDevice.model_validate(config | settings)


# ----------------------------------------------------------------------------- tests


async def test_rtu_int16_and_float32_cdab_become_temperature_readings(line: NullModem) -> None:
    async with rtu_device(line) as sim:
        sim.set_registers(Table.INPUT, 0, [0xFF85])  # int16 -123 -> -12.3 °C at ×0.1
        sim.set_registers(Table.HOLDING, 100, [0x0000, 0x4020])  # float32 2.5, CDAB low first
        sink = Collector()
        adapter = ModbusAdapter(device(line.port, [TT1, P3]), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sink.readings("P3")) >= 5, what="five P3 readings")
            assert adapter.state is LinkState.UP
            assert adapter.last_error == ""
        assert {round(r.celsius, 6) for r in sink.readings("TT1")} == {-12.3}
        assert {r.celsius for r in sink.readings("P3")} == {2.5}
        first = sink.readings("P3")[0]
        assert (first.device, first.line, first.location) == ("rtu1", "L1", "dispatch chiller")
        [up] = [r for r in sink.records if isinstance(r, DeviceEvent) and r.kind == "link_up"]
        assert up.detail == {"endpoint": f"{line.port} unit {DEVICE_ID}"}
        # One FC03 and one FC04 per cycle went over the line.
        assert {(fc, a, c) for _, fc, a, c in sim.log} == {(FC_HOLDING, 100, 2), (FC_INPUT, 0, 1)}


async def test_rtu_requests_keep_the_inter_frame_gap(line: NullModem) -> None:
    # 1200 baud 8N2: 11 bits a character, 3.5 characters = 32.1 ms of silence between a reply
    # and the next request (Modbus over Serial Line V1.02 §2.5.1.1). A pty ignores the speed,
    # so what is measured here is the adapter's own pacing.
    async with rtu_device(line) as sim:
        sink = Collector()
        dev = device(line.port, [TT1, P3], baudrate=1200, poll_interval_ms=200)
        adapter = ModbusAdapter(dev, sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sim.requests()) >= 6, what="three cycles")
        times = sim.requests()
        within_cycle = [b - a for a, b in zip(times[::2], times[1::2], strict=False)]
        assert within_cycle
        assert all(gap >= 3.5 * 11 / 1200 for gap in within_cycle), within_cycle


async def test_rtu_exception_02_is_a_configuration_error_like_tcp(line: NullModem) -> None:
    async with rtu_device(line) as sim:
        sim.set_registers(Table.INPUT, 0, [0x0032])  # 5.0 °C
        sim.set_registers(Table.HOLDING, 100, [0x0000, 0x4020])  # 2.5 °C
        sink = Collector()
        adapter = ModbusAdapter(device(line.port, [TT1, P3]), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: adapter.state is LinkState.UP and bool(sink.readings("P3")))
            sim.set_fault(100, 101, 0x02)
            t0 = time.monotonic()
            await wait_for(lambda: len(sim.requests(FC_INPUT, t0)) >= 10, what="10 cycles")
            # Refused as configured: asked once, then left alone for config_retry_s.
            assert len(sim.requests(FC_HOLDING, t0)) == 1
            assert adapter.state is LinkState.DEGRADED
            assert "0x02 ILLEGAL DATA ADDRESS" in adapter.last_error
        [event] = sink.events("config_error")
        assert event.detail["code"] == 0x02
        assert event.detail["name"] == "ILLEGAL DATA ADDRESS"
        assert (event.detail["table"], event.detail["address"], event.detail["count"]) == (
            "holding",
            100,
            2,
        )
        assert event.detail["tags"] == ["P3"]
        assert [r.reason for r in sink.rejected("P3")] == ["quality_bad"]
        # The device answered (with an exception): the link stayed up, TT1 went on.
        assert sink.events("link_down") == []
        assert len(sink.readings("TT1")) >= 10


async def test_rtu_device_that_stops_answering_is_down_then_recovers(line: NullModem) -> None:
    async with rtu_device(line) as sim:
        sim.set_registers(Table.INPUT, 0, [0x0032])  # 5.0 °C
        sink = Collector()
        adapter = ModbusAdapter(device(line.port, [TT1]), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sink.readings("TT1")) >= 3, what="readings")
            await sim.stop()  # the device goes away; the cable and the port stay
            t0 = time.monotonic()
            await wait_for(lambda: adapter.state is LinkState.DOWN, what="DOWN")
            [down] = sink.events("link_down")
            assert "no valid reply" in down.detail["error"]
            attempts = adapter.connect_attempts
            await wait_for(lambda: adapter.connect_attempts >= attempts + 2, what="2 more tries")
            # Left alone for recovery_time_s (0.3 s) plus the 0.2 s timeout between tries.
            tries = adapter.connect_attempts - attempts + 1
            assert time.monotonic() - t0 >= (tries - 1) * 0.3
            sim.set_registers(Table.INPUT, 0, [0x0064])  # 10.0 °C when it is back
            await sim.start()
            await wait_for(lambda: bool(sink.events("link_up")), what="link_up")
            await wait_for(
                lambda: any(r.celsius == 10.0 for r in sink.readings("TT1")), what="10 °C"
            )
            assert adapter.state is LinkState.UP
        [up] = sink.events("link_up")
        assert up.detail["down_for_s"] >= 0.3
        assert len(sink.events("link_down")) == 1
        assert adapter.reconnects == 1


async def test_rtu_unplugged_adapter_is_down_then_recovers(line: NullModem) -> None:
    async with rtu_device(line) as sim:
        sim.set_registers(Table.INPUT, 0, [0x0032])
        sink = Collector()
        adapter = ModbusAdapter(device(line.port, [TT1]), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sink.readings("TT1")) >= 3, what="readings")
            line.unplug()
            t0 = time.monotonic()
            await wait_for(lambda: adapter.state is LinkState.DOWN, what="DOWN")
            attempts = adapter.connect_attempts
            await wait_for(lambda: adapter.connect_attempts >= attempts + 3, what="3 failed opens")
            [down] = sink.events("link_down")
            # Seen mid-request (EIO on the pty), before a request, or when reopening.
            assert "lost" in down.detail["error"] or "cannot connect" in down.detail["error"]
            # The port can't be opened: retried with the backoff (0.05 s doubling to 0.4 s,
            # jitter floor 10 %), never in a busy loop.
            assert adapter.connect_attempts - attempts <= 15
            assert "cannot connect" in adapter.last_error
            line.plug()
            await wait_for(lambda: bool(sink.events("link_up")), what="link_up")
            readings = len(sink.readings("TT1"))
            await wait_for(lambda: len(sink.readings("TT1")) > readings, what="readings again")
            assert adapter.state is LinkState.UP
            assert opened(line.gateway_tty) == 2, "the cable's fd and the adapter's"
        [up] = sink.events("link_up")
        assert 0 < up.detail["down_for_s"] <= time.monotonic() - t0
        assert len(sink.events("link_down")) == 1
        assert adapter.reconnects == 1


async def test_rtu_cancellation_leaves_no_tasks_and_frees_the_port(
    line: NullModem, caplog: pytest.LogCaptureFixture
) -> None:
    tasks_before = asyncio.all_tasks()
    async with rtu_device(line) as sim:
        sim.set_registers(Table.INPUT, 0, [0x0032])
        # Cancelled at every early step (before opening, just after opening the port while
        # pymodbus still sets it up, mid-request) and then at random moments.
        rng = random.Random(7)
        for step in [*range(8), *(None for _ in range(10))]:
            adapter = ModbusAdapter(
                device(line.port, [TT1], poll_interval_ms=10), Collector(), SystemClock()
            )
            task = asyncio.create_task(adapter.run())
            if step is None:
                await asyncio.sleep(rng.uniform(0.0, 0.05))
            else:
                for _ in range(step):
                    await asyncio.sleep(0)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=1.0)
            assert done == {task}, "run() ignored its cancellation"
            assert task.cancelled()
            assert opened(line.gateway_tty) == 1, "the adapter left the port open"

        # Cancelled while a request is outstanding to a device that never answers.
        sim.silent = True
        sink = Collector()
        adapter = ModbusAdapter(device(line.port, [TT1], timeout_s=5.0), sink, SystemClock())
        task = asyncio.create_task(adapter.run())
        t0 = time.monotonic()
        await wait_for(lambda: bool(sim.requests(since=t0)), what="a request on the line")
        started = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.0
        assert task.cancelled()
        # The exclusive lock is gone: the port opens again at once.
        with serial.serial_for_url(line.port, exclusive=True):
            pass

    def strays() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() - tasks_before if not t.done()}

    await wait_for(lambda: not strays(), timeout=2.0, what="no tasks left behind")
    assert opened(line.gateway_tty) == 1
    # Nothing failed behind the adapter's back (e.g. a pymodbus callback on a closed port).
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


async def test_serial_port_may_be_a_pyserial_url_rtu_over_tcp() -> None:
    # A transparent Ethernet-to-serial converter: RTU frames over a raw TCP socket.
    async with RtuSimulator(None) as sim:
        sim.set_registers(Table.INPUT, 0, [0xFF2E])  # int16 -210 -> -21.0 °C
        sink = Collector()
        url = f"socket://127.0.0.1:{sim.tcp_port}"
        dev = device(url, [TT1], parity="E", stopbits=1)  # meaningless on a socket
        adapter = ModbusAdapter(dev, sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sink.readings("TT1")) >= 3, what="readings")
            assert adapter.state is LinkState.UP
        assert {round(r.celsius, 6) for r in sink.readings("TT1")} == {-21.0}
        assert sim.log, "the requests went to the RTU-framed server"
