"""A process that writes batches to the store until it is killed (used by test_store_crash).

Each batch is exactly ``commit_max_rows`` device events tagged with the run and batch
number; after the batch's commit returns, one line ``<run> <batch> <first_seq> <last_seq>``
is printed and flushed, so the parent knows which batches were acknowledged as durable.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.core.records import DeviceEvent
from gateway.store import Store

BATCH = 50


async def main(path: Path, run: int) -> None:
    config = StoreSection(path=path, commit_interval_ms=5, commit_max_rows=BATCH)
    async with Store(config, SystemClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        print("open", flush=True)
        for batch in itertools.count():
            futures = [
                store.submit(
                    DeviceEvent(
                        ts_us=0,
                        device="writer",
                        kind="batch",
                        detail={"run": run, "batch": batch, "i": i},
                    )
                )
                for i in range(BATCH)
            ]
            seqs = await asyncio.gather(*futures)
            print(run, batch, seqs[0], seqs[-1], flush=True)
        await committer


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
