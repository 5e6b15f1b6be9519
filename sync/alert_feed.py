"""Every stored alert transition to the alerts topics: from the store, in order, at least once.

Why from the store
------------------
Transitions used to be handed to the uplink in memory as the rules raised them, and that
path lost them three ways (issue 17): a burst after a broker outage overflowed paho's
bounded queue and was dropped (``not accepted by paho: 15``); a transition could be
published before its transaction committed, and a crash then left the board with an alert
the store never had; and transitions stored at start (``RulesEngine.restore``: "cleared at
gateway restart") were stored but never published. The ``alerts`` table is the one truth
(docs/reference/reliability.md §0.1), so the feed publishes what is in it and nothing else.

How
---
* **Publish cursor**: the highest alert ``seq`` that has been PUBACKed by the broker together
  with every alert before it (or passed over: expired, refused). It is kept in the store's
  ``meta`` table under :data:`CURSOR_KEY`, written at most every ``save_interval_s`` and when
  the uplink stops. The cursor moves only over a contiguous run of settled transitions, so a
  PUBACK that comes in early never lets an older transition be skipped.
* **Pages**: rows after the cursor are read in ``seq`` order, ``page_rows`` at a time, only
  when the current page is used up; days of alerts behind an outage cost pages, not memory.
  New alerts are noticed when the store commits them (:meth:`wake`) and, as a safety net,
  every ``poll_interval_s``.
* **Window**: at most ``window`` transitions are published and not yet PUBACKed, so the feed
  never fills paho's queue. After a reconnect (a fresh client with clean start, see
  :mod:`sync.mqtt_uplink`) publishing starts again right after the cursor: what was in flight
  is published again, as the same bytes. Subscribers therefore see every transition at least
  once and in ``seq`` order; a duplicate is an exact repeat, which they drop by ``seq``.
* **Topics**: a line's transitions go to :func:`sync.protocol.alerts_topic`, those without a
  line (the store, sync) to :func:`sync.protocol.gateway_alerts_topic`. Each topic gets a
  subsequence of the one ``seq``-ordered stream, so one cursor keeps every topic in order.
* **Expiry** (docs/reference/reliability.md §3.4): each message carries an MQTT 5 Message
  Expiry Interval counted from the transition's ``ts_us``; a transition older than
  ``expiry_s`` is passed over (and counted) rather than shown on a board as new. The
  warehouse still gets it, through the outbox.
* **Refusals**: a PUBACK reason code of 0x80 or more is final (0x87: the broker's ACL): it is
  logged and counted and the feed moves on; the record still reaches the warehouse through
  the outbox, and an alert about it would take the same refused path. Only 0x97 "quota
  exceeded" is temporary: the feed starts again from the cursor after a backoff.

Call everything from the event loop's thread (the uplink does).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from gateway.core.backoff import Backoff
from gateway.core.errors import StoreError
from gateway.store import Store
from sync.protocol import VERSION, alerts_topic, gateway_alerts_topic

log = logging.getLogger(__name__)

CURSOR_KEY = "sync.mqtt.alerts_cursor"
"""``meta`` key of the publish cursor: the highest alert seq published with all before it."""

DEFAULT_ALERT_EXPIRY_S = 3600
"""Alert transitions older than this are not shown on boards (MQTT 5 message expiry)."""

QUOTA_EXCEEDED = 0x97
"""PUBACK reason code that is temporary (a batch is retried with backoff instead of being
quarantined; the feed starts again from its cursor after a backoff)."""

_PAGE_SQL = (
    "SELECT seq, ts_us, alert_id, rule, subject, line, severity, state, message, detail, "
    "flags FROM alerts WHERE seq > ? ORDER BY seq LIMIT ?"
)
"""One page of transitions after a position, through the ``seq`` primary key."""


def alert_payload(row: tuple[Any, ...], *, site: str, gateway: str) -> bytes:
    """A stored transition (a row of :data:`_PAGE_SQL`) as compact JSON with sorted keys.

    Made only from the row, so a transition published again is the same bytes.
    """
    seq, ts_us, alert_id, rule, subject, line, severity, state, message, detail, flags = row
    body = {
        "v": VERSION,
        "site": site,
        "gateway": gateway,
        "seq": seq,
        "ts_us": ts_us,
        "alert_id": alert_id,
        "rule": rule,
        "subject": subject,
        "line": line,
        "severity": severity,
        "state": state,
        "message": message,
        "detail": json.loads(detail),
        "flags": flags,
    }
    return json.dumps(body, allow_nan=False, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One stored transition, ready to publish."""

    seq: int
    topic: str
    payload: bytes
    expiry_s: int
    """MQTT 5 Message Expiry Interval left, seconds."""


@dataclass
class AlertFeedStats:
    """Counters for metrics and tests."""

    published: int = 0
    """Transitions the broker PUBACKed (a repeat after a reconnect counts again)."""
    republished: int = 0
    """Publishes of a transition already published before (after a reconnect or quota)."""
    expired: int = 0
    """Transitions passed over because they were older than the expiry."""
    refused: int = 0
    """Transitions the broker refused for good (PUBACK >= 0x80) or that could not be encoded."""
    not_accepted: int = 0
    """Publishes paho did not take (its queue full): held back and tried again, not lost."""
    pages: int = 0
    """Pages read from the store."""
    saves: int = 0
    """Times the cursor was written to the store."""


@dataclass
class AlertFeed:
    """The stored alert transitions after the publish cursor, for :class:`MqttUplink`.

    The uplink asks for :meth:`next_message` while it may publish, reports each publish with
    :meth:`sent`, each PUBACK with :meth:`confirmed` / :meth:`refused`, calls :meth:`rewind`
    on every new connection and :meth:`save` as it goes.
    """

    store: Store
    site: str
    gateway: str
    expiry_s: int = DEFAULT_ALERT_EXPIRY_S
    window: int = 4
    """Transitions published and not yet PUBACKed, at most."""
    page_rows: int = 100
    poll_interval_s: float = 1.0
    """Looks for new rows this often even without a commit notice (a safety net)."""
    save_interval_s: float = 1.0
    """The cursor is written at most this often: a crash repeats at most that much."""
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.5, maximum=10.0))
    """Delays after "quota exceeded" and after paho refused a publish."""
    stats: AlertFeedStats = field(default_factory=AlertFeedStats)
    cursor: int = 0
    """The highest seq settled together with every seq before it."""
    epoch: int = 0
    """Counts rewinds: a PUBACK for a publish of an earlier epoch is ignored."""
    _loaded: bool = False
    _saved: int = 0
    _read_to: int = 0
    """The highest seq read from the store (or the cursor after a rewind)."""
    _page: deque[tuple[Any, ...]] = field(default_factory=deque)
    """Rows read and not yet handed out: at most one page."""
    _order: deque[int] = field(default_factory=deque)
    """Seqs handed out (published or passed over) and not yet folded into the cursor."""
    _settled: set[int] = field(default_factory=set)
    _in_flight: set[int] = field(default_factory=set)
    _highest_sent: int = 0
    """The highest seq ever published: a publish at or below it is a repeat."""
    _more: bool = True
    """Rows may be waiting: read now rather than at the next poll."""
    _next_poll: float = 0.0
    _next_save: float = 0.0
    _hold_until: float = 0.0

    def __post_init__(self) -> None:
        if self.window < 1 or self.page_rows < 1 or self.expiry_s < 1:
            raise ValueError("window, page_rows and expiry_s must be positive")

    # ---------------------------------------------------------------- life cycle

    async def load(self) -> None:
        """Read the cursor from the store (once); a fresh store starts before its first alert."""
        if self._loaded:
            return
        stored = await self.store.get_meta(CURSOR_KEY)
        self.cursor = self._saved = int(stored) if stored else 0
        self._highest_sent = self.cursor
        self._loaded = True
        self.rewind()
        log.info("alert feed: publishing alert transitions after seq %d", self.cursor)

    def rewind(self) -> None:
        """Start again right after the cursor: whatever was in flight is published again."""
        self.epoch += 1
        self._page.clear()
        self._order.clear()
        self._settled.clear()
        self._in_flight.clear()
        self._read_to = self.cursor
        self._more = True

    def wake(self) -> None:
        """New alert rows were committed: read them now rather than at the next poll."""
        self._more = True

    def tables_committed(self, tables: Collection[str]) -> None:
        """For :attr:`gateway.store.Store.commit_observers`: wake if alerts were written."""
        if "alerts" in tables:
            self.wake()

    # ---------------------------------------------------------------- publishing

    @property
    def in_flight(self) -> int:
        """Transitions published and not yet PUBACKed."""
        return len(self._in_flight)

    async def next_message(self) -> AlertMessage | None:
        """The next transition to publish, or ``None`` when the window is full, nothing is
        waiting, or the feed holds back after a refusal. Expired rows are passed over here.

        The transition stays next until :meth:`sent` is called for it.
        """
        if not self._loaded or len(self._in_flight) >= self.window:
            return None
        if time.monotonic() < self._hold_until:
            return None
        while True:
            if not self._page and not await self._read_page():
                return None
            row = self._page[0]
            seq, ts_us, line = int(row[0]), int(row[1]), row[5]
            age_s = (self.store.clock.wall_us() - ts_us) // 1_000_000
            left = min(self.expiry_s, self.expiry_s - age_s)
            if left < 1:
                self._page.popleft()
                self.stats.expired += 1
                self._pass_over(seq)
                continue
            try:
                payload = alert_payload(row, site=self.site, gateway=self.gateway)
            except ValueError as exc:  # the table's CHECKs make this unlikely; never loop on it
                self._page.popleft()
                self.stats.refused += 1
                log.error("alert feed: transition %d not encodable, passed over: %s", seq, exc)
                self._pass_over(seq)
                continue
            topic = (
                alerts_topic(self.site, self.gateway, str(line))
                if line is not None
                else gateway_alerts_topic(self.site, self.gateway)
            )
            return AlertMessage(seq, topic, payload, int(left))

    def sent(self, seq: int) -> None:
        """The transition :meth:`next_message` gave was published (paho took it)."""
        if not self._page or int(self._page[0][0]) != seq:
            raise ValueError(f"transition {seq} is not the next one")
        self._page.popleft()
        self._order.append(seq)
        self._in_flight.add(seq)
        if seq <= self._highest_sent:
            self.stats.republished += 1
        self._highest_sent = max(self._highest_sent, seq)

    def not_accepted(self) -> None:
        """paho refused the publish (its queue is full, or the connection is going): the
        transition stays next, and is tried again after a delay, never in a hot loop."""
        self.stats.not_accepted += 1
        self._hold_until = time.monotonic() + self.backoff.next_delay()

    def confirmed(self, seq: int, epoch: int) -> None:
        """The broker PUBACKed a transition (reason code below 0x80)."""
        if epoch != self.epoch or seq not in self._in_flight:
            return
        self._in_flight.discard(seq)
        self.stats.published += 1
        self.backoff.reset()
        self._settle(seq)

    def refused(self, seq: int, epoch: int, code: int, reason: str) -> None:
        """The broker refused a transition (PUBACK ``code`` >= 0x80). Final, except quota
        exceeded."""
        if epoch != self.epoch or seq not in self._in_flight:
            return
        if code == QUOTA_EXCEEDED:
            # Transitions after it may have been taken already; starting again from the
            # cursor keeps the topic in order (they are repeated, as after a reconnect).
            delay = self.backoff.next_delay()
            log.warning("alert feed: broker quota exceeded at %d, again in %.1f s", seq, delay)
            self.rewind()
            self._hold_until = time.monotonic() + delay
            return
        self._in_flight.discard(seq)
        self.stats.refused += 1
        log.error(
            "alert feed: broker refused transition %d (%#04x %s); passed over", seq, code, reason
        )
        self._settle(seq)

    def next_wakeup(self) -> float:
        """Monotonic time the feed next needs the uplink's attention."""
        now = time.monotonic()
        if self._hold_until > now:
            return self._hold_until
        candidates = []
        if len(self._in_flight) < self.window:
            candidates.append(now if self._page or self._more else self._next_poll)
        if self.cursor != self._saved:
            candidates.append(self._next_save)
        return min(candidates, default=now + self.poll_interval_s)

    # ---------------------------------------------------------------- the cursor

    async def save(self, *, force: bool = False) -> None:
        """Write the cursor to the store if it moved (and, unless ``force``, if it is time).

        A failed write (a full disk) is logged and tried again later: the cursor in memory
        is the one in use; the stored one only decides what a restart repeats.
        """
        if self.cursor == self._saved or not self._loaded:
            return
        now = time.monotonic()
        if not force and now < self._next_save:
            return
        self._next_save = now + self.save_interval_s
        cursor = self.cursor
        try:
            await self.store.commit_with_meta([], {CURSOR_KEY: str(cursor)})
        except StoreError as exc:
            log.warning("alert feed: cursor %d not saved (tried again later): %s", cursor, exc)
            return
        self._saved = cursor
        self.stats.saves += 1

    # ---------------------------------------------------------------- internals

    async def _read_page(self) -> bool:
        """Read the next page if one may be waiting; whether any row came."""
        if not self._more and time.monotonic() < self._next_poll:
            return False
        # Cleared before the read: a commit noticed while it runs sets it again.
        self._more = False
        rows = await self.store.fetchall(_PAGE_SQL, (self._read_to, self.page_rows))
        self.stats.pages += 1
        if len(rows) == self.page_rows:
            self._more = True  # a full page: more may follow right away
        self._next_poll = time.monotonic() + self.poll_interval_s
        if not rows:
            return False
        self._page.extend(rows)
        self._read_to = int(rows[-1][0])
        return True

    def _pass_over(self, seq: int) -> None:
        self._order.append(seq)
        self._settle(seq)

    def _settle(self, seq: int) -> None:
        self._settled.add(seq)
        while self._order and self._order[0] in self._settled:
            self.cursor = self._order.popleft()
            self._settled.discard(self.cursor)
