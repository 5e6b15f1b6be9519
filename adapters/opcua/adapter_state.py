"""What an OPC UA adapter knows about its device, and how values reach the interpreter:
one Read, a value converted into a sample, a pack assembled by source time, samples fed
together, and the link state they imply (:mod:`adapters.opcua.client` has the design)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Final

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node

from adapters.base import DeviceRecorder, Quality, RecordSink, TagSample, raise_if_cancelled
from adapters.opcua.packs import PackAssembler
from adapters.opcua.repeats import RepeatedValues
from adapters.opcua.session import GUARD_GRACE_S, Orphans
from adapters.opcua.status import bit_field, sample_from, source_stamp_us
from adapters.opcua.units import engineering_sample
from adapters.roles import CheckweigherInterpreter, Interpreter, interpreter_for
from gateway.config import OpcUaDevice, OpcUaTag
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.errors import DeviceUnreachable
from gateway.core.link import LinkState

# The adapter's log lines keep one logger name, whichever of its modules writes them.
log = logging.getLogger("adapters.opcua.client")

# Floor of the jitter for security/config retries: about reconnect_max_s, never a storm.
_SLOW_FLOOR: Final = 0.75

LEVEL_SIGNALS: Final = frozenset({"changeover"})
"""Checkweigher signals that are a state of the machine, not a value of a pack: they are fed
to the interpreter when they change (and with every poll), never paired with a pack counter
by source time, which could hand an older state on after a newer one."""


class OpcUaAdapterState(DeviceRecorder):
    """The state shared by the parts of :class:`adapters.opcua.client.OpcUaAdapter`."""

    def __init__(
        self,
        device: OpcUaDevice,
        sink: RecordSink,
        clock: Clock,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.device = device
        self.device_id: str = device.id
        self.state: LinkState = LinkState.CONNECTING if device.enabled else LinkState.DISABLED
        self.last_error = ""
        self.reconnects = 0
        self.connect_attempts = 0
        self.tags: dict[str, OpcUaTag] = {t.name: t for g in device.groups for t in g.tags}
        self.interpreter: Interpreter = interpreter_for(device, self.tags)
        self._sink = sink
        self._clock = clock
        self._line = device.line
        self._backoff = Backoff(
            initial=device.reconnect_min_s, maximum=device.reconnect_max_s, rng=rng
        )
        self._slow = Backoff(
            initial=device.reconnect_max_s,
            maximum=device.reconnect_max_s,
            floor_fraction=_SLOW_FLOOR,
            rng=rng,
        )
        self._down_since: float | None = None
        self._first_link_recorded = False
        self._up_for = 0.0
        self._orphans: Orphans | None = None
        self._bad_tags: set[str] = set()
        self._repeats = RepeatedValues()
        self._config_reported: set[tuple[str, str]] = set()
        self._counter: str | None = None
        self._packs: PackAssembler | None = None
        self._levels: frozenset[str] = frozenset()
        self._doubts_logged = False
        if isinstance(self.interpreter, CheckweigherInterpreter):
            self._counter = self.interpreter.counter_tag
            self._levels = LEVEL_SIGNALS & set(self.tags)
            self._packs = PackAssembler(
                n for n in self.tags if n != self._counter and n not in self._levels
            )
        if device.password is not None and device.security is None:
            log.warning(
                "device %s: a password is configured without SignAndEncrypt security",
                device.id,
            )

    async def _read(self, client: Client, nodes: Sequence[Node]) -> list[ua.DataValue]:
        """One Read service call (OPC 10000-4 §5.10.2) for the Value of ``nodes``."""
        async with asyncio.timeout(self.device.timeout_s + GUARD_GRACE_S):
            values = list(await client.read_attributes(nodes))
        raise_if_cancelled()
        if len(values) != len(nodes):
            raise DeviceUnreachable(
                self.device_id, f"Read returned {len(values)} results for {len(nodes)} nodes"
            )
        return values

    def _sample(self, name: str, data_value: ua.DataValue) -> TagSample:
        """One tag's sample, the tag's bit field picked out when it has one."""
        sample = sample_from(name, data_value)
        tag = self.tags.get(name)
        if tag is None:
            return sample
        if tag.bit is not None or tag.mask is not None:
            return bit_field(sample, bit=tag.bit, mask=tag.mask)
        return engineering_sample(sample, tag, self.device.rule_unit(name))

    def _assemble(
        self,
        packs: PackAssembler,
        counter: TagSample,
        counter_us: int | None,
        names: Sequence[str],
        values: Sequence[ua.DataValue],
    ) -> tuple[list[TagSample], tuple[str, ...]]:
        """The pack's values (picked by source time, packs.py) and the counter, last."""
        read = [
            (self._sample(name, value), source_stamp_us(value))
            for name, value in zip(names, values, strict=True)
        ]
        for sample, stamp in read:
            packs.note(sample, stamp)
        number = counter.value
        if counter.quality is not Quality.GOOD or not isinstance(number, int | float):
            # No pack comes of it (the interpreter rejects the counter); nothing to pair.
            return [*(sample for sample, _ in read), counter], ()
        pack = packs.pack(int(number), counter_us, read)
        if pack.doubts and not self._doubts_logged:
            self._doubts_logged = True
            log.warning(
                "device %s: pack %s stored flagged VALUES_UNCERTAIN: %s",
                self.device_id,
                number,
                "; ".join(pack.doubts),
            )
        elif not pack.doubts:
            self._doubts_logged = False
        return [*pack.samples, counter], pack.doubts

    @property
    def uncertain_packs(self) -> int:
        """Packs stored flagged VALUES_UNCERTAIN so far (0 for other roles)."""
        interpreter = self.interpreter
        if isinstance(interpreter, CheckweigherInterpreter):
            return interpreter.uncertain_packs
        return 0

    def _feed(self, samples: Sequence[TagSample], doubts: Sequence[str] = ()) -> None:
        """Samples handled together go to the interpreter in one call; ``doubts`` say why a
        checkweigher's values may not be the counter's pack's (the pack is then flagged)."""
        interpreter = self.interpreter
        now = self._clock.wall_us()
        if isinstance(interpreter, CheckweigherInterpreter):
            records = interpreter.interpret_pack(samples, now, doubts)
        else:
            records = interpreter.interpret(samples, now)
        for sample in samples:
            self._track(sample)
        self._emit(records)

    def _track(self, sample: TagSample) -> None:
        if sample.quality is Quality.GOOD:
            if not self._bad_tags and self.state is LinkState.UP:
                return  # the common case, every good value: nothing changes
            self._bad_tags.discard(sample.tag)
        else:
            self._bad_tags.add(sample.tag)
        if self.state in (LinkState.UP, LinkState.DEGRADED):
            self._set_state(LinkState.DEGRADED if self._bad_tags else LinkState.UP)
