"""A warehouse filled the way the real path fills it: a gateway store's outbox, batch by
batch, through :meth:`Warehouse.commit_batch` (what the ingest calls for each batch it
receives), then acknowledged in the store as the uplink would."""

from __future__ import annotations

from pathlib import Path

from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.store import Store
from sync.ingest.warehouse import Warehouse
from sync.outbox import Outbox, batch_seqs

BATCH_RECORDS = 500
BATCH_BYTES = 512 * 1024


async def drain_into(store_path: Path, warehouse: Warehouse, *, gateway: str, site: str) -> int:
    """Commit every record of the store at ``store_path`` to ``warehouse`` as ``gateway`` of
    ``site``; the number of records committed."""
    committed = 0
    async with Store(StoreSection(path=store_path), SystemClock()) as store:
        outbox = Outbox(store, gateway=gateway, site=site)
        while (batch := await outbox.next_batch(BATCH_RECORDS, BATCH_BYTES)) is not None:
            await warehouse.commit_batch(batch)
            await outbox.acknowledge(batch_seqs(batch))
            committed += len(batch.records)
    return committed
