"""Simulated Modbus TCP device: four temperature transmitters, a probe and a scale indicator.

Register map (the contract the demo config relies on). Device (unit) id 1. Addresses are
0-based PDU addresses; the Modicon reference is in brackets.

==========  =========  ========  =========  =====================================================
table       address    type      order      content
==========  =========  ========  =========  =====================================================
input       0 (30001)  int16     --         TT1 infeed product, 0.1 °C (-123 = -12.3 °C)
input       1 (30002)  int16     --         TT2 brine chiller, 0.1 °C (around -1.5 °C)
input       2 (30003)  int16     --         TT3 blast freezer, 0.1 °C (around -21 °C)
input       3 (30004)  int16     --         TT4 ice slurry tank, 0.1 °C
holding     100-101    float32   CDAB       P3 dispatch chiller, °C (word-swapped)
holding     200-201    float32   ABCD       scale (checkweigher CW2): last net weight, g
holding     202-203    float32   ABCD       scale: last gross weight, g
holding     204-205    uint32    ABCD       scale: pack counter -- written LAST for each pack
holding     206        uint16    --         scale status: bit 0 = stable (a settled weight is
                                            held), bit 1 = last pack accepted (net >= T1)
==========  =========  ========  =========  =====================================================

Every other address, every coil and discrete input, and every write answers exception 02
(ILLEGAL DATA ADDRESS): the map is read-only. Test hooks:

* ``faults`` / :meth:`ModbusSimulator.set_fault`: inclusive address ranges that answer a
  given exception code (01, 02, 03, 04, 05, 06, 0A, 0B ...) to any register request touching
  them, checked before the map (so unmapped addresses such as 9000 can fault too).
* :attr:`ModbusSimulator.silent`: the server keeps accepting TCP connections and reading
  requests but never answers, so clients time out. The ``dropout`` script uses this too.
* :meth:`ModbusSimulator.set_registers`: raw words (e.g. a NaN float), optionally held so the
  scenario does not overwrite them.
* :meth:`ModbusSimulator.map_registers`: more addresses that answer with data, for a test's
  own device map.

Implementation: pymodbus 3.16's ``SimDevice`` (``ModbusDeviceContext`` is deprecated there).
Its ``action`` hook runs for every request after pymodbus' own range check and may return an
``ExcCodes`` member, which the server turns into an exception response
(``SimRuntime.get_reg_block`` -> ``ReadHoldingRegistersRequest.datastore_update``). The device
therefore declares all 65536 registers valid and the hook enforces the map above. Silence is
done in the ``trace_packet`` hook, which can replace an outgoing frame with nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Final

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from adapters.simulators._driver import ScenarioServer
from adapters.simulators.scenario import (
    DropoutChanged,
    LineSpec,
    PackEvent,
    ProbeSample,
    ScenarioName,
    SimEvent,
)
from gateway.core.codecs.registers import DataType, Table, WordOrder, encode_registers

__all__ = [
    "DEVICE_ID",
    "FLOAT_PROBE_ADDRESS",
    "SCALE_COUNTER_ADDRESS",
    "SCALE_GROSS_ADDRESS",
    "SCALE_NET_ADDRESS",
    "SCALE_STATUS_ADDRESS",
    "TEMPERATURE_INPUT_ADDRESS",
    "ModbusSimulator",
]

log = logging.getLogger(__name__)

DEVICE_ID: Final = 1
TEMPERATURE_INPUT_ADDRESS: Final = 0
"""Input registers 0..3: four int16 temperatures in 0.1 °C."""
FLOAT_PROBE_ADDRESS: Final = 100
"""Holding registers 100-101: float32 °C, CDAB word order."""
SCALE_NET_ADDRESS: Final = 200
SCALE_GROSS_ADDRESS: Final = 202
SCALE_COUNTER_ADDRESS: Final = 204
SCALE_STATUS_ADDRESS: Final = 206
STATUS_STABLE: Final = 0x0001
STATUS_ACCEPTED: Final = 0x0002

_REGISTERS: Final = 0x10000  # MBAP v1.1b3 §4.4: 16-bit addresses, 0x0000-0xFFFF
_READ_TABLE: Final[dict[int, Table]] = {
    1: Table.COIL,
    2: Table.DISCRETE_INPUT,
    3: Table.HOLDING,
    4: Table.INPUT,
    5: Table.COIL,
    6: Table.HOLDING,
    15: Table.COIL,
    16: Table.HOLDING,
    22: Table.HOLDING,
    23: Table.HOLDING,
}


class ModbusSimulator(ScenarioServer):
    """A pymodbus TCP server playing a scenario on the register map in the module docstring.

    Args:
        host: address to listen on.
        port: TCP port; 0 picks a free one on first start, kept across restarts.
        seed: scenario random seed.
        scenario: the script to play.
        speed: simulated seconds per real second.
        pack_rate_hz: packs per second per checkweigher.
        line: the simulated line (default :class:`LineSpec` with today's pack date).
        temperature_probes: the four probes behind input registers 0-3.
        float_probe: the probe behind holding registers 100-101.
        checkweigher: the checkweigher behind the scale registers 200-206.
        faults: ``{(first, last): code}`` inclusive register ranges answering ``code``.
        drive: play the scenario; ``False`` leaves registers alone for the test hooks.
        epoch: ``loop.time()`` at which simulated time is 0 (default: first start).
    """

    _kind = "modbus"

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
        temperature_probes: Sequence[str] = ("TT1", "TT2", "TT3", "TT4"),
        float_probe: str = "P3",
        checkweigher: str = "CW2",
        faults: Mapping[tuple[int, int], int] | None = None,
        drive: bool = True,
        epoch: float | None = None,
    ) -> None:
        if len(temperature_probes) != 4:
            raise ValueError("the map has exactly four temperature input registers")
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
        self._temperature_probes = tuple(temperature_probes)
        self._float_probe = float_probe
        self._checkweigher = checkweigher
        for probe in (*self._temperature_probes, float_probe):
            self._engine.line.probe(probe)
        self._engine.line.checkweigher(checkweigher)
        self._faults: dict[tuple[int, int], ExcCodes] = {}
        for (first, last), code in (faults or {}).items():
            self.set_fault(first, last, code)
        self._silent = False
        self._dropped = False
        self._image: dict[Table, list[int]] = {
            Table.HOLDING: [0] * _REGISTERS,
            Table.INPUT: [0] * _REGISTERS,
        }
        self._mapped: dict[Table, frozenset[int]] = {
            Table.INPUT: frozenset(range(TEMPERATURE_INPUT_ADDRESS, TEMPERATURE_INPUT_ADDRESS + 4)),
            Table.HOLDING: frozenset(
                [
                    FLOAT_PROBE_ADDRESS,
                    FLOAT_PROBE_ADDRESS + 1,
                    *range(200, SCALE_STATUS_ADDRESS + 1),
                ]
            ),
        }
        self._held: set[tuple[Table, int]] = set()
        self._server: ModbusTcpServer | None = None
        self._initial_values()

    # ------------------------------------------------------------------ public API

    @property
    def silent(self) -> bool:
        """True while requests are read but never answered (set it, or a dropout script)."""
        return self._silent or self._dropped

    @silent.setter
    def silent(self, value: bool) -> None:
        self._silent = value

    def set_fault(self, first: int, last: int, code: int) -> None:
        """Answer exception ``code`` to any register request touching ``first..last``."""
        if not 0 <= first <= last < _REGISTERS:
            raise ValueError(f"fault range must satisfy 0 <= first <= last <= 65535: {first, last}")
        self._faults[(first, last)] = ExcCodes(code)

    def clear_faults(self) -> None:
        """Remove every fault range."""
        self._faults.clear()

    def registers(self, table: Table, address: int, count: int = 1) -> list[int]:
        """The words currently held at ``address..address+count-1`` (input or holding)."""
        return self._image[table][address : address + count]

    def set_registers(
        self, table: Table, address: int, words: Sequence[int], *, hold: bool = False
    ) -> None:
        """Put raw ``words`` into the map; with ``hold`` the scenario leaves them alone."""
        if table not in self._image:
            raise ValueError(f"only input and holding registers are simulated, not {table}")
        for offset, word in enumerate(words):
            if not 0 <= word <= 0xFFFF:
                raise ValueError(f"register word out of range: {word!r}")
            self._image[table][address + offset] = word
            if hold:
                self._held.add((table, address + offset))

    def map_registers(self, table: Table, address: int, count: int = 1) -> None:
        """Make ``address..address+count-1`` answer with data too: a test's own device map
        beside the built-in one (a status word, a program number). They hold 0 until set."""
        if table not in self._mapped:
            raise ValueError(f"only input and holding registers are simulated, not {table}")
        if not 0 <= address <= address + count - 1 < _REGISTERS:
            raise ValueError(f"registers {address}..{address + count - 1} are outside the map")
        self._mapped[table] = self._mapped[table] | frozenset(range(address, address + count))

    def release(self) -> None:
        """Let the scenario drive every register pinned by ``set_registers(..., hold=True)``."""
        self._held.clear()

    # ------------------------------------------------------------------ internals

    async def _start_server(self) -> None:
        if self._server is not None:
            return
        device = SimDevice(
            id=DEVICE_ID,
            # Separate blocks per table (holding and input registers are distinct on this
            # device); the whole register space is declared so the action hook sees every
            # request and decides between data, exception 02 and a configured fault.
            simdata=(
                [SimData(0, count=16, values=False, datatype=SimDataType.BITS)],
                [SimData(0, count=16, values=False, datatype=SimDataType.BITS)],
                [SimData(0, count=_REGISTERS, values=0, datatype=SimDataType.REGISTERS)],
                [SimData(0, count=_REGISTERS, values=0, datatype=SimDataType.REGISTERS)],
            ),
            action=self._action,
        )
        server = ModbusTcpServer(device, address=(self._host, self._port), trace_packet=self._trace)
        await server.serve_forever(background=True)
        sockets = getattr(server.transport, "sockets", None) or []
        if sockets:
            self._port = int(sockets[0].getsockname()[1])
        self._server = server
        log.info("Modbus simulator listening on %s", self.address)

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it untyped
            log.info("Modbus simulator on %s stopped", self.address)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        # pymodbus sends whatever this returns; an empty frame means no answer at all.
        if sending and self.silent:
            return b""
        return data

    async def _action(  # noqa: PLR0917 - signature fixed by pymodbus SimAction
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        first, last = address, address + count - 1
        for (lo, hi), code in self._faults.items():
            if lo <= last and first <= hi:
                return code
        table = _READ_TABLE.get(function_code)
        if set_values is not None or table not in (Table.HOLDING, Table.INPUT):
            return ExcCodes.ILLEGAL_ADDRESS
        mapped = self._mapped[table]
        if any(a not in mapped for a in range(first, last + 1)):
            return ExcCodes.ILLEGAL_ADDRESS
        offset = address - start_address
        registers[offset : offset + count] = self._image[table][address : address + count]
        return None

    def _put(self, table: Table, address: int, words: Sequence[int]) -> None:
        image = self._image[table]
        for offset, word in enumerate(words):
            if (table, address + offset) not in self._held:
                image[address + offset] = word

    def _put_temperature(self, index: int, celsius: float) -> None:
        # int16 tenths of a degree, saturating like a transmitter at the end of its range.
        tenths = max(-32768, min(32767, round(celsius * 10)))
        self._put(
            Table.INPUT, TEMPERATURE_INPUT_ADDRESS + index, encode_registers(tenths, DataType.INT16)
        )

    def _put_float_probe(self, celsius: float) -> None:
        words = encode_registers(celsius, DataType.FLOAT32, WordOrder.CDAB)
        self._put(Table.HOLDING, FLOAT_PROBE_ADDRESS, words)

    def _initial_values(self) -> None:
        for index, probe in enumerate(self._temperature_probes):
            self._put_temperature(index, self._engine.probe_value(probe, 0.0))
        self._put_float_probe(self._engine.probe_value(self._float_probe, 0.0))
        self._put(Table.HOLDING, SCALE_NET_ADDRESS, encode_registers(0.0, DataType.FLOAT32))
        self._put(Table.HOLDING, SCALE_GROSS_ADDRESS, encode_registers(0.0, DataType.FLOAT32))
        self._put(Table.HOLDING, SCALE_COUNTER_ADDRESS, encode_registers(0, DataType.UINT32))
        self._put(Table.HOLDING, SCALE_STATUS_ADDRESS, [0])

    async def _apply(self, events: Sequence[SimEvent]) -> None:
        for event in events:
            match event:
                case PackEvent(checkweigher_id=cw) if cw == self._checkweigher:
                    self._apply_pack(event)
                case ProbeSample(probe_id=probe) if probe in self._temperature_probes:
                    self._put_temperature(self._temperature_probes.index(probe), event.celsius)
                case ProbeSample(probe_id=probe) if probe == self._float_probe:
                    self._put_float_probe(event.celsius)
                case DropoutChanged(active=active):
                    self._dropped = active
                    log.info("Modbus simulator %s", "silent (dropout)" if active else "answering")

    def _apply_pack(self, pack: PackEvent) -> None:
        status = STATUS_STABLE | (STATUS_ACCEPTED if pack.accepted else 0)
        self._put(Table.HOLDING, SCALE_NET_ADDRESS, encode_registers(pack.net_g, DataType.FLOAT32))
        self._put(
            Table.HOLDING, SCALE_GROSS_ADDRESS, encode_registers(pack.gross_g, DataType.FLOAT32)
        )
        self._put(Table.HOLDING, SCALE_STATUS_ADDRESS, [status])
        # The counter last: a poller that sees it change then finds this pack's weights.
        counter = pack.pack_counter % (1 << 32)
        self._put(Table.HOLDING, SCALE_COUNTER_ADDRESS, encode_registers(counter, DataType.UINT32))
