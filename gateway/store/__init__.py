"""The local store: one SQLite database, the device's single source of truth.

* One writer connection (aiosqlite runs it on its own thread), WAL journal,
  ``synchronous=FULL``: a commit is on disk when it returns
  (sqlite.org/pragma.html#pragma_synchronous).
* Group commit: :meth:`Store.submit` queues a record; the committer task writes everything
  pending in one ``BEGIN IMMEDIATE`` transaction at most every ``commit_interval_ms`` or as
  soon as ``commit_max_rows`` are waiting, whichever comes first. One fsync per batch bounds
  flash wear and the loss window.
* Every record gets its gateway sequence number (:mod:`gateway.store.sequence`) and its outbox row
  in the same transaction (transactional outbox). A batch is committed whole or not at all.
* At start-up ``PRAGMA quick_check``; a database that is damaged (or not a database) is moved
  with its ``-wal`` and ``-shm`` into the quarantine folder, a fresh one is created, and an
  alert naming the file is stored. The same happens if corruption shows up while running.
* A size budget: ``max_page_count`` keeps the database under ``max_size_mb`` and leaves
  ``headroom_mb`` free on the disk. When the budget or the disk is full, the batch is rolled
  back explicitly, kept in memory, and retried with backoff (SQLite can't even DELETE on a
  full disk: docs/reference/reliability.md §2.4). An I/O error is fatal: the process exits, systemd
  restarts; but an I/O error while the disk has (almost) no free space, or ENOSPC writing the
  sequence reservation, is a full disk and handled like SQLITE_FULL.
* Eviction (:mod:`gateway.store.eviction` has the policy): near the budget, or when a commit hits
  it, the oldest telemetry rows and their outbox rows are deleted in bounded chunks, one
  transaction each, on the writer connection; compliance records and alerts never are.
  Evicted rows are counted per table in :attr:`StoreStats.evicted`, and one "edge storage
  full" alert (``store.full``) is raised, cleared again when the database is back well under
  its budget. Before each retry after a full commit the budget is recomputed from the free
  disk space, so space that comes back is used without a restart.
* Bounded intake: :meth:`Store.wait_for_space` holds back intake that can wait (the
  adapters that read or poll) while half of ``max_pending_rows`` records are pending, and
  :class:`gateway.pipeline.Pipeline` sheds device records beyond ``max_pending_rows``
  (counted: :mod:`gateway.shedding`). Reaching the backpressure level also starts a commit
  at once. Whatever is queued with :meth:`Store.submit` itself (alerts, the gateway's own
  events, operator commands) is never refused.

The package, one job per module:

* :mod:`gateway.store.sqlite_store`: :class:`Store`: opening and closing, the group committer,
  reads (:meth:`Store.fetchall`, which only reads) and writes on the one connection
  (:meth:`Store.write_in_transaction`).
* :mod:`gateway.store.base`: the state, the pending queue and the connection the others share.
* :mod:`gateway.store.budget` and :mod:`gateway.store.eviction`: the size budget and what
  may be evicted.
* :mod:`gateway.store.batch_insert`: one batch into its tables and the outbox, one transaction.
* :mod:`gateway.store.database`, :mod:`gateway.store.schema`,
  :mod:`gateway.store.record_tables`: opening and migrating the file, the tables, and which
  record goes where.
* :mod:`gateway.store.file_quarantine`, :mod:`gateway.store.sqlite_errors`: damaged files and
  SQLite's errors.
* :mod:`gateway.store.outbox`: every statement on the outbox and its quarantine.
* :mod:`gateway.store.sequence`, :mod:`gateway.store.lock`: sequence numbers never reused,
  one writer per store.
"""

from gateway.store.base import BACKPRESSURE_FRACTION, StoreSettings, StoreState, StoreStats
from gateway.store.database import MIB
from gateway.store.sqlite_errors import classify_sqlite_error
from gateway.store.sqlite_store import Store

__all__ = [
    "BACKPRESSURE_FRACTION",
    "MIB",
    "Store",
    "StoreSettings",
    "StoreState",
    "StoreStats",
    "classify_sqlite_error",
]
