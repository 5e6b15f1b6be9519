"""Andon boards over MQTT: each line's state (retained) and its alert transitions (expiring).

* :func:`andon_payload` and :func:`alert_payload` are pure: values in, JSON bytes out.
* :class:`AndonPublisher` holds the *latest* state per line and the alert transitions not
  yet published; :class:`sync.mqtt_uplink.MqttUplink` publishes them. The state is retained
  and QoS 1 on :func:`sync.protocol.andon_topic`, published when it changes and again on
  every (re)connect, so a board never keeps a stale red nor misses a red raised during an
  outage (latest state wins; intermediate states of an outage are not replayed).
* Alert transitions go to :func:`sync.protocol.alerts_topic`, QoS 1, not retained, with an
  MQTT 5 Message Expiry Interval (docs/reference/reliability.md §3.4): the interval left is counted
  from when the transition happened, so one raised before a long outage is dropped (and counted)
  instead of being shown as new. The queue is bounded; the oldest is dropped when full.
  The durable record of an alert is its :class:`gateway.records.AlertRecord` in the store,
  which the outbox syncs to the warehouse; this is only the board's live feed.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import Clock, SystemClock
from sync.protocol import VERSION, alerts_topic, andon_topic

DEFAULT_ALERT_EXPIRY_S = 3600
"""Alert transitions older than this are not shown on boards (MQTT 5 message expiry)."""


def andon_payload(
    line: str,
    state: str,
    active_alerts_summary: Sequence[Mapping[str, Any]],
    updated_us: int,
) -> bytes:
    """The retained andon state of a line as compact JSON with sorted keys."""
    body = {
        "v": VERSION,
        "line": line,
        "state": state,
        "alerts": [dict(a) for a in active_alerts_summary],
        "updated_us": updated_us,
    }
    return json.dumps(body, allow_nan=False, sort_keys=True, separators=(",", ":")).encode()


def alert_payload(line: str, transition: Mapping[str, Any], ts_us: int) -> bytes:
    """One alert transition (raised, cleared, ...) of a line as compact JSON."""
    body = {**transition, "v": VERSION, "line": line, "ts_us": ts_us}
    return json.dumps(body, allow_nan=False, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class AndonMessage:
    """One MQTT message for the uplink to publish."""

    topic: str
    payload: bytes
    retain: bool
    expiry_s: int | None = None
    """MQTT 5 Message Expiry Interval, seconds; ``None`` for none."""


@dataclass(slots=True)
class _LineState:
    state: str
    summary: tuple[Mapping[str, Any], ...]
    updated_us: int
    dirty: bool = True


@dataclass(slots=True)
class _PendingAlert:
    topic: str
    payload: bytes
    created: float
    """Monotonic seconds when the transition happened."""


@dataclass
class AndonStats:
    """Counters for metrics."""

    states_changed: int = 0
    alerts_queued: int = 0
    alerts_expired: int = 0
    """Transitions not published because they were older than the expiry."""
    alerts_dropped: int = 0
    """Transitions dropped because the queue was full."""


@dataclass
class AndonPublisher:
    """Latest andon state per line and queued alert transitions, for the uplink to publish.

    Call from the event loop's thread. ``on_change`` (set by the uplink) is called after
    every change that needs publishing.
    """

    site: str
    gateway: str
    """The publishing gateway's id: its level in the topics (the broker's ACL lets a gateway
    write only under its own), so two gateways with the same line id never collide."""
    clock: Clock = field(default_factory=SystemClock)
    alert_expiry_s: int = DEFAULT_ALERT_EXPIRY_S
    max_pending_alerts: int = 200
    on_change: Callable[[], None] | None = None
    stats: AndonStats = field(default_factory=AndonStats)
    _lines: dict[str, _LineState] = field(default_factory=dict)
    _alerts: deque[_PendingAlert] = field(default_factory=deque)

    def update(self, line: str, state: str, summary: Sequence[Mapping[str, Any]] = ()) -> bool:
        """Set a line's state; ``True`` if it changed (and will be published)."""
        frozen = tuple(dict(item) for item in summary)
        current = self._lines.get(line)
        if current is not None and current.state == state and current.summary == frozen:
            return False
        andon_payload(line, state, frozen, 0)  # refuse what cannot be published, here
        self._lines[line] = _LineState(state, frozen, self.clock.wall_us())
        self.stats.states_changed += 1
        self._notify()
        return True

    def alert(self, line: str, transition: Mapping[str, Any]) -> None:
        """Queue an alert transition of a line for the alerts topic."""
        payload = alert_payload(line, transition, self.clock.wall_us())
        if len(self._alerts) >= self.max_pending_alerts:
            self._alerts.popleft()
            self.stats.alerts_dropped += 1
        topic = alerts_topic(self.site, self.gateway, line)
        self._alerts.append(_PendingAlert(topic, payload, self._now()))
        self.stats.alerts_queued += 1
        self._notify()

    def state_of(self, line: str) -> str | None:
        """The line's current state, if one was set."""
        current = self._lines.get(line)
        return current.state if current else None

    # ---------------------------------------------------------------- for the uplink

    def pending(self) -> bool:
        """Whether anything waits to be published."""
        return bool(self._alerts) or any(s.dirty for s in self._lines.values())

    def retained_messages(self, *, everything: bool) -> list[AndonMessage]:
        """The states to publish (all of them after a connect, else the changed ones).

        Marks them published: the uplink republishes everything on its next connect, so a
        state whose publish was lost with the connection is not lost.
        """
        messages = []
        for line, current in self._lines.items():
            if everything or current.dirty:
                payload = andon_payload(line, current.state, current.summary, current.updated_us)
                topic = andon_topic(self.site, self.gateway, line)
                messages.append(AndonMessage(topic, payload, retain=True))
                current.dirty = False
        return messages

    def alert_messages(self) -> list[AndonMessage]:
        """Queued alert transitions with the expiry they have left; expired ones dropped."""
        now = self._now()
        messages = []
        while self._alerts:
            pending = self._alerts.popleft()
            left = math.floor(self.alert_expiry_s - (now - pending.created))
            if left < 1:
                self.stats.alerts_expired += 1
                continue
            messages.append(AndonMessage(pending.topic, pending.payload, False, left))
        return messages

    def _now(self) -> float:
        return self.clock.monotonic()

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()
