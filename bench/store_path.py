"""The gateway's store path, driven directly: throughput, and building a sync backlog.

``python -m bench.store_path measure --rows N`` submits N temperature readings through
:meth:`gateway.store.Store.submit` (group commit, sequence numbers, outbox rows, futures)
and waits until the last is committed; it prints rows per second and CPU µs per row.

``python -m bench.store_path backlog --config C --records N`` writes N records into the
store of config C the same way, as a gateway would have recorded them during an outage of
its uplink (nine temperature readings to one pack, interleaved).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from gateway.config import StoreSection, load_config
from gateway.core.clock import SystemClock
from gateway.core.records import PackEvent, Record, TemperatureReading

SUBMIT_CHUNK = 2000
"""Records submitted between yields to the event loop, as a burst of notifications would."""

BASE_US = 1_700_000_000_000_000


def readings(count: int, *, start: int = 0, run_number: str | None = None) -> Iterator[Record]:
    """``count`` temperature readings from 100 probes, 0.1 ms apart."""
    for i in range(start, start + count):
        yield TemperatureReading(
            ts_us=BASE_US + i * 100,
            line="L1",
            device="probes",
            probe=f"P{i % 100}",
            location="product core",
            celsius=2.0 + i % 30 / 10,
            run_number=run_number,
        )


def backlog_records(count: int) -> Iterator[Record]:
    """A recorded day in miniature: nine readings to one pack, interleaved."""
    for i in range(count):
        if i % 10 == 9:
            yield PackEvent(
                ts_us=BASE_US + i * 100,
                line="L1",
                device="cw1",
                net_g=200.0 + i % 17,
                pack_counter=i // 10 + 1,
                accepted=True,
                label_seq=i // 10 + 1,
                nominal_g=200.0,
                run_number="R-BENCH-1",
            )
        else:
            yield from readings(1, start=i, run_number="R-BENCH-1")


async def _submit_all(config: StoreSection, records: Iterable[Record]) -> dict[str, float]:
    from gateway.store import Store  # noqa: PLC0415

    async with Store(config, SystemClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        started = time.perf_counter()
        cpu = time.process_time()
        last: asyncio.Future[int] | None = None
        submitted = 0
        for record in records:
            last = store.submit(record)
            submitted += 1
            if submitted % SUBMIT_CHUNK == 0:
                await asyncio.sleep(0)
                if store.pending_count > 4 * config.commit_max_rows:
                    await last  # keep memory bounded, as the intake's backpressure would
        if last is not None:
            await last
        seconds = time.perf_counter() - started
        cpu_s = time.process_time() - cpu
        await store.stop_committer()
        await committer
    return {
        "rows": submitted,
        "seconds": seconds,
        "per_s": submitted / seconds,
        "cpu_us": cpu_s * 1e6 / max(submitted, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure the store path, or write a backlog."""
    parser = argparse.ArgumentParser(prog="python -m bench.store_path")
    kinds = parser.add_subparsers(dest="kind", required=True)
    measure = kinds.add_parser("measure")
    measure.add_argument("--rows", type=int, required=True)
    measure.add_argument("--dir", required=True)
    backlog = kinds.add_parser("backlog")
    backlog.add_argument("--config", required=True)
    backlog.add_argument("--records", type=int, required=True)
    args = parser.parse_args(argv)
    if args.kind == "measure":
        section = StoreSection(path=Path(args.dir) / "store-path.db")
        # Built beforehand: making records is the adapters' work, not the store's.
        result = asyncio.run(_submit_all(section, list(readings(args.rows))))
    else:
        config = load_config(Path(args.config))
        result = asyncio.run(_submit_all(config.store, backlog_records(args.records)))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
