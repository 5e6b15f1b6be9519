"""What the fleet tests check in the warehouse: every committed record exactly once.

The gateways' side is :meth:`bench.fleet_gateways.Fleet.committed` (gateway -> seq -> payload
SHA-256, computed from each store as the outbox sends it); the warehouse's side is its
``records`` table and the typed fact tables (docs/warehouse-schema.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import psycopg

FACT_STREAMS = ("packs", "temperatures", "label_scans", "alerts")
"""The streams the fleet produces; each has a fact table of the same name."""


def _count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM records").fetchone()
    return int(row[0]) if row else 0


async def stored_records(dsn: str) -> int:
    """Rows in the warehouse's ``records`` table now."""
    return await asyncio.to_thread(_count, dsn)


class Timeline:
    """What happened when in a fleet test, with the warehouse's record count then (printed
    with the test's result: how far the drain was at each crash)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.started = time.monotonic()
        self.events: list[tuple[float, str, int]] = []

    async def mark(self, event: str) -> int:
        """Note ``event``; the records stored now."""
        stored = await stored_records(self.dsn)
        self.events.append((time.monotonic() - self.started, event, stored))
        return stored

    def __str__(self) -> str:
        return "; ".join(f"{at:.1f} s {event} ({n} stored)" for at, event, n in self.events)


def _read(dsn: str) -> tuple[list[tuple[str, int, str]], dict[str, Counter[str]]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT gateway, seq, payload_sha256 FROM records").fetchall()
        facts: dict[str, Counter[str]] = {}
        for table in FACT_STREAMS:
            # The table names are this module's constants.
            counted = conn.execute(f"SELECT gateway, count(*) FROM {table} GROUP BY gateway")
            facts[table] = Counter({str(g): int(n) for g, n in counted.fetchall()})
    return [(str(g), int(s), str(h)) for g, s, h in rows], facts


async def assert_fleet_stored(
    dsn: str, committed: dict[str, dict[int, str]], per_gateway: Counter[str]
) -> None:
    """Every record each gateway committed is in ``records`` exactly once with the same payload
    hash, nothing else is, and each gateway has ``per_gateway`` fact rows of each stream."""
    rows, facts = await asyncio.to_thread(_read, dsn)
    identities = Counter((gateway, seq) for gateway, seq, _ in rows)
    twice = [identity for identity, n in identities.items() if n > 1]
    assert not twice, f"stored more than once: {twice[:10]}"
    stored: dict[str, dict[int, str]] = {}
    for gateway, seq, digest in rows:
        stored.setdefault(gateway, {})[seq] = digest
    missing = {
        gateway: sorted(set(seqs) - set(stored.get(gateway, {})))[:10]
        for gateway, seqs in committed.items()
        if set(seqs) - set(stored.get(gateway, {}))
    }
    assert not missing, f"committed at the gateway, not in the warehouse: {missing}"
    assert stored == committed
    for gateway in committed:
        for stream in FACT_STREAMS:
            assert facts[stream][gateway] == per_gateway[stream], (gateway, stream)
