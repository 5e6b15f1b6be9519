"""The outbox's batch cut passes SQLite only the sequence numbers in flight from the head on.

Its read starts at the head (the first row in (priority, seq) order not in flight), so a
number in flight below the head cannot be among its rows. This holds the cut to the one that
passes every number in flight, on random outboxes of three priority classes and several
streams, with quarantined rows and random sets in flight: the oldest records of a stream (as
the uplinks' windows have them), scattered ones, and ones above the head.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from gateway.core.records import Record
from sync.outbox import SCAN_FACTOR, Outbox, batch_seqs
from tests.support.uplink_harness import GW, SITE, alert, commit, pack, running_store, telemetry


async def cut_with_every_number(
    outbox: Outbox, max_records: int, in_flight: list[int]
) -> tuple[str, tuple[int, ...]] | None:
    """The cut as it was made before: every number in flight passed to every statement."""
    excluded = json.dumps(sorted(in_flight))
    head = await outbox.head(excluded)
    if head is None:
        return None
    first, stream, priority = head
    span = (priority, first, SCAN_FACTOR * max_records + len(in_flight))
    entries = await outbox.read(stream, span, excluded, max_records)
    return stream, tuple(seq for seq, _ in entries)


def records(rng: random.Random, count: int) -> list[Record]:
    made: list[Record] = []
    for i in range(count):
        kind = rng.random()
        if kind < 0.05:
            made.append(alert(f"a{i}"))
        elif kind < 0.45:
            made.append(pack(i))
        else:
            made.append(telemetry(i))
    return made


def in_flight_sets(rng: random.Random, seqs: list[int]) -> list[list[int]]:
    oldest = seqs[: rng.randint(0, len(seqs))]
    scattered = rng.sample(seqs, rng.randint(0, len(seqs) // 2))
    above = [s for s in seqs if s > seqs[len(seqs) // 2] and rng.random() < 0.3]
    return [[], oldest, scattered, above, oldest + above, sorted(set(oldest + scattered))]


async def test_the_cut_is_the_one_that_passes_every_number_in_flight(tmp_path: Path) -> None:
    rng = random.Random(2026_12_06)
    compared = 0
    for case in range(12):
        async with running_store(tmp_path / str(case)) as store:
            seqs = await commit(store, records(rng, rng.randint(20, 200)))
            outbox = Outbox(store, gateway=GW, site=SITE)
            await outbox.quarantine(rng.sample(seqs, rng.randint(0, 10)), "refused")
            for in_flight in in_flight_sets(rng, seqs):
                max_records = rng.choice([1, 3, 10, 50, 500])
                batch = await outbox.next_batch(max_records, 10_000_000, exclude=in_flight)
                expected = await cut_with_every_number(outbox, max_records, in_flight)
                got = None if batch is None else (batch.stream, batch_seqs(batch))
                assert got == expected, (case, max_records, len(in_flight))
                compared += got is not None
    assert compared >= 40  # most cases found something to send
