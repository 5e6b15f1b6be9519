"""Polling an OPC UA device: one Read per poll group and interval, and the watchdog Read of
ServerStatus.State that ends a session whose server stopped running."""

from __future__ import annotations

import asyncio
import logging

from asyncua.client.client import Client

from adapters.opcua.adapter_state import OpcUaAdapterState
from adapters.opcua.session import SERVER_STATE, Session, not_running
from adapters.opcua.status import UA_ERRORS, source_stamp_us, source_time_us, translate_error
from adapters.poll_grid import next_due
from gateway.config import OpcUaTagGroup
from gateway.core.errors import DeviceUnreachable

# The adapter's log lines keep one logger name, whichever of its modules writes them.
log = logging.getLogger("adapters.opcua.client")


class Polling(OpcUaAdapterState):
    """Reads the device's poll groups on their grid, and watches the server's state."""

    def _poll_groups(self) -> list[OpcUaTagGroup]:
        groups = [g for g in self.device.groups if g.mode == "poll"]
        if self._packs is None:
            return groups
        kept = []
        for group in groups:
            if any(t.name == self._counter or t.name in self._levels for t in group.tags):
                kept.append(group)
            else:
                log.info(
                    "device %s: poll group %s has no %s; its values are read with the counter",
                    self.device_id,
                    group.name,
                    self._counter,
                )
        return kept

    async def _poll(self, client: Client, session: Session, group: OpcUaTagGroup) -> None:
        """Read all of the group's nodes in one Read every ``poll_interval_ms``."""
        names = [t.name for t in group.tags]
        levels = [name for name in names if name in self._levels]
        packs, counter = self._packs, self._counter
        if packs is not None and counter is not None:
            if counter not in names:
                packs = None  # a group of levels only: read as they are, each poll
                names = levels
            else:
                # The whole pack, the counter first: a server that does not take a Read's
                # values at one moment then reads the weights no earlier than the counter,
                # and a weight stamped at or before the counter is still the one current at
                # it. The group's levels (changeover) come after, fed as they are.
                names = [counter, *packs.tags, *levels]
        nodes = [session.nodes[n] for n in names]
        interval = group.poll_interval_ms / 1000
        due = self._clock.monotonic()
        scanner = self.device.role == "label_scanner"
        while True:
            # Backpressure: no Read while the store has no room; late slots are skipped.
            await self._sink.wait_for_space()
            try:
                values = await self._read(client, nodes)
            except UA_ERRORS as exc:
                session.fail(translate_error(self.device_id, exc, f"polling group {group.name}"))
                return
            doubts: tuple[str, ...] = ()
            if packs is not None and counter is not None:
                end = 1 + len(packs.tags)
                now_read = [
                    self._sample(name, value)
                    for name, value in zip(names[end:], values[end:], strict=True)
                ]
                assembled, doubts = self._assemble(
                    packs,
                    self._sample(counter, values[0]),
                    source_stamp_us(values[0]),
                    names[1:end],
                    values[1:end],
                )
                read = [*now_read, *assembled]
            else:
                pairs = zip(names, values, strict=True)
                read = [self._sample(name, value) for name, value in pairs]
            samples = []
            for index, sample in enumerate(read):
                # A scanner is never a checkweigher, so its samples are in ``values`` order.
                if scanner and self._repeats.scan(
                    session.scans_seen, sample, source_time_us(values[index])
                ):
                    continue
                if self._repeats.fault(sample):
                    continue
                samples.append(sample)
            if samples:
                self._feed(samples, doubts)
            now = self._clock.monotonic()
            due = next_due(due, now, interval)
            await asyncio.sleep(min(max(due - now, 0.0), interval))

    async def _watchdog(self, client: Client, session: Session) -> None:
        """Read ServerStatus.State every ``watchdog_interval_s``; anything but Running ends it."""
        while True:
            await asyncio.sleep(self.device.watchdog_interval_s)
            try:
                (state,) = await self._read(client, [client.get_node(SERVER_STATE)])
            except UA_ERRORS as exc:
                session.fail(translate_error(self.device_id, exc, "watchdog read of ServerStatus"))
                return
            if problem := not_running(state):
                session.fail(DeviceUnreachable(self.device_id, problem))
                return
            # Stuck-value detection runs only while connected: no data while down is not a
            # stuck sensor.
            self._emit(self.interpreter.tick(self._clock.wall_us()))
