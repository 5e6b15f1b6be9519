"""The Modbus adapter: one pymodbus client per device, polled on a fixed grid.

Each poll cycle reads every :class:`~gateway.core.codecs.read_plan.ReadBlock` of the device once
(neighbouring tags merged by :func:`~gateway.core.codecs.read_plan.plan_reads`), one request at a
time, decodes the tags, and hands all samples of the cycle to the device's role interpreter
together, so a checkweigher's pack counter and weights come from the same cycle.

Several tags may read the same register (the bits of a status word, ``bit``/``mask`` tags;
:mod:`gateway.core.codecs.bitfields`): their spans are identical, so the planner merges them and
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

pymodbus is only a transport (:mod:`adapters.modbus.transport`, also for how RTU reaches its
port): this module's :class:`Backoff`, state and events are the truth. Requests on a serial
line are kept 3.5 character times apart (:func:`adapters.modbus.blocks.frame_gap_s`).

How each failure is classified and handled (the exception codes of MBAP §7 included) is
the table in :mod:`adapters.modbus.exceptions`.

An outage ends when the device answers again (any reply but 0A/0B; an accepted TCP connection
or an opened serial port alone does not count, so a server that accepts but never answers
stays DOWN): then one ``link_up`` event with ``down_for_s``, and state UP (or DEGRADED).

``interpreter.tick()`` (stuck values) runs after every cycle in which the device answered.

A cycle starts only when the store has room (:meth:`RecordSink.wait_for_space`): while it is
behind, polling pauses, so fast polls of many tags cannot fill the gateway's memory.

A tag whose block failed, or that cannot be decoded, is handed on as a BAD sample once per
failure episode (:mod:`adapters.modbus.decoding`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Final, NoReturn

from pymodbus.client import ModbusBaseClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from adapters.base import DeviceRecorder, Quality, RecordSink, TagSample, raise_if_cancelled
from adapters.modbus.blocks import Block, frame_gap_s, plan_blocks, tag_sample
from adapters.modbus.decoding import BlockDecoder
from adapters.modbus.exceptions import (
    CONFIG_RETRY_S,
    EXCEPTION_NAMES,
    BlockFault,
    classify_exception,
)
from adapters.modbus.replies import reply_words
from adapters.modbus.transport import make_client, send_read, target_of
from adapters.poll_grid import next_due
from adapters.roles import CheckweigherInterpreter, Interpreter, interpreter_for
from gateway.config import ModbusRtuDevice, ModbusTcpDevice
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.codecs.read_plan import ReadBlock
from gateway.core.errors import DeviceConfigError, DeviceFailure, DeviceUnreachable
from gateway.core.link import LinkState

__all__ = [
    "CONFIG_RETRY_S",
    "EXCEPTION_NAMES",
    "ModbusAdapter",
    "classify_exception",
    "tag_sample",
]

log = logging.getLogger(__name__)


# Added to device.timeout_s for our own guard around a pymodbus call, which applies the same
# timeout itself; the guard only matters if pymodbus ever failed to give up on its own.
_GUARD_GRACE_S: Final = 0.25


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
        self._blocks = plan_blocks(device)
        self._counter_tag: str | None = None
        self._counter_block: Block | None = None
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
        self._tags = BlockDecoder(device.id)
        self._frame_gap = frame_gap_s(device)
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
        self._client = client = make_client(self.device, self._on_connection)
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
            due = next_due(due, now, self._interval)
            await asyncio.sleep(min(max(due - now, 0.0), self._interval))

    # ---------------------------------------------------------------- connection

    def _connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def _connect(self) -> None:
        """Connect, retrying with capped jittered backoff until it works."""
        client = self._client
        if client is None:
            raise RuntimeError("the client exists only while run() runs")
        target = target_of(self.device)
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
                log.info("device %s: link up (%s)", self.device_id, target_of(self.device))
                self._emit([self._event("link_up", endpoint=target_of(self.device))])
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
        stop: BlockFault | None = None
        counter_before: object = None
        for block in self._blocks:
            if stop is not None:
                # A timeout or a failing device must not stall the cycle by more than one
                # request: the blocks after it are not read this cycle.
                samples.extend(self._tags.bad(block, stop.category, f"not read: {stop.error}"))
                continue
            if block.retry_at > started:
                degraded = True  # refused as configured; known bad, already reported
                continue
            result = await self._read(block)
            if isinstance(result, BlockFault):
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
            decoded, all_good = self._decoded(block, result)
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
        self, block: Block, before: object
    ) -> tuple[tuple[str, ...], BlockFault | None]:
        """Read the counter block again after the values: why the pack is in doubt, if it is.

        A failed read is only noted here (the cycle's samples are already good ones); the
        next cycle reads the block first and reports it the usual way.
        """
        result = await self._read(block)
        if isinstance(result, BlockFault):
            why = f"the counter could not be read again after the values: {result.error}"
            return (why,), result
        after = self._counter_of(self._decoded(block, result)[0])
        if after != before:
            return (
                f"the counter moved from {before} to {after} while the values were read "
                f"({len(self._blocks)} requests)",
            ), None
        return (), None

    async def _read(self, block: Block) -> list[int] | list[bool] | BlockFault:
        """One request; pymodbus errors become a :class:`BlockFault`, never an exception."""
        client = self._client
        if client is None or not client.connected:
            error = DeviceUnreachable(
                self.device_id, f"connection to {target_of(self.device)} lost"
            )
            return BlockFault(error, "connection_lost", drop_connection=True)
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
                return BlockFault(error, "timeout", drop_connection=True)
            error = DeviceUnreachable(self.device_id, f"connection lost reading {block.where}")
            log.debug("device %s: %r", self.device_id, exc)
            return BlockFault(error, "connection_lost", drop_connection=True)
        finally:
            self._in_flight = None
            self._quiet_until = loop.time() + self._frame_gap

        return reply_words(self.device_id, block, response)

    async def _request(self, client: ModbusBaseClient, read: ReadBlock) -> ModbusPDU:
        """Send one read (a method, so tests/integration/test_pack_pairing.py can delay it)."""
        return await send_read(client, read, self.device.unit_id)

    def _block_failed(self, block: Block, fault: BlockFault, now: float) -> list[TagSample]:
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
        return self._tags.bad(block, fault.category, str(error))

    def _decoded(
        self, block: Block, words: Sequence[int] | Sequence[bool]
    ) -> tuple[list[TagSample], bool]:
        """The block's samples, and whether every tag decoded (the last error is kept)."""
        samples, errors = self._tags.decode(block, words)
        if errors:
            self.last_error = str(errors[-1])
        return samples, not errors
