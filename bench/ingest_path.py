"""The ingest's own CPU per record, driven directly: no broker, no network.

``python -m bench.ingest_path --records N`` has a gateway's store and outbox cut N records of
the fleet's mix (packs, temperatures, label scans, alerts; ``bench/fleet_records.py``) into
batches of the default 500 and encode them as its uplinks do, then decodes and commits every
batch into a SQLite warehouse as the ingest does. It prints:

- ``gateway_cut_cpu_us``: the gateway's CPU µs per record to read its outbox into batches and
  encode them (the store's SQLite thread included);
- ``decode_cpu_us``: CPU µs per record to decode the batches (inflate, parse, check);
- ``commit_cpu_us``: the process's CPU µs per record to decode and commit them (the records and
  their facts, the warehouse's thread included; with ``--postgres``, into a new database on
  the local PostgreSQL, whose own CPU is not counted);
- ``stored``: the records the warehouse holds, equal to N.

The bench's delivery figure measures the ``lineside ingest`` process under a live gateway and
moves with the machine and the broker; this one moves only with the code. Compare two trees
with the same interpreter::

    (cd old && python -m bench.ingest_path --records 100000)
    (cd new && python -m bench.ingest_path --records 100000)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.fleet_pg import fresh_database
from bench.fleet_records import TimeBase, fleet_record
from gateway.config import StoreSection
from gateway.core.clock import ManualClock

BATCH_RECORDS = 500
BATCH_BYTES = 1024 * 1024


async def _bodies(count: int, folder: Path) -> tuple[list[bytes], float]:
    """The encoded batches a gateway sends for ``count`` records of the fleet's mix, and the
    seconds of CPU its outbox took to cut and encode them."""
    from gateway.store import Store  # noqa: PLC0415
    from sync.outbox import Outbox, batch_seqs  # noqa: PLC0415
    from sync.protocol import encode_batch  # noqa: PLC0415

    clock = ManualClock()
    config = StoreSection(path=folder / "gateway.db", max_pending_rows=max(count, 1000) * 2)
    bodies: list[bytes] = []
    async with Store(config, clock) as store:
        committer = asyncio.create_task(store.run_committer())
        time_base = TimeBase()
        for index in range(count):
            store.submit(fleet_record(index, time_base))
        await store.stop_committer()
        await committer
        outbox = Outbox(store, gateway="bench-gw1", site="bench")
        cut_s = 0.0
        while True:
            cpu = time.process_time()
            batch = await outbox.next_batch(BATCH_RECORDS, BATCH_BYTES)
            if batch is None:
                break
            bodies.append(encode_batch(batch))
            cut_s += time.process_time() - cpu
            await outbox.acknowledge(batch_seqs(batch))
    return bodies, cut_s


async def _ingest(
    bodies: list[bytes], folder: Path, postgres_dsn: str | None
) -> tuple[float, float, int]:
    """Seconds of CPU to decode every body, then to decode and commit them, and the records
    stored (in ``postgres_dsn``'s database when given, else a SQLite file)."""
    from sync.ingest.warehouse import decode_message  # noqa: PLC0415
    from sync.ingest.warehouse_base import Warehouse  # noqa: PLC0415
    from sync.ingest.warehouse_postgres import PostgresWarehouse  # noqa: PLC0415
    from sync.ingest.warehouse_sqlite import SqliteWarehouse  # noqa: PLC0415

    cpu = time.process_time()
    for body in bodies:
        decode_message(body)
    decode_s = time.process_time() - cpu
    warehouse: Warehouse = (
        SqliteWarehouse(folder / "warehouse.db")
        if postgres_dsn is None
        else PostgresWarehouse(postgres_dsn, pool_size=1)
    )
    async with warehouse:
        cpu = time.process_time()
        for body in bodies:
            await warehouse.commit_batch(decode_message(body))
        commit_s = time.process_time() - cpu
    return decode_s, commit_s, warehouse.stats.inserted


def main(argv: list[str] | None = None) -> int:
    """Measure the ingest path and print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_path")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="commit into a new database on the local PostgreSQL (dropped after), not SQLite",
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lineside-ingest-")))
        dsn = stack.enter_context(fresh_database("lineside_ingest_path")) if args.postgres else None
        bodies, cut_s = asyncio.run(_bodies(args.records, folder))
        decode_s, commit_s, stored = asyncio.run(_ingest(bodies, folder, dsn))
    records = max(args.records, 1)
    result = {
        "records": args.records,
        "batches": len(bodies),
        "stored": stored,
        "gateway_cut_cpu_us": cut_s * 1e6 / records,
        "decode_cpu_us": decode_s * 1e6 / records,
        "commit_cpu_us": commit_s * 1e6 / records,
        "warehouse": "postgresql" if args.postgres else "sqlite",
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
