"""Several real ``lineside ingest`` processes sharing one MQTT subscription, for the fleet bench.

Each instance is the fleet tests' :class:`tests.support.fleet_ingest.FleetIngest`: its own
process (so its CPU time is its own) in a session of its own, its own client id, the same
``--share-group`` (the broker hands each batch to one of them: docs/scale-out.md), and its
status endpoint, which says what it committed. No gateway posts over HTTP here: the tokens
file is empty.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bench.common import cpu_seconds
from tests.support.fleet_ingest import FleetIngest, write_tokens_file
from tests.support.mosquitto import Mosquitto

POOL_SIZE = 4
"""Connections per instance: ``lineside ingest``'s default ``--db-pool-size``."""


class IngestGroup:
    """``count`` instances of one share group: started together, ended together."""

    def __init__(self, count: int, *, broker: Mosquitto, dsn: str, folder: Path) -> None:
        self.count = count
        self.broker = broker
        self.dsn = dsn
        self.folder = folder
        self.group = f"bench-{count}"
        self.instances: list[FleetIngest] = []

    def start(self, timeout: float = 60.0) -> None:
        """Start every instance; wait until each answers its status and is connected."""
        tokens = write_tokens_file(self.folder / "gateway-tokens", {})
        for i in range(self.count):
            self.instances.append(
                FleetIngest(
                    f"lineside-bench-ingest-{i + 1}",
                    self.folder,
                    self.dsn,
                    tokens=tokens,
                    broker=self.broker,
                    share_group=self.group,
                    pool_size=POOL_SIZE,
                )
            )

        async def ready() -> None:
            await asyncio.gather(*(i.ready(timeout) for i in self.instances))

        asyncio.run(ready())

    def cpu_seconds(self) -> list[float]:
        """Each instance's CPU seconds so far (all its threads)."""
        return [cpu_seconds(i.proc.pid) for i in self.instances]

    def records(self) -> list[dict[str, Any]]:
        """Each instance's record counters (batches, inserted, duplicates, ...) from its
        status endpoint."""
        return [dict(i.status()["records"]) for i in self.instances]

    def end(self) -> None:
        """End every instance (last started first): SIGTERM to its group, then SIGKILL."""
        for instance in reversed(self.instances):
            instance.end()
        self.instances.clear()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.end()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end()


__all__ = ["POOL_SIZE", "IngestGroup"]
