"""The Modbus adapter: one pymodbus client per device, polled on a fixed grid.

Each poll cycle reads every :class:`~adapters.codecs.registers.ReadBlock` of the device once
(neighbouring tags merged by :func:`~adapters.codecs.registers.plan_reads`), one request at a
time, decodes the tags, and hands all samples of the cycle to the device's role interpreter
together, so a checkweigher's pack counter and weights come from the same cycle.

Several tags may read the same register (the bits of a status word, ``bit``/``mask`` tags;
:mod:`adapters.codecs.bitfields`): their spans are identical, so the planner merges them and
the register is read once per cycle, every tag decoded from that one reply. Values are
decoded at their physical precision (:func:`tag_sample`).

Same cycle is not same moment. A checkweigher whose counter and values fit in one block is
read in one request, which the device answers from one image of its registers: the values
are the counter's pack's (as long as the device updates a pack's registers together, which
no client can check). When they need several requests, the scale may move on to the next
pack between them, and a pack would silently get its neighbour's weight. Then the block
holding the counter is read first, the other blocks after it, and the counter block once
more at the end (one extra request per cycle); if the counter moved in between, or could not
be read again, the pack is stored flagged ``VALUES_UNCERTAIN`` and counted
(:attr:`ModbusAdapter.uncertain_packs`). docs/devices.md has the cases.

pymodbus is only a transport here. Its own retries and its automatic reconnect are switched
off (``retries=0``, ``reconnect_delay=0``) so that this module's :class:`Backoff`, state and
events are the truth; every pymodbus error is translated into :mod:`gateway.errors` at this
boundary and never leaves the module.

Modbus RTU (:class:`~gateway.config.ModbusRtuDevice`) goes through pymodbus'
``AsyncModbusSerialClient`` with the RTU framer, which opens the port with pyserial's
``serial_for_url``: ``serial_port`` is a device path (``/dev/ttyUSB0``, a udev
``/dev/serial/by-id/...`` link) or a pyserial URL such as ``socket://10.20.1.50:4001`` (RTU
frames over a raw TCP socket, for Ethernet-to-serial converters in transparent mode) or
``rfc2217://host:port``. pyserial opens the port with an exclusive lock, so one adapter owns
one port: two RTU devices configured on the same port do not share it, the second one stays
DOWN. Everything after opening the port is the TCP code path: the same requests,
classification, backoff, events and cancellation. "Connection" for RTU means the port is
open; it is lost when pyserial reports an error (a USB adapter unplugged), and closing it after
a timeout also discards any late reply bytes (RTU frames carry no transaction id). Requests
on a serial line are kept at least 3.5 character times apart (Modbus over Serial Line V1.02
§2.5.1.1), which pymodbus does not do by itself.

Handling of failures (exception codes from the MODBUS Application Protocol Specification
V1.1b3, §7 "MODBUS Exception Responses", cited as MBAP §7):

========================  =====================  =============================================
failure                   class                  handling
========================  =====================  =============================================
01 ILLEGAL FUNCTION       DeviceConfigError      the block's tags are marked bad; one error
02 ILLEGAL DATA ADDRESS                          log and one ``config_error`` event per block;
03 ILLEGAL DATA VALUE                            the block is not read again for
                                                 ``config_retry_s`` (default 10 minutes);
                                                 state DEGRADED. The rest of the cycle goes on.
04 SERVER DEVICE FAILURE  DeviceFailure          block bad, the rest of the cycle skipped, the
(07, 08, unknown codes)                          device is not polled again before a backoff
                                                 delay (growing, capped); state DEGRADED.
05 ACKNOWLEDGE            DeviceBusy             block bad this cycle, read again next cycle;
06 SERVER DEVICE BUSY                            state DEGRADED. The rest of the cycle goes on.
0A GATEWAY PATH           DeviceUnreachable      device offline behind a gateway: rest of the
   UNAVAILABLE                                   cycle skipped, state DOWN, one ``link_down``
0B GATEWAY TARGET DEVICE                         event per outage, next try after
   FAILED TO RESPOND                             ``max(recovery_time_s, backoff)``. The TCP
                                                 connection to the gateway is kept.
timeout, wrong reply id   DeviceUnreachable      as 0A/0B, and the connection is closed (a late
                                                 reply must not be taken for the next one).
connection refused/lost,  DeviceUnreachable      state DOWN, ``link_down`` once, reconnect after
serial port won't open                           a capped, jittered backoff (never a busy loop).
or is lost                                       A connection lost mid-request ends the wait at
                                                 once instead of after the timeout.
short reply               DecodeError            block bad, read again next cycle; DEGRADED.
undecodable tag           DecodeError            that tag bad (e.g. non-ASCII text); DEGRADED.
========================  =====================  =============================================

An outage ends when the device answers again (any reply but 0A/0B; an accepted TCP connection
or an opened serial port alone does not count, so a server that accepts but never answers
stays DOWN): then one ``link_up`` event with ``down_for_s``, and state UP (or DEGRADED).

``interpreter.tick()`` (stuck values) runs after every cycle in which the device answered.

A cycle starts only when the store has room (:meth:`RecordSink.wait_for_space`): while it is
behind, polling pauses, so fast polls of many tags cannot fill the gateway's memory.

A tag whose block failed is fed to the interpreter as a BAD sample once per failure episode
(per tag and kind of failure), not every cycle: the interpreter already holds the tag as bad
and drops its last value, and repeating it would write one rejected input per tag and cycle
for as long as a device stays busy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NoReturn

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from adapters.base import (
    DeviceRecorder,
    LinkState,
    Quality,
    RecordSink,
    TagSample,
    raise_if_cancelled,
)
from adapters.codecs.bitfields import extract_field
from adapters.codecs.precision import shortest_float32
from adapters.codecs.registers import (
    DataType,
    ReadBlock,
    RegisterSpan,
    Table,
    decode_registers,
    plan_reads,
    scale,
    slice_block,
)
from adapters.roles import CheckweigherInterpreter, Interpreter, interpreter_for
from gateway.backoff import Backoff
from gateway.clock import Clock
from gateway.config import ModbusRtuDevice, ModbusTag, ModbusTcpDevice
from gateway.errors import (
    DecodeError,
    DeviceBusy,
    DeviceConfigError,
    DeviceError,
    DeviceFailure,
    DeviceUnreachable,
)

__all__ = [
    "CONFIG_RETRY_S",
    "EXCEPTION_NAMES",
    "ModbusAdapter",
    "classify_exception",
    "tag_sample",
]

log = logging.getLogger(__name__)

CONFIG_RETRY_S: Final = 600.0
"""How long a block refused with exception 01-03 is left alone before it is tried again.

The device said the request is wrong as configured; asking again every cycle only fills the
device's error counters and our logs. Every 10 minutes still notices a device that was
reconfigured or replaced, without a gateway restart.
"""

# Exception codes and names, MBAP §7 (MODBUS Application Protocol Specification V1.1b3,
# "MODBUS Exception Codes" table). 07 NEGATIVE ACKNOWLEDGE is not in V1.1b3 but was in the
# older Modicon PI-MBUS-300 reference, and some devices still send it.
EXCEPTION_NAMES: Final[dict[int, str]] = {
    0x01: "ILLEGAL FUNCTION",
    0x02: "ILLEGAL DATA ADDRESS",
    0x03: "ILLEGAL DATA VALUE",
    0x04: "SERVER DEVICE FAILURE",
    0x05: "ACKNOWLEDGE",
    0x06: "SERVER DEVICE BUSY",
    0x07: "NEGATIVE ACKNOWLEDGE",
    0x08: "MEMORY PARITY ERROR",
    0x0A: "GATEWAY PATH UNAVAILABLE",
    0x0B: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}
"""Exception code -> name as the specification spells it (MBAP §7)."""

# MBAP §7: 01-03 mean the request itself is unacceptable to this server (function not
# supported, address range not present, quantity or value not allowed): configuration.
_CONFIG_CODES: Final = frozenset({0x01, 0x02, 0x03})
# MBAP §7: 05 "accepted, but needs a long duration"; 06 "engaged in processing a long-duration
# program command; the client should retransmit later".
_BUSY_CODES: Final = frozenset({0x05, 0x06})
# MBAP §7: 0A "gateway was unable to allocate a path", 0B "no response was obtained from the
# target device; usually means that the device is not present on the network".
_GATEWAY_CODES: Final = frozenset({0x0A, 0x0B})

# Added to device.timeout_s for our own guard around a pymodbus call, which applies the same
# timeout itself; the guard only matters if pymodbus ever failed to give up on its own.
_GUARD_GRACE_S: Final = 0.25


def _frame_gap_s(device: ModbusTcpDevice | ModbusRtuDevice) -> float:
    """Least silence between the end of a reply and the next request on this device's line.

    Modbus over Serial Line V1.02 §2.5.1.1: RTU frames are separated by at least 3.5
    character times; above 19200 baud a fixed 1.750 ms. A character is a start bit, the
    data bits, the parity bit if any and the stop bits. TCP needs no gap.
    """
    if isinstance(device, ModbusTcpDevice):
        return 0.0
    if device.baudrate > 19200:
        return 0.00175
    bits = 1 + device.bytesize + (0 if device.parity == "N" else 1) + device.stopbits
    return 3.5 * bits / device.baudrate


def classify_exception(device_id: str, code: int, where: str) -> DeviceError:
    """Translate a Modbus exception response code into Lineside's error class (MBAP §7).

    01-03 -> :class:`DeviceConfigError`; 05/06 -> :class:`DeviceBusy`; 0A/0B ->
    :class:`DeviceUnreachable` (the target behind a gateway is offline); 04, 07, 08 and
    codes the specification does not define -> :class:`DeviceFailure`.
    """
    name = EXCEPTION_NAMES.get(code, "UNKNOWN EXCEPTION CODE")
    message = f"Modbus exception 0x{code:02X} {name} reading {where}"
    if code in _CONFIG_CODES:
        return DeviceConfigError(device_id, message)
    if code in _BUSY_CODES:
        return DeviceBusy(device_id, message)
    if code in _GATEWAY_CODES:
        return DeviceUnreachable(device_id, message)
    return DeviceFailure(device_id, message)


@dataclass(frozen=True, slots=True)
class _Fault:
    """Why one block read failed."""

    error: DeviceError
    category: str
    """Kind of failure, for the once-per-episode bad samples and log lines."""
    code: int | None = None
    """The Modbus exception code, when the device replied with one."""
    answered: bool = False
    """The device itself replied (so the link works), even if with an exception."""
    drop_connection: bool = False
    """The connection can't be trusted any more (timeout, lost, mismatched reply)."""


@dataclass(eq=False)
class _Block:
    """One read request of the poll cycle and what we know about it."""

    read: ReadBlock
    tags: tuple[ModbusTag, ...]
    retry_at: float = -math.inf
    """Monotonic time before which the block is not read (after a configuration error)."""
    config_code: int | None = None
    """The exception code 01-03 the block was refused with, until it reads again."""
    fault: str = ""
    """Category of the block's current failure; empty after a good read."""

    @property
    def where(self) -> str:
        """``holding 100..101`` style description for logs and events."""
        return f"{self.read.table} {self.read.address}..{self.read.end - 1}"


def _plan(device: ModbusTcpDevice | ModbusRtuDevice) -> list[_Block]:
    spans = [RegisterSpan(t.table, t.address, t.registers) for t in device.tags]
    try:
        reads = plan_reads(spans, max_gap=device.max_gap)
    except ValueError as exc:
        raise DeviceConfigError(device.id, f"cannot plan the reads: {exc}") from exc
    return [_Block(r, tuple(device.tags[i] for i in r.members)) for r in reads]


def tag_sample(tag: ModbusTag, raw: int | float | bool | str) -> TagSample:
    """The sample of one decoded tag: its bit field, or its value at physical precision.

    * ``bit``/``mask``: the flag (bool) or the field (int) of the integer read;
    * a float32 is its shortest decimal (a register pair holding 6.8 reads 6.8, not
      6.800000190734863);
    * scale and offset are applied in decimal, so 68 x 0.1 is 6.8 (docs/devices.md);
      integers stay integers when nothing is scaled (counters must stay exact).

    ``raw`` is kept on the sample whenever the value was derived from it: the tag's
    ``fault_codes`` are raw values.
    """
    if isinstance(raw, bool | str):
        return TagSample(tag.name, raw)
    if tag.bit is not None or tag.mask is not None:
        # Config allows bit/mask only on integer types, so raw is an int here.
        return TagSample(tag.name, extract_field(int(raw), bit=tag.bit, mask=tag.mask), raw=raw)
    if tag.type is DataType.FLOAT32:
        raw = shortest_float32(raw)
    if tag.scale == 1.0 and tag.offset == 0.0:
        return TagSample(tag.name, raw)
    return TagSample(tag.name, scale(raw, factor=tag.scale, offset=tag.offset), raw=raw)


def _next_due(previous: float, now: float, interval: float) -> float:
    """The next slot on the poll grid after ``now`` (missed slots are skipped, not caught up).

    Slots are ``start + k * interval``, so the schedule never drifts by the time a cycle takes.
    """
    due = previous + interval
    if due <= now:
        due += (math.floor((now - due) / interval) + 1) * interval
    return due


class ModbusAdapter(DeviceRecorder):
    """Polls one Modbus TCP or RTU device forever and submits its records to ``sink``.

    Attributes:
        device_id: The configured device id.
        state: The link state, updated on every transition.
        last_error: The most recent error, as text for operators ("" until the first one).
        reconnects: Outages recovered from (``link_up`` events).
        connect_attempts: Connections opened or tried, including the first.
        requests: Read requests sent.
        interpreter: The device role's interpreter (set ``last_counter`` on a checkweigher
            before :meth:`run` to carry the pack counter over a restart).
    """

    def __init__(
        self,
        device: ModbusTcpDevice | ModbusRtuDevice,
        sink: RecordSink,
        clock: Clock,
        *,
        config_retry_s: float = CONFIG_RETRY_S,
        rng: random.Random | None = None,
    ) -> None:
        """Plan the reads; nothing is connected until :meth:`run`.

        Raises:
            DeviceConfigError: the tags cannot be read with Modbus requests as configured.
        """
        self.device = device
        self.device_id: str = device.id
        self.state: LinkState = LinkState.CONNECTING if device.enabled else LinkState.DISABLED
        self.last_error = ""
        self.reconnects = 0
        self.connect_attempts = 0
        self.requests = 0
        self.config_retry_s = config_retry_s
        self.interpreter: Interpreter = interpreter_for(device, {t.name: t for t in device.tags})
        self._sink = sink
        self._clock = clock
        self._line = device.line
        self._blocks = _plan(device)
        self._counter_tag: str | None = None
        self._counter_block: _Block | None = None
        if isinstance(self.interpreter, CheckweigherInterpreter):
            self._counter_tag = counter = self.interpreter.counter_tag
            holder = next((b for b in self._blocks if any(t.name == counter for t in b.tags)), None)
            if holder is not None and len(self._blocks) > 1:
                # Counter first, values after, counter again (see the module docstring).
                self._counter_block = holder
                self._blocks = [holder, *(b for b in self._blocks if b is not holder)]
        self._interval = device.poll_interval_ms / 1000
        self._link_backoff = Backoff(
            initial=device.reconnect_min_s, maximum=device.reconnect_max_s, rng=rng
        )
        self._failure_backoff = Backoff(
            initial=device.reconnect_min_s, maximum=device.reconnect_max_s, rng=rng
        )
        self._client: ModbusBaseClient | None = None
        self._transport_up = False  # pymodbus reported the open connection (trace_connect)
        self._in_flight: asyncio.Timeout | None = None
        self._down_since: float | None = None
        self._ever_answered = False
        self._resume_at = -math.inf
        self._bad_reported: dict[str, str] = {}
        self._frame_gap = _frame_gap_s(device)
        self._quiet_until = -math.inf  # loop time before which no request goes out (RTU gap)

    @property
    def rejected(self) -> Counter[str]:
        """Values refused so far, by reason (``non_finite``, ``out_of_range``, ``quality_bad``)."""
        return self.interpreter.rejected

    @property
    def uncertain_packs(self) -> int:
        """Packs stored flagged VALUES_UNCERTAIN so far (0 for other roles)."""
        interpreter = self.interpreter
        if isinstance(interpreter, CheckweigherInterpreter):
            return interpreter.uncertain_packs
        return 0

    @property
    def blocks(self) -> list[tuple[str, int, int]]:
        """The planned read requests as ``(table, address, count)``, in poll order."""
        return [(str(b.read.table), b.read.address, b.read.count) for b in self._blocks]

    # ---------------------------------------------------------------- life cycle

    async def run(self) -> None:
        """Poll the device until cancelled; reconnects by itself, never returns otherwise.

        On cancellation the client is closed before ``CancelledError`` propagates, leaving no
        socket, serial port or task behind. Device problems never escape; errors of the sink
        do.
        """
        if not self.device.enabled:
            self._set_state(LinkState.DISABLED)
            await asyncio.get_running_loop().create_future()  # until cancelled
        self._client = client = self._make_client()
        try:
            await self._poll_forever()
        finally:
            try:
                if client.connected and not self._transport_up:
                    # Cancelled right after opening a serial port: pymodbus finishes opening
                    # in a callback it scheduled (SerialTransport.setup), which fails with an
                    # AttributeError if the port is closed first. Let it run, then close.
                    await asyncio.sleep(0)
            finally:
                self._client = None
                self._close(client)

    def _make_client(self) -> ModbusBaseClient:
        device = self.device
        # retries=0: a request is sent once, our cycle decides what happens next.
        # reconnect_delay=0: pymodbus 3.16 then starts no reconnect task of its own
        # (transport.connection_lost only reconnects when the delay is non-zero; older
        # versions busy-looped on 0, pymodbus#1794), so reconnecting is ours, with Backoff.
        if isinstance(device, ModbusTcpDevice):
            return AsyncModbusTcpClient(
                device.host,
                port=device.port,
                name=device.id,
                timeout=device.timeout_s,
                retries=0,
                reconnect_delay=0,
                trace_connect=self._on_connection,
            )
        # serial_port goes to pyserial's serial_for_url: a device path or a pyserial URL. The
        # serial client's timeout is both the open timeout and the reply timeout, as for TCP.
        return AsyncModbusSerialClient(
            device.serial_port,
            framer=FramerType.RTU,
            baudrate=device.baudrate,
            bytesize=device.bytesize,
            parity=device.parity,
            stopbits=device.stopbits,
            name=device.id,
            timeout=device.timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_connect=self._on_connection,
        )

    async def _poll_forever(self) -> NoReturn:
        due = self._clock.monotonic()
        while True:
            if not self._connected():
                await self._connect()
                due = self._clock.monotonic()
            # Backpressure: no poll while the store has no room. Slots missed meanwhile are
            # skipped like any late slot (a checkweigher's counter then records the packs
            # not seen as missed packs).
            await self._sink.wait_for_space()
            await self._poll_cycle()
            now = self._clock.monotonic()
            if self._resume_at > now:
                # Outage or device failure: wait, then start a fresh grid.
                await asyncio.sleep(self._resume_at - now)
                due = self._clock.monotonic()
                continue
            due = _next_due(due, now, self._interval)
            await asyncio.sleep(min(max(due - now, 0.0), self._interval))

    # ---------------------------------------------------------------- connection

    def _connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def _connect(self) -> None:
        """Connect, retrying with capped jittered backoff until it works."""
        client = self._client
        if client is None:
            raise RuntimeError("the client exists only while run() runs")
        target = self._target()
        while True:
            self.connect_attempts += 1
            reason = ""
            try:
                async with asyncio.timeout(self.device.timeout_s + _GUARD_GRACE_S):
                    connected = await client.connect()
                raise_if_cancelled()
                if connected:
                    return
            except TimeoutError:
                reason = f" (no answer within {self.device.timeout_s:g} s)"
            except (ModbusException, OSError) as exc:
                reason = f": {exc}"
            self._close(client)
            self._outage(f"cannot connect to {target}{reason}")
            await asyncio.sleep(self._link_backoff.next_delay())

    def _close(self, client: ModbusBaseClient) -> None:
        client.close()
        self._transport_up = False  # pymodbus reports no disconnect for a close of ours

    def _on_connection(self, up: bool) -> None:
        """pymodbus ``trace_connect`` hook: a connection lost mid-request ends the wait now.

        pymodbus would otherwise wait out the full timeout for a reply that can't come.
        """
        self._transport_up = up
        if not up and self._in_flight is not None:
            self._in_flight.reschedule(asyncio.get_running_loop().time())

    def _target(self) -> str:
        device = self.device
        if isinstance(device, ModbusTcpDevice):
            return f"{device.host}:{device.port} unit {device.unit_id}"
        return f"{device.serial_port} unit {device.unit_id}"

    def _outage(self, error: str) -> None:
        """The device can't be reached: DOWN, and one ``link_down`` event per outage."""
        self.last_error = error
        if self._down_since is None:
            self._down_since = self._clock.monotonic()
            log.warning("device %s: link down: %s", self.device_id, error)
            self._emit([self._event("link_down", error=error)])
        else:
            log.debug("device %s: still down: %s", self.device_id, error)
        self._set_state(LinkState.DOWN)

    def _answered(self) -> None:
        """The device replied: an outage (if any) is over."""
        self._link_backoff.reset()
        if not self._ever_answered:
            # The first answer is recorded too, so the store shows when recording began.
            self._ever_answered = True
            if self._down_since is None:
                log.info("device %s: link up (%s)", self.device_id, self._target())
                self._emit([self._event("link_up", endpoint=self._target())])
                return
        if self._down_since is None:
            return
        down_for = max(self._clock.monotonic() - self._down_since, 0.0)
        self._down_since = None
        self.reconnects += 1
        log.info("device %s: link up again after %.1f s", self.device_id, down_for)
        self._emit([self._event("link_up", down_for_s=round(down_for, 3))])

    # ---------------------------------------------------------------- polling

    async def _poll_cycle(self) -> None:
        """Read every block once, feed the samples to the interpreter, update the state."""
        started = self._clock.monotonic()
        ts_us = self._clock.wall_us()
        samples: list[TagSample] = []
        answered = degraded = False
        stop: _Fault | None = None
        counter_before: object = None
        for block in self._blocks:
            if stop is not None:
                # A timeout or a failing device must not stall the cycle by more than one
                # request: the blocks after it are not read this cycle.
                samples.extend(self._bad(block, stop.category, f"not read: {stop.error}"))
                continue
            if block.retry_at > started:
                degraded = True  # refused as configured; known bad, already reported
                continue
            result = await self._read(block)
            if isinstance(result, _Fault):
                answered = answered or result.answered
                degraded = True
                samples.extend(self._block_failed(block, result, started))
                if isinstance(result.error, DeviceFailure | DeviceUnreachable):
                    stop = result
                continue
            answered = True
            if block.fault:
                log.info("device %s: %s reads again", self.device_id, block.where)
            block.fault, block.config_code = "", None
            decoded, all_good = self._decode(block, result)
            degraded = degraded or not all_good
            samples.extend(decoded)
            if block is self._counter_block:
                counter_before = self._counter_of(decoded)

        doubts: tuple[str, ...] = ()
        if self._counter_block is not None and counter_before is not None and stop is None:
            doubts, fault = await self._recheck_counter(self._counter_block, counter_before)
            if fault is not None:
                answered = answered or fault.answered
                degraded = True
                if isinstance(fault.error, DeviceFailure | DeviceUnreachable):
                    stop = fault

        outage = stop is not None and isinstance(stop.error, DeviceUnreachable)
        if answered and not outage:
            self._answered()
        interpreter = self.interpreter
        if not samples:
            records = []
        elif isinstance(interpreter, CheckweigherInterpreter):
            records = interpreter.interpret_pack(samples, ts_us, doubts)
        else:
            records = interpreter.interpret(samples, ts_us)
        if answered and not outage:
            # Stuck-value detection means "the device answers, the value doesn't move"; while
            # the device is unreachable that is link_down's news, not a stuck sensor.
            records.extend(self.interpreter.tick(ts_us))
        self._emit(records)

        now = self._clock.monotonic()
        if stop is None:
            self._failure_backoff.reset()
            self._set_state(LinkState.DEGRADED if degraded else LinkState.UP)
        elif outage:
            if stop.drop_connection and self._client is not None:
                self._close(self._client)
            self._outage(str(stop.error))
            if stop.drop_connection and stop.category == "connection_lost":
                delay = self._link_backoff.next_delay()
            else:
                # Timed out or offline behind a gateway: leave it alone for recovery_time_s
                # (device.recovery_time_s), longer while the backoff grows.
                delay = max(self.device.recovery_time_s, self._link_backoff.next_delay())
            self._resume_at = now + delay
        else:
            delay = self._failure_backoff.next_delay()
            self._resume_at = now + delay
            self._set_state(LinkState.DEGRADED)
            log.debug("device %s: next poll in %.2f s", self.device_id, delay)

    def _counter_of(self, samples: Sequence[TagSample]) -> object:
        """The good counter value among a block's samples, else None."""
        for sample in samples:
            if sample.tag == self._counter_tag and sample.quality is Quality.GOOD:
                return sample.value
        return None

    async def _recheck_counter(
        self, block: _Block, before: object
    ) -> tuple[tuple[str, ...], _Fault | None]:
        """Read the counter block again after the values: why the pack is in doubt, if it is.

        A failed read is only noted here (the cycle's samples are already good ones); the
        next cycle reads the block first and reports it the usual way.
        """
        result = await self._read(block)
        if isinstance(result, _Fault):
            why = f"the counter could not be read again after the values: {result.error}"
            return (why,), result
        after = self._counter_of(self._decode(block, result)[0])
        if after != before:
            return (
                f"the counter moved from {before} to {after} while the values were read "
                f"({len(self._blocks)} requests)",
            ), None
        return (), None

    async def _read(self, block: _Block) -> list[int] | list[bool] | _Fault:
        """One request; pymodbus errors become a :class:`_Fault`, never an exception."""
        client = self._client
        if client is None or not client.connected:
            error = DeviceUnreachable(self.device_id, f"connection to {self._target()} lost")
            return _Fault(error, "connection_lost", drop_connection=True)
        read = block.read
        loop = asyncio.get_running_loop()
        if (quiet := self._quiet_until - loop.time()) > 0:
            await asyncio.sleep(quiet)  # RTU: the line must be silent 3.5 characters first
        self.requests += 1
        try:
            async with asyncio.timeout(self.device.timeout_s + _GUARD_GRACE_S) as guard:
                self._in_flight = guard
                response = await self._request(client, read)
            raise_if_cancelled()
        except (TimeoutError, ModbusIOException, ModbusException, OSError) as exc:
            # pymodbus raises ModbusIOException when no reply came within the timeout, or a
            # reply carried the wrong unit or transaction id; TimeoutError is our guard, also
            # fired early by _on_connection() when the connection drops mid-request.
            if client.connected and isinstance(exc, TimeoutError | ModbusIOException):
                message = f"no valid reply within {self.device.timeout_s:g} s reading {block.where}"
                error = DeviceUnreachable(self.device_id, f"{message} ({exc})")
                return _Fault(error, "timeout", drop_connection=True)
            error = DeviceUnreachable(self.device_id, f"connection lost reading {block.where}")
            log.debug("device %s: %r", self.device_id, exc)
            return _Fault(error, "connection_lost", drop_connection=True)
        finally:
            self._in_flight = None
            self._quiet_until = loop.time() + self._frame_gap

        # Never decode an exception response as data: check isError() first.
        if response.isError():
            if isinstance(response, ExceptionResponse):
                code = int(response.exception_code)
                return _Fault(
                    classify_exception(self.device_id, code, block.where),
                    f"exception_{code:02x}",
                    code=code,
                    answered=code not in _GATEWAY_CODES,
                )
            failure = DeviceFailure(self.device_id, f"error reply {response} reading {block.where}")
            return _Fault(failure, "error_reply", answered=True)
        if read.table.is_bit_table:
            bits = list(response.bits)
            if len(bits) < read.count:
                return self._short(block, len(bits))
            return bits
        registers = list(response.registers)
        if len(registers) != read.count:
            return self._short(block, len(registers))
        return registers

    def _short(self, block: _Block, got: int) -> _Fault:
        error = DecodeError(
            self.device_id, f"reply to {block.where} had {got} items, {block.read.count} asked"
        )
        return _Fault(error, "short_reply", answered=True)

    async def _request(self, client: ModbusBaseClient, read: ReadBlock) -> ModbusPDU:
        """Send the read for ``read``'s table (MBAP §6.1-§6.4: FC01, FC02, FC03, FC04)."""
        address, count, unit = read.address, read.count, self.device.unit_id
        if read.table is Table.HOLDING:
            return await client.read_holding_registers(address, count=count, device_id=unit)
        if read.table is Table.INPUT:
            return await client.read_input_registers(address, count=count, device_id=unit)
        if read.table is Table.COIL:
            return await client.read_coils(address, count=count, device_id=unit)
        return await client.read_discrete_inputs(address, count=count, device_id=unit)

    def _block_failed(self, block: _Block, fault: _Fault, now: float) -> list[TagSample]:
        """Log (once per episode), emit events, schedule the retry; return the bad samples."""
        error = fault.error
        self.last_error = str(error)
        first = block.fault != fault.category
        block.fault = fault.category
        if isinstance(error, DeviceConfigError) and fault.code is not None:
            # MBAP §7 codes 01-03: the request is wrong for this device; don't hot-retry.
            block.retry_at = now + self.config_retry_s
            if block.config_code != fault.code:
                block.config_code = fault.code
                tags = [t.name for t in block.tags]
                log.error(
                    "device %s: %s (tags %s): check the tag table, function and address "
                    "against the device manual; not read again for %.0f s",
                    self.device_id,
                    error,
                    ", ".join(tags),
                    self.config_retry_s,
                )
                self._emit(
                    [
                        self._event(
                            "config_error",
                            code=fault.code,
                            name=EXCEPTION_NAMES.get(fault.code, "UNKNOWN EXCEPTION CODE"),
                            table=str(block.read.table),
                            address=block.read.address,
                            count=block.read.count,
                            tags=tags,
                            retry_in_s=self.config_retry_s,
                        )
                    ]
                )
        elif isinstance(error, DeviceUnreachable):
            pass  # logged once per outage by _outage()
        elif first:
            log.warning("device %s: %s", self.device_id, error)
        return self._bad(block, fault.category, str(error))

    def _bad(self, block: _Block, category: str, status: str) -> list[TagSample]:
        """BAD samples for the block's tags not already reported bad for this reason."""
        samples = []
        for tag in block.tags:
            if self._bad_reported.get(tag.name) == category:
                continue
            self._bad_reported[tag.name] = category
            samples.append(TagSample(tag.name, None, Quality.BAD, status))
        return samples

    def _decode(
        self, block: _Block, words: Sequence[int] | Sequence[bool]
    ) -> tuple[list[TagSample], bool]:
        """Samples of the block's tags (bad ones once per episode), and whether all decoded."""
        samples = []
        all_good = True
        for tag in block.tags:
            span = RegisterSpan(tag.table, tag.address, tag.registers)
            try:
                part = slice_block(words, block.read, span)
                if tag.table.is_bit_table:
                    raw: int | float | bool | str = bool(part[0])
                else:
                    raw = decode_registers([int(w) for w in part], tag.type, tag.order)
            except ValueError as exc:  # RegisterDecodeError is a ValueError
                error = DecodeError(self.device_id, f"tag {tag.name}: {exc}")
                self.last_error = str(error)
                all_good = False
                if self._bad_reported.get(tag.name) != "decode":
                    log.warning("%s", error)
                    self._bad_reported[tag.name] = "decode"
                    samples.append(TagSample(tag.name, None, Quality.BAD, str(error)))
                continue
            self._bad_reported.pop(tag.name, None)
            samples.append(tag_sample(tag, raw))
        return samples, all_good

    # ---------------------------------------------------------------- records and state
