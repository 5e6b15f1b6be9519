"""What every ERP source offers the gateway: fetch the runs changed since a watermark.

The HTTP and SQL sources implement :class:`ErpSource`; the poller only knows this
protocol, so it keeps its watermark, staleness and backoff logic in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.core.runs import ProductionRun, RunRejection


@dataclass(slots=True)
class FetchResult:
    """One poll's harvest: parsed runs, rejected rows, and the watermark to store next."""

    runs: list[ProductionRun] = field(default_factory=list)
    """Runs in the order the ERP returned them (ascending ``Updated``)."""
    rejected: list[RunRejection] = field(default_factory=list)
    """Rows that could not be understood, kept with their raw values and reasons."""
    watermark: datetime | None = None
    """The highest ``Updated`` seen in this poll (rejected rows included, so a garbage
    row is not fetched again forever), or the watermark passed in when nothing changed."""


class ErpSource(Protocol):
    """A read-only source of production runs."""

    async def fetch_changed(self, watermark: datetime | None) -> FetchResult:
        """Fetch the runs with ``Updated > watermark``; ``None`` means a full reload.

        Raises :class:`gateway.core.errors.ErpError` (or a subclass) on failure.
        """
        ...

    async def close(self) -> None:
        """Release connections; the source is not used afterwards."""
        ...
