"""Device peers that flood a gateway: the project's simulators, driven as fast as they go.

Each runs as a child process, so its busy loop does not slow the test's own probes::

    python -m tests.support.flood_peers opcua PORT
    python -m tests.support.flood_peers modbus PORT

It prints ``waiting`` and waits for a line on stdin; then it starts listening on ``PORT``
(so the gateway measured before the flood has nothing connected yet), prints ``flooding``,
and floods until SIGTERM or until stdin closes. What it writes follows fixed formulas, so the
test can check every stored value:

* OPC UA: pack after pack on ``CW1`` as a checkweigher writes them (weights, tare, label
  sequence, accepted, the counter last), with net weight :func:`pack_net_g` of the counter
  and gross = net + :data:`TARE_G`; and a new temperature on ``P1`` and ``P2`` with every
  pack, :func:`probe_celsius` of the pack number.
* Modbus: input registers ``0..MODBUS_TAGS-1`` hold :func:`register_tenths` of their address
  (tenths of a degree); the gateway's fast polls of all of them are the flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

from adapters.simulators import ModbusSimulator, OpcUaSimulator
from gateway.core.codecs.registers import Table
from tests.support.opcua_harness import LINE

TARE_G = 12.5
MODBUS_TAGS = 120
"""Input registers served: one read request of the Modbus limit (125) polls them all."""


def pack_net_g(counter: int) -> float:
    """Net weight written with pack ``counter``."""
    return 200.0 + counter % 100


def probe_celsius(counter: int) -> float:
    """Temperature written on the probes with pack ``counter``."""
    return 2.0 + (counter % 50) / 10


def register_tenths(address: int) -> int:
    """What input register ``address`` holds: tenths of a degree."""
    return 20 + address % 50


class FloodModbusSimulator(ModbusSimulator):
    """The project's Modbus simulator with :data:`MODBUS_TAGS` temperature input registers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(drive=False, **kwargs)
        self._mapped[Table.INPUT] = frozenset(range(MODBUS_TAGS))
        self.set_registers(Table.INPUT, 0, [register_tenths(a) for a in range(MODBUS_TAGS)])


async def _flood_opcua(sim: OpcUaSimulator) -> None:
    counter = 0
    while True:
        counter += 1
        net = pack_net_g(counter)
        await sim.set_value("CW1.LastNetWeight", net)
        await sim.set_value("CW1.LastGrossWeight", net + TARE_G)
        await sim.set_value("CW1.TareWeight", TARE_G)
        await sim.set_value("CW1.LabelSequence", counter)
        await sim.set_value("CW1.Accepted", True)
        await sim.set_value("CW1.PackCounter", counter)
        for probe in ("P1", "P2"):
            await sim.set_value(f"{probe}.Temperature", probe_celsius(counter))
        # The writes above need not suspend; the server must get to its clients' requests.
        await asyncio.sleep(0)


async def _stdin() -> asyncio.StreamReader:
    # A pipe read by the event loop, not a thread: SIGTERM can cancel a wait on it.
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _until_closed(stdin: asyncio.StreamReader) -> None:
    while await stdin.readline():
        pass


async def main(kind: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    stdin = await _stdin()
    print("waiting", flush=True)
    await stdin.readline()
    if kind == "opcua":
        opcua = OpcUaSimulator(port=port, drive=False, line=LINE, scanner_checkweigher=None)
        async with opcua:
            print("flooding", flush=True)
            flood = asyncio.create_task(_flood_opcua(opcua))
            try:
                await _until_closed(stdin)
            finally:
                flood.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flood
    else:
        async with FloodModbusSimulator(port=port):
            print("flooding", flush=True)
            await _until_closed(stdin)


if __name__ == "__main__":
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
