"""The gateway's own Python per reading, driven directly: no device, no network.

``python -m bench.pipeline_path --rows N`` queues N temperature readings of 100 probes the
way the adapters do (their repeated-rejection filter, then the pipeline: run join, HACCP
rules on every probe, the device watch, the store's group-commit queue) and prints the main
thread's CPU µs per reading for that queueing alone, the process's CPU µs per reading with
the SQLite commits of every row and its outbox row, and the rows stored and queued for sync
(each equal to the readings: nothing is shed).

This is the part of the intake that is Lineside's own and not asyncua's decoding or
SQLite's: the bench's OPC UA figure (phase ``ingest``) moves with the machine and the
server, this one only with the code. Compare two trees with the same interpreter::

    (cd old && python -m bench.pipeline_path --rows 200000)
    (cd new && python -m bench.pipeline_path --rows 200000)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from gateway.config import ProbeRules, RulesSection, StoreSection
from gateway.core.clock import ManualClock
from gateway.core.records import Record, TemperatureReading

PROBES = 100
CHUNK = 250
"""Readings queued between yields to the event loop: one 50 ms publish of 5,000/s."""


def readings(count: int, start_us: int) -> list[Record]:
    """``count`` readings of :data:`PROBES` probes, 0.1 ms apart, inside their limits."""
    return [
        TemperatureReading(
            ts_us=start_us + i * 100,
            line="L1",
            device="probes",
            probe=f"P{i % PROBES}",
            location="product core",
            celsius=2.5 + (i % 13) / 10,
        )
        for i in range(count)
    ]


async def _queue_all(rows: int, folder: Path) -> dict[str, float]:
    from adapters.rejections import RepeatedRejections  # noqa: PLC0415
    from gateway.pipeline import Pipeline  # noqa: PLC0415
    from gateway.rules_engine import RulesEngine  # noqa: PLC0415
    from gateway.runs import RunIndex  # noqa: PLC0415
    from gateway.store import Store  # noqa: PLC0415

    rules = RulesSection(
        probes=tuple(
            ProbeRules(device="probes", probe=f"P{i}", upper_c=8.0, debounce_s=10, no_data_s=10)
            for i in range(PROBES)
        )
    )
    clock = ManualClock()
    # Room for every row: the figure is the queueing, never the shedding.
    config = StoreSection(path=folder / "pipeline-path.db", max_pending_rows=max(rows, 1000) * 2)
    async with Store(config, clock) as store:
        committer = asyncio.create_task(store.run_committer())
        pipeline = Pipeline(store, RunIndex(), rules=RulesEngine(rules, RunIndex(), clock))
        rejections = RepeatedRejections()
        # The adapters' call (Pipeline.enqueue); submit where a tree has no enqueue yet.
        queue = getattr(pipeline, "enqueue", pipeline.submit)
        # Built beforehand: making records is the interpreters' work, measured elsewhere.
        records = readings(rows, clock.wall_us())
        cpu = time.process_time()
        thread = time.thread_time()
        for start in range(0, rows, CHUNK):
            for record in rejections.admit(records[start : start + CHUNK]):
                queue(record)
            await asyncio.sleep(0)
        thread_s = time.thread_time() - thread
        await store.stop_committer()
        await committer
        cpu_s = time.process_time() - cpu
        stored = await store.fetchall("SELECT count(*) FROM temperatures")
        queued = await store.fetchall("SELECT count(*) FROM outbox")
    return {
        "rows": rows,
        "stored": int(stored[0][0]),
        "queued_for_sync": int(queued[0][0]),
        "queue_cpu_us": thread_s * 1e6 / max(rows, 1),
        "process_cpu_us": cpu_s * 1e6 / max(rows, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure the pipeline path and print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline_path")
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lineside-pipeline-") as folder:
        result = asyncio.run(_queue_all(args.rows, Path(folder)))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
