"""Deriving the typed tables from ``records``: what ``lineside warehouse backfill`` does
after the schema upgrade (docs/warehouse-schema.md).

The records are read in key order, a chunk per transaction; the facts a chunk's records
lack are inserted with the current state and dimensions they touch, exactly as live
ingest writes them (:class:`~sync.ingest.facts_sql.FactWriter`), with the ``records``
row's ``received_at``. A record that already has its fact is left alone, so a second run
inserts nothing and a run stopped half-way resumes where the facts end. Sites and
gateways are recounted from ``records`` at the end.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sync.ingest.facts import FACT_TABLES, Fact, FactError, build_fact

if TYPE_CHECKING:
    from sync.ingest.warehouse_base import Warehouse

logger = logging.getLogger("sync.ingest.warehouse")

CHUNK_RECORDS = 5000
"""Records per transaction: small enough to keep locks short, large enough to be fast."""


@dataclass(slots=True)
class BackfillSummary:
    """What a backfill did (``--json``)."""

    records: int = 0
    """Records read."""
    facts: int = 0
    """Facts inserted (records that had none)."""
    unfit: int = 0
    """Records no fact can be built from (logged; they stay in ``records``)."""
    chunks: int = 0
    by_stream: dict[str, int] = field(default_factory=dict)
    """Facts inserted per stream."""


Progress = Callable[[BackfillSummary], None]


def _received(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _payload(value: object) -> dict[str, Any]:
    data = json.loads(value) if isinstance(value, str | bytes) else value
    if not isinstance(data, dict):
        raise FactError("the payload is not an object")
    return data


class Backfill:
    """One backfill over a warehouse's connection (on the warehouse's thread)."""

    def __init__(self, warehouse: Warehouse, chunk: int = CHUNK_RECORDS) -> None:
        self.warehouse = warehouse
        self.chunk = chunk
        self.summary = BackfillSummary()

    def run(self, progress: Progress | None = None) -> BackfillSummary:
        after: tuple[str, int] | None = None
        while True:
            with self.warehouse._transaction():
                after = self._chunk(after)
            self.summary.chunks += 1
            if progress is not None:
                progress(self.summary)
            if after is None:
                break
        with self.warehouse._transaction():
            self.warehouse._fact_writer().recount()
        return self.summary

    def _rows(self, after: tuple[str, int] | None) -> list[tuple[Any, ...]]:
        params: list[object]
        m = self.warehouse.dialect.mark
        where, params = "", [self.chunk]
        if after is not None:
            where = f"WHERE (gateway, seq) > ({m}, {m})"
            params = [*after, self.chunk]
        cursor = self.warehouse._execute(
            "SELECT gateway, site, seq, stream, payload, received_at FROM records"  # noqa: S608 (marks)
            f" {where} ORDER BY gateway, seq LIMIT {m}",
            params,
        )
        return list(cursor.fetchall())

    def _chunk(self, after: tuple[str, int] | None) -> tuple[str, int] | None:
        """Derive one chunk's missing facts; the key to continue after, None at the end."""
        rows = self._rows(after)
        if not rows:
            return None
        self.summary.records += len(rows)
        facts = [fact for fact in map(self._fact, rows) if fact is not None]
        missing = self._missing(facts)
        self.warehouse._fact_writer().write(missing)
        self.summary.facts += len(missing)
        for fact in missing:
            self.summary.by_stream[fact.stream] = self.summary.by_stream.get(fact.stream, 0) + 1
        last = rows[-1]
        return (str(last[0]), int(last[2])) if len(rows) == self.chunk else None

    def _fact(self, row: tuple[Any, ...]) -> Fact | None:
        gateway, site, seq, stream, payload, received_at = row
        if stream not in FACT_TABLES:
            self.summary.unfit += 1
            return None
        try:
            data = _payload(payload)
            return build_fact(
                stream, gateway, site, int(seq), data, received_at=_received(received_at)
            )
        except (FactError, ValueError) as exc:
            self.summary.unfit += 1
            logger.warning(
                "backfill: gateway %s seq %s (%s) has no fact: %s", gateway, seq, stream, exc
            )
            return None

    def _missing(self, facts: Sequence[Fact]) -> list[Fact]:
        """The facts not stored yet."""
        groups: dict[tuple[str, str], list[Fact]] = defaultdict(list)
        for fact in facts:
            groups[(fact.stream, fact.gateway)].append(fact)
        m = self.warehouse.dialect.mark
        missing: list[Fact] = []
        for (stream, gateway), group in groups.items():
            seqs = [f.seq for f in group]
            present = {
                int(row[0])
                for row in self.warehouse._execute(
                    f"SELECT seq FROM {stream} WHERE gateway = {m}"  # noqa: S608 (fixed names)
                    f" AND seq >= {m} AND seq <= {m}",
                    (gateway, min(seqs), max(seqs)),
                ).fetchall()
            }
            missing.extend(f for f in group if f.seq not in present)
        missing.sort(key=lambda f: (f.gateway, f.seq))
        return missing


__all__ = ["CHUNK_RECORDS", "Backfill", "BackfillSummary", "Progress"]
