"""Test helpers shared by the adapter tests: an in-memory record sink, waiting, running."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar

from gateway.core.records import DeviceEvent, PackEvent, Record, RejectedInput, TemperatureReading

R = TypeVar("R")


class Collector:
    """An in-memory record sink (the seam the store fills in production): keeps every
    record and 'commits' it at once."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def submit(self, record: Record) -> asyncio.Future[int]:
        self.records.append(record)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_result(len(self.records))
        return future

    def enqueue(self, record: Record) -> None:
        self.records.append(record)

    async def wait_for_space(self) -> None:
        """Always room: memory is the test's, and the adapter is not the thing measured."""

    def of(self, kind: type[R]) -> list[R]:
        return [r for r in self.records if isinstance(r, kind)]

    def events(self, kind: str) -> list[DeviceEvent]:
        """Events of a kind; ``link_up`` means a recovery (the first connection is separate)."""
        found = [r for r in self.of(DeviceEvent) if r.kind == kind]
        if kind == "link_up":
            return [e for e in found if "down_for_s" in e.detail]
        return found

    def first_link_up(self) -> list[DeviceEvent]:
        return [
            r for r in self.of(DeviceEvent) if r.kind == "link_up" and "down_for_s" not in r.detail
        ]

    def readings(self, probe: str | None = None) -> list[TemperatureReading]:
        return [r for r in self.of(TemperatureReading) if probe in (None, r.probe)]

    def rejected(self, tag: str | None = None) -> list[RejectedInput]:
        return [r for r in self.of(RejectedInput) if tag in (None, r.tag)]

    def packs(self) -> list[PackEvent]:
        return self.of(PackEvent)


class HeldSink(Collector):
    """A collector without room until the test opens it (a store that is behind): adapters
    awaiting :meth:`wait_for_space` stop there."""

    def __init__(self) -> None:
        super().__init__()
        self.room = asyncio.Event()
        self.asked = asyncio.Event()
        """Set once an adapter has asked for room (and so is held, until ``room`` is set)."""
        self.waits = 0

    async def wait_for_space(self) -> None:
        self.waits += 1
        self.asked.set()
        await self.room.wait()


class _Runnable(Protocol):
    device_id: str

    async def run(self) -> None: ...


@contextlib.asynccontextmanager
async def running(adapter: _Runnable) -> AsyncIterator[asyncio.Task[Any]]:
    """Run an adapter as a task; cancel it on exit and wait until it has stopped."""
    task = asyncio.create_task(adapter.run(), name=f"adapter[{adapter.device_id}]")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
