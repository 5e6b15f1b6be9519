"""A gateway's batches, cut from its store, reach the ingest with each record's canonical text.

Every stream of the fleet's mix (packs, temperatures, label scans with their raw bytes as hex,
alerts with their detail), with text outside ASCII, goes through the store, the outbox and the
wire encoder as the uplinks send it. At the ingest each record's received text must be its
canonical JSON, and what the ingest stores (text, SHA-256, verdict, facts) must be what it
stored when it encoded every record itself.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.fleet_records import TimeBase, fleet_record
from gateway.core.records import Record, TemperatureReading
from sync.canonical import canonical_json
from sync.ingest.warehouse_base import prepare_with_facts, received_texts
from sync.outbox import Outbox, batch_seqs
from sync.protocol import decode_batch, encode_batch
from tests.support.uplink_harness import GW, SITE, commit, running_store


def mix() -> list[Record]:
    time_base = TimeBase()
    records = [fleet_record(i, time_base) for i in range(400)]
    records += [
        TemperatureReading(
            ts_us=time_base.at(1000 + i),
            line="L1",
            device="probe1",
            probe=f"P{i}",
            location=location,
            celsius=-1.5 + i / 7,
        )
        for i, location in enumerate(["Kühlraum", "冷蔵庫", "chiller 🐟", "tab\there"])
    ]
    return records


async def test_every_stream_arrives_with_its_canonical_text(tmp_path: Path) -> None:
    async with running_store(tmp_path) as store:
        seqs = await commit(store, mix())
        outbox = Outbox(store, gateway=GW, site=SITE)
        streams: set[str] = set()
        seen: list[int] = []
        while (batch := await outbox.next_batch(60, 1_000_000)) is not None:
            received = decode_batch(encode_batch(batch))
            assert received == batch
            texts = received_texts(received)
            assert texts == tuple(canonical_json(data) for _, data in batch.records)
            as_received = prepare_with_facts(received)
            encoded = prepare_with_facts(dataclasses.replace(received, data_texts=None))
            assert as_received == encoded
            assert all(record.problem is None for record in as_received[0])
            streams.add(batch.stream)
            seen += batch_seqs(batch)
            await outbox.acknowledge(batch_seqs(batch))
    assert streams == {"packs", "temperatures", "label_scans", "alerts"}
    assert sorted(seen) == sorted(seqs)
