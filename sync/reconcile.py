"""Reconciliation: does the warehouse hold what the gateway committed?

Both sides are counted in the same buckets, a :data:`Key` of ``(stream, run_number, hour)``:

* ``stream`` is the record table (``packs``, ``temperatures``, …, as in
  :data:`gateway.store.schema.RECORD_STREAMS`);
* ``run_number`` is the record's run for :data:`RUN_STREAMS` (``None`` when it has none) and
  always ``None`` for the other streams;
* ``hour`` is the UTC hour of the record's own ``ts_us`` as ``'YYYY-MM-DDTHH'`` (the same
  bucketing as :meth:`sync.ingest.warehouse.Warehouse.counts`: floor of ``ts_us`` / 1 h).

Typical use (the ``lineside reconcile`` command)::

    gateway = await gateway_counts(store)
    buffered = await outbox_counts(store)
    warehouse = await warehouse_counts(wh, gateway_id)
    for diff in compare(gateway, warehouse, buffered):
        ...

A bucket is reported when ``gateway − buffered != warehouse``: the gateway committed records
the warehouse does not have and that are not waiting in the outbox any more (lost, or
quarantined at the gateway), or the warehouse has records the gateway does not know. A batch
in flight (stored by the warehouse, its ack not yet back) shows for a moment as
``warehouse > gateway − buffered``; run it again against an idle or stopped uplink.

Consistency on the gateway: :func:`gateway_counts` and :func:`outbox_counts` run one query
per table. Against a running gateway, :meth:`gateway.store.Store.fetchall` shares the
committer's connection and can see a batch half inserted (records without their outbox
rows). For exact figures, count a stopped gateway, or pass a separate read-only connection
wrapped in one read transaction (anything with an async ``fetchall(sql, parameters)``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from gateway.store.schema import RECORD_STREAMS

if TYPE_CHECKING:
    from sync.ingest.warehouse import Warehouse

Key = tuple[str, str | None, str]
"""``(stream, run_number, hour)``; see the module documentation."""

Counts = dict[Key, int]
"""Records per bucket."""

RUN_STREAMS: frozenset[str] = frozenset({"packs", "temperatures", "label_scans"})
"""Streams counted per run number; the others are counted with ``run_number = None``."""

NO_HOUR = "unknown"
"""The hour of a warehouse record without a usable ``ts_us`` (never one from a gateway)."""

HOUR_US = 3_600_000_000

# Floor division (SQLite's '/' truncates towards zero), as the warehouse does it.
_HOUR_SQL = f"ts_us / {HOUR_US} - (ts_us % {HOUR_US} < 0)"


class Queryable(Protocol):
    """What the gateway side needs: :meth:`gateway.store.Store.fetchall`."""

    async def fetchall(
        self, sql: str, parameters: Sequence[Any] = ...
    ) -> list[tuple[Any, ...]]: ...  # pragma: no cover


class Difference(NamedTuple):
    """One bucket where ``gateway_count − still_buffered != warehouse_count``."""

    key: Key
    gateway_count: int
    """Records the gateway committed in this bucket."""
    warehouse_count: int
    """Records of this gateway the warehouse stores in this bucket."""
    still_buffered: int
    """Records of this bucket still in the gateway's outbox (not acknowledged yet)."""

    @property
    def missing(self) -> int:
        """Records neither in the warehouse nor buffered (negative: the warehouse has more)."""
        return self.gateway_count - self.still_buffered - self.warehouse_count


def hour_key(hour: int | datetime | None) -> str:
    """``'YYYY-MM-DDTHH'`` (UTC) of an hour index (``ts_us // 1 h``) or an hour's start."""
    if hour is None:
        return NO_HOUR
    if isinstance(hour, int):
        try:
            hour = datetime.fromtimestamp(hour * 3600, UTC)
        except (OverflowError, OSError, ValueError):
            return f"{NO_HOUR}:{hour}"
    return hour.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _add(counts: Counts, stream: str, run: object, hour: int | datetime | None, n: int) -> None:
    run_number = None if run is None or stream not in RUN_STREAMS else str(run)
    key: Key = (stream, run_number, hour_key(hour))
    counts[key] = counts.get(key, 0) + n


async def gateway_counts(store: Queryable) -> Counts:
    """The gateway's committed records per bucket, from its SQLite record tables."""
    counts: Counts = {}
    for stream in RECORD_STREAMS:
        run = "run_number" if stream in RUN_STREAMS else "NULL"
        rows = await store.fetchall(
            f"SELECT {run}, {_HOUR_SQL} AS hour, count(*) FROM {stream} GROUP BY 1, 2"  # noqa: S608 (fixed names)
        )
        for run_number, hour, n in rows:
            _add(counts, stream, run_number, int(hour), int(n))
    return counts


async def outbox_counts(store: Queryable) -> Counts:
    """The gateway's records still in its outbox (not acknowledged by the warehouse)."""
    counts: Counts = {}
    for stream in RECORD_STREAMS:
        run = "t.run_number" if stream in RUN_STREAMS else "NULL"
        hour = _HOUR_SQL.replace("ts_us", "t.ts_us")
        rows = await store.fetchall(
            f"SELECT {run}, {hour} AS hour, count(*) FROM outbox o"  # noqa: S608 (fixed names)
            f" JOIN {stream} t ON t.seq = o.seq WHERE o.stream = ? GROUP BY 1, 2",
            (stream,),
        )
        for run_number, hour_index, n in rows:
            _add(counts, stream, run_number, int(hour_index), int(n))
    return counts


async def warehouse_counts(warehouse: Warehouse, gateway_id: str) -> Counts:
    """:meth:`Warehouse.counts` of one gateway, in the same buckets as :func:`gateway_counts`.

    The warehouse groups by the payload's ``run_number`` for every stream; streams outside
    :data:`RUN_STREAMS` are merged into ``run_number = None`` here.
    """
    counts: Counts = {}
    for row in await warehouse.counts(gateway_id):
        _add(counts, row.stream, row.run_number, row.hour, row.records)
    return counts


def _order(key: Key) -> tuple[str, bool, str, str]:
    stream, run, hour = key
    return (stream, run is not None, run or "", hour)


def compare(
    gateway: Mapping[Key, int], warehouse: Mapping[Key, int], in_outbox: Mapping[Key, int]
) -> list[Difference]:
    """The buckets where ``gateway − in_outbox != warehouse``, sorted by key.

    A key missing from a mapping counts 0 there.
    """
    keys: Iterable[Key] = sorted(set(gateway) | set(warehouse) | set(in_outbox), key=_order)
    differences = []
    for key in keys:
        mine, theirs, buffered = gateway.get(key, 0), warehouse.get(key, 0), in_outbox.get(key, 0)
        if mine - buffered != theirs:
            differences.append(Difference(key, mine, theirs, buffered))
    return differences


class SnapshotReader:
    """A read-only view of a gateway's store in one read transaction (a consistent snapshot),
    usable beside the running gateway: WAL lets readers and the one writer coexist."""

    def __init__(self, path: Path) -> None:
        # Queries run one at a time in worker threads (awaited in turn), never concurrently.
        self._db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False
        )
        self._db.execute("BEGIN")  # every query below sees the same committed state

    async def fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query on the snapshot."""
        return await asyncio.to_thread(lambda: self._db.execute(sql, parameters).fetchall())

    def close(self) -> None:
        """End the read transaction."""
        self._db.rollback()
        self._db.close()


class Reconciliation(NamedTuple):
    """The outcome of :func:`reconcile_counts`."""

    differences: list[Difference]
    buffered: Counts
    """The gateway's records still in its outbox, per bucket (all of them, not only those
    of differing buckets)."""
    committed: int
    """Records the gateway committed (in its record tables)."""


async def reconcile_counts(
    store_path: Path, warehouse: Warehouse, gateway_id: str
) -> Reconciliation:
    """Compare a gateway's store with the warehouse (opened by the caller), with what is
    still buffered."""
    snapshot = SnapshotReader(store_path)
    try:
        mine = await gateway_counts(snapshot)
        buffered = await outbox_counts(snapshot)
    finally:
        snapshot.close()
    differences = compare(mine, await warehouse_counts(warehouse, gateway_id), buffered)
    return Reconciliation(differences, buffered, sum(mine.values()))


async def reconcile(store_path: Path, warehouse: Warehouse, gateway_id: str) -> list[Difference]:
    """Compare a gateway's store with the warehouse (opened by the caller)."""
    return (await reconcile_counts(store_path, warehouse, gateway_id)).differences
