"""Half-open device connections (docs/reference/reliability.md §7 row 9): the route to a PLC
black-holed.

The fault proxy sits between the adapter and a real server (an asyncua server, a pymodbus
server) and, in black-hole mode, keeps every TCP connection open while nothing gets through,
either way: the socket looks fine, only the silence tells. Builds on the single-outage tests
in ``test_opcua_adapter.py`` (hung server) and ``test_modbus_adapter.py`` (silent server):
here the outage repeats, and each cycle must be noticed (a ``link_down`` naming the timeout),
end in a reconnect (``link_up``, fresh values read), and leave no task behind: the client
side's tasks are counted after every cycle and after the adapter is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Any

import pytest

from adapters.modbus import ModbusAdapter
from adapters.opcua import OpcUaAdapter
from adapters.simulators import ModbusSimulator
from gateway.core.clock import SystemClock
from gateway.core.codecs.registers import Table
from gateway.core.link import LinkState
from gateway.core.records import DeviceEvent
from tests.support.collector import Collector
from tests.support.faultproxy import FaultProxy
from tests.support.modbus_harness import TT
from tests.support.modbus_harness import device as modbus_device
from tests.support.opcua_harness import Simulator, client_tasks, probes
from tests.support.waiting import wait_for

CYCLES = 3
pytestmark = pytest.mark.slow


def modbus_client_tasks(device_id: str) -> set[asyncio.Task[Any]]:
    """Live tasks of the Modbus *client* side: the adapter's and pymodbus's client ones."""
    found = set()
    for task in asyncio.all_tasks():
        if task.done():
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if (
            task.get_name().startswith(("adapter[", device_id))
            or "/pymodbus/client/" in filename
            or "/adapters/modbus/" in filename
        ):
            found.add(task)
    return found


async def black_hole_cycles(
    proxy: FaultProxy,
    adapter: Any,
    sink: Collector,
    tasks: Callable[[], set[asyncio.Task[Any]]],
    fresh_value: Callable[[int], Any],
    read_back: Callable[[int], bool],
) -> None:
    """Black-hole the route CYCLES times; each time: noticed, reconnected, nothing leaked."""
    task = asyncio.create_task(adapter.run(), name=f"adapter[{adapter.device_id}]")
    try:
        await wait_for(lambda: adapter.state is LinkState.UP, timeout=10, what="first connection")
        await wait_for(lambda: bool(sink.readings()), timeout=10, what="first readings")
        tasks_up = len(tasks())
        assert tasks_up > 0, "the client side's tasks are seen (the count means something)"
        for cycle in range(1, CYCLES + 1):
            connections = proxy.stats.connections
            proxy.blackhole()

            def noticed(n: int = cycle) -> bool:
                return len(sink.events("link_down")) == n

            await wait_for(noticed, timeout=10, what="noticed")
            assert adapter.state is not LinkState.UP

            # Reconnects go on against the hung route (accepted, then silent), with backoff.
            def retried(c: int = connections) -> bool:
                return proxy.stats.connections > c

            await wait_for(retried, what="a retry")
            proxy.pass_through()

            def back(n: int = cycle) -> bool:
                return len(sink.events("link_up")) == n

            await wait_for(back, timeout=15, what="back")
            await fresh_value(cycle)
            await wait_for(functools.partial(read_back, cycle), timeout=10, what="a fresh value")
            await wait_for(lambda: len(tasks()) <= tasks_up, timeout=5, what="no task left over")
            assert len(tasks()) == tasks_up
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await wait_for(lambda: not tasks(), timeout=5, what="every client task gone")
    assert adapter.reconnects == CYCLES
    kinds = [e.kind for e in sink.of(DeviceEvent) if e.kind.startswith("link_")]
    assert kinds == ["link_up"] + ["link_down", "link_up"] * CYCLES


async def test_opcua_half_open_cycles_reconnect_without_leaking_tasks() -> None:
    async with Simulator() as sim, FaultProxy(sim.port) as proxy:
        before = client_tasks()
        assert not before
        sink = Collector()
        config = probes(f"opc.tcp://127.0.0.1:{proxy.port}/lineside", timeout_s=0.5)
        adapter = OpcUaAdapter(config, sink, SystemClock())

        async def new_value(cycle: int) -> None:
            await sim.set_value("P1.Temperature", 20.0 + cycle)

        def seen(cycle: int) -> bool:
            return any(r.celsius == 20.0 + cycle for r in sink.readings("P1"))

        await black_hole_cycles(proxy, adapter, sink, client_tasks, new_value, seen)
        for down in sink.events("link_down"):
            assert "no answer in time" in down.detail["error"]
        # The hung sessions' subscriptions were cleaned up: exactly one is left, then none.
        await wait_for(lambda: sim.subscriptions() == [], timeout=5, what="clean shutdown")


async def test_modbus_half_open_cycles_reconnect_without_leaking_tasks() -> None:
    async with ModbusSimulator(drive=False) as sim, FaultProxy(sim.port) as proxy:
        sim.set_registers(Table.INPUT, 0, [0x0032])  # 5.0 °C
        sink = Collector()
        adapter = ModbusAdapter(modbus_device(proxy.port, [TT[0]]), sink, SystemClock())
        assert not modbus_client_tasks(adapter.device_id)

        async def new_value(cycle: int) -> None:
            sim.set_registers(Table.INPUT, 0, [0x0064 + cycle])  # 10.1, 10.2, ... °C

        def seen(cycle: int) -> bool:
            return any(abs(r.celsius - (10.0 + cycle / 10)) < 1e-9 for r in sink.readings("TT1"))

        await black_hole_cycles(
            proxy,
            adapter,
            sink,
            lambda: modbus_client_tasks(adapter.device_id),
            new_value,
            seen,
        )
        for down in sink.events("link_down"):
            assert "no valid reply" in down.detail["error"]
