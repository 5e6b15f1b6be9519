"""What every device adapter shares: tag samples, where records go, and how link state is set.

:class:`~gateway.core.link.LinkState` itself is in the core: the uplinks and the status
reports speak of it too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from adapters.rejections import RepeatedRejections
from gateway.core.clock import Clock
from gateway.core.link import LinkState
from gateway.core.records import DeviceEvent, Record


class Quality(StrEnum):
    """OPC UA-style quality of one sample (Part 4 §7.34 StatusCode severity bits)."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


@dataclass(frozen=True, slots=True)
class TagSample:
    """One decoded value of one tag, with its quality as the device reported it."""

    tag: str
    value: object
    quality: Quality = Quality.GOOD
    status: str = ""
    """The device's own status text (e.g. an OPC UA status code name) when not good."""
    raw: object = None
    """The number as the device sent it, when ``value`` was derived from it (scaled, or a
    bit field); a tag's ``fault_codes`` are compared with this. None: ``value`` is raw."""


class RecordSink(Protocol):
    """Where adapters put records: the store's group-commit queue."""

    def submit(self, record: Record) -> asyncio.Future[int]:
        """Queue a record for the next commit (or shed it, counted, when the store is over
        its pending limit: the future then fails with ``RecordShedError``)."""
        ...

    def enqueue(self, record: Record) -> None:
        """:meth:`submit` without the future, for a caller that does not wait for it."""
        ...

    async def wait_for_space(self) -> None:
        """Return once the sink has room for more; adapters that set their own pace (read a
        socket, poll a device) await it before taking in more, so a flood waits in the
        device or the kernel instead of in the gateway's memory."""
        ...


class DeviceAdapter(Protocol):
    """A device adapter: runs until cancelled, reconnecting by itself."""

    device_id: str
    state: LinkState

    async def run(self) -> None:
        """Read the device forever; return only when cancelled."""
        ...


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed.

    asyncua and pymodbus wait with ``asyncio.wait_for``, which on Python 3.11 returns the
    result instead of raising ``CancelledError`` when the reply and the cancellation arrive
    in the same loop iteration (cpython gh-86296, fixed in 3.12). The task still counts the
    request (``Task.cancelling()``), so adapters call this after library calls and at the
    top of their loops, or ``run()`` might never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


log = logging.getLogger(__name__)


class DeviceRecorder:
    """What the protocol adapters share: device events, record submission, link state.

    Subclasses set ``device_id``, ``state``, ``_line``, ``_sink`` and ``_clock``.
    """

    device_id: str
    state: LinkState
    _line: str
    _sink: RecordSink
    _clock: Clock

    def _event(self, kind: str, **detail: object) -> DeviceEvent:
        return DeviceEvent(
            ts_us=self._clock.wall_us(),
            device=self.device_id,
            line=self._line,
            kind=kind,
            detail=dict(detail),
        )

    @functools.cached_property
    def repeated_rejections(self) -> RepeatedRejections:
        """Streaks of identical rejections, stored as the first row and a count."""
        return RepeatedRejections()

    def _emit(self, records: Sequence[Record]) -> None:
        # Queued without a future: nothing here would watch it (the store never fails a
        # record: a commit that fails keeps its records pending while the store is full, and
        # stops the gateway for anything else; a shed record is counted and alerted by the
        # pipeline), and a future per reading costs the event loop for nothing.
        enqueue = self._sink.enqueue
        for record in self.repeated_rejections.admit(records):
            enqueue(record)

    def _set_state(self, state: LinkState) -> None:
        if state is not self.state:
            log.debug("device %s: %s -> %s", self.device_id, self.state, state)
            self.state = state
