"""A real gateway store's outbox committed into a warehouse through the real
``Warehouse.commit_batch``, batch by batch, as the uplink would (acknowledged records leave
the outbox), without a broker in between."""

from __future__ import annotations

from pathlib import Path

from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.store import Store
from sync.ingest.warehouse import Warehouse
from sync.outbox import Outbox, batch_seqs
from sync.protocol import MAX_BATCH_BYTES


async def commit_outbox(store_path: Path, warehouse: Warehouse, *, gateway: str, site: str) -> int:
    """Commit every record of the store's outbox; how many records were committed."""
    committed = 0
    async with Store(StoreSection(path=store_path), SystemClock()) as store:
        outbox = Outbox(store, gateway=gateway, site=site)
        while (batch := await outbox.next_batch(1000, MAX_BATCH_BYTES)) is not None:
            ack = await warehouse.commit_batch(batch, idempotency_key=batch.batch_id)
            assert not ack.conflicts, ack
            committed += len(ack.committed)
            await outbox.acknowledge(batch_seqs(batch))
    return committed
