"""What the store may throw away when it nears its size budget, and when.

The policy (docs/reference/reliability.md §7 row 6: "telemetry follows its policy: drop-oldest with
a counter"):

* Only **telemetry** is evicted: the tables whose records have outbox priority
  :attr:`Priority.TELEMETRY` (``device_events`` and ``rejected_inputs``), together with their
  outbox rows, **oldest first** (by gateway sequence number across both tables), whether or
  not the warehouse has acknowledged them yet. Compliance records (priority 1) and alerts
  (priority 0) are never evicted: when only they remain, the store is FULL, records wait in
  memory and commits are retried until space returns.
* The device events that carry the checkweigher's pack counter
  (:data:`PROTECTED_EVENT_KINDS`) are kept too: :meth:`Store.last_pack_counter` needs them
  after a restart, and ``missed_packs`` is evidence of packs that were not recorded, as
  ``records_shed`` is of device records shed under intake pressure.
* Eviction starts when a commit hits the budget (SQLITE_FULL) or when a periodic check finds
  the database's used pages above :data:`EVICT_ABOVE` of ``max_page_count``; it deletes in
  chunks of at most :data:`CHUNK_ROWS` rows, one transaction per chunk (a DELETE works under the
  page cap: docs/reference/reliability.md §2.4), until used pages are at most :data:`EVICT_DOWN_TO`,
  and at most :data:`MAX_CHUNKS_PER_ROUND` chunks at a time so commits are not held up for long.
* The "edge storage full" alert stays raised until used pages fall below
  :data:`CLEAR_BELOW` (hysteresis: below the level eviction stops at, so it does not flap
  while telemetry keeps being evicted).

Used pages are ``page_count - freelist_count``: a DELETE does not shrink the file, it puts
pages on the freelist, where the next inserts take them from.
"""

from __future__ import annotations

from gateway.core.records import Priority
from gateway.store.schema import RECORD_TABLES

EVICTABLE_TABLES: tuple[str, ...] = tuple(
    spec.table for spec in RECORD_TABLES.values() if spec.priority is Priority.TELEMETRY
)
"""Tables whose rows may be evicted for space: the telemetry priority class, nothing else."""

EVICTABLE_PRIORITY = int(Priority.TELEMETRY)
"""The only outbox priority whose rows eviction deletes (checked in the DELETE itself)."""

PROTECTED_EVENT_KINDS: tuple[str, ...] = (
    "pack_counter_baseline",
    "pack_counter_reset",
    "missed_packs",
    "pack_product",
    "line_mode",
    "changeover",
    "records_shed",
)
"""``device_events`` kinds never evicted: pack counter continuity and missed-pack evidence, the
product decided for a pack after it was stored, the line-mode and changeover events that
close ℮ batches (a restart replays them), and the records shed under intake pressure
(:mod:`gateway.shedding`)."""

EVICT_ABOVE = 0.90
"""Evict when used pages exceed this fraction of ``max_page_count``."""

EVICT_DOWN_TO = 0.80
"""Evict until used pages are at most this fraction of ``max_page_count``."""

CLEAR_BELOW = 0.70
"""Clear the "edge storage full" alert once used pages are below this fraction."""

CHUNK_ROWS = 1000
"""Telemetry rows deleted per transaction, at most (fewer when the last chunk shows that fewer
are enough to get down to :data:`EVICT_DOWN_TO`)."""

MIN_CHUNK_ROWS = 50
"""Telemetry rows deleted per transaction, at least."""

MAX_CHUNKS_PER_ROUND = 50
"""Chunks deleted in one go before commits get their turn again."""

CHECK_INTERVAL_S = 5.0
"""How often (at most) a successful commit looks at the used pages while all is well; while
the alert is raised or the store is FULL it looks after every commit."""

ALERT_ID = "store.full"
ALERT_RULE = "store_full"

if not (0 < CLEAR_BELOW < EVICT_DOWN_TO < EVICT_ABOVE < 1):  # pragma: no cover
    raise RuntimeError("eviction thresholds must satisfy 0 < clear < down_to < above < 1")
if set(EVICTABLE_TABLES) != {"device_events", "rejected_inputs"}:  # pragma: no cover
    # A table moved between priority classes: review this policy before evicting anything.
    raise RuntimeError(f"unexpected telemetry tables {EVICTABLE_TABLES}; review eviction")
