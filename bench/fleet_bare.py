"""The fleet bench's bare reference: bare psycopg inserting the same rows the same way.

After a fleet run, the warehouse's own ``records`` rows are read back and inserted again into
a table of the same shape (``LIKE records INCLUDING ALL``: the same primary key and index),
with the ingest's statement (``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING``),
one transaction per batch of the uplinks' batch size and ``synchronous_commit = on``, from
``connections`` connections at once (one thread each; psycopg releases the GIL while it
waits on the server). That is the floor of what the ingest does per batch: what it adds on
top is MQTT, decoding and checking the batch, the typed fact rows and the ack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import psycopg

Row = tuple[str, str, int, str, str, str]
INSERT = (
    "INSERT INTO bare_records (gateway, site, seq, stream, payload, payload_sha256)"
    " SELECT %s, %s, t.seq, %s, t.payload::jsonb, t.sha"
    " FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS t(seq, payload, sha)"
    " ON CONFLICT (gateway, seq) DO NOTHING"
)


@dataclass(frozen=True)
class BareResult:
    """Rows inserted, batches, seconds, rows per second."""

    rows: int
    batches: int
    seconds: float
    connections: int

    @property
    def per_s(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def _batches(rows: Sequence[Row], size: int) -> list[list[Row]]:
    out: list[list[Row]] = []
    for _, group in groupby(rows, key=lambda r: (r[0], r[3])):
        items = list(group)
        out.extend(items[i : i + size] for i in range(0, len(items), size))
    return out


def _insert(dsn: str, batches: Sequence[list[Row]]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        for batch in batches:
            gateway, site, _, stream, _, _ = batch[0]
            with conn.transaction():
                conn.execute(
                    INSERT,
                    (
                        gateway,
                        site,
                        stream,
                        [r[2] for r in batch],
                        [r[4] for r in batch],
                        [r[5] for r in batch],
                    ),
                )


def insert_again(dsn: str, *, batch_size: int, connections: int) -> BareResult:
    """Insert the warehouse's records once more into an empty ``bare_records``, timed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bare_records")
        conn.execute("CREATE TABLE bare_records (LIKE records INCLUDING ALL)")
        rows: list[Row] = [
            (str(g), str(s), int(q), str(t), str(p), str(h))
            for g, s, q, t, p, h in conn.execute(
                "SELECT gateway, site, seq, stream, payload::text, payload_sha256 FROM records"
                " ORDER BY gateway, stream, seq"
            ).fetchall()
        ]
    batches = _batches(rows, batch_size)
    shares = [batches[i::connections] for i in range(connections)]
    failures: list[BaseException] = []

    def work(share: list[list[Row]]) -> None:
        try:
            _insert(dsn, share)
        except BaseException as exc:  # handed to the caller below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    if failures:
        raise failures[0]
    with psycopg.connect(dsn, autocommit=True) as conn:
        stored = conn.execute("SELECT count(*) FROM bare_records").fetchone()
        conn.execute("DROP TABLE bare_records")
    return BareResult(int(stored[0]) if stored else 0, len(batches), seconds, connections)


__all__ = ["BareResult", "insert_again"]
