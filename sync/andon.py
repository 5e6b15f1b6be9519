"""Andon boards over MQTT: each line's state, retained.

* :func:`andon_payload` is pure: values in, JSON bytes out.
* :class:`AndonPublisher` holds the *latest* state per line; :class:`sync.mqtt_uplink.MqttUplink`
  publishes it, retained and QoS 1 on :func:`sync.protocol.andon_topic`, when it changes and
  again on every (re)connect as soon as the broker's CONNACK arrives, so a board never keeps a
  stale red nor misses a red raised during an outage (latest state wins; intermediate states
  of an outage are not replayed).
* Alert transitions are not kept here: :mod:`sync.alert_feed` publishes them from the store,
  in order and at least once (an in-memory queue lost them under pressure, issue 17).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.core.clock import Clock, SystemClock
from sync.protocol import VERSION, andon_topic


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


@dataclass(frozen=True, slots=True)
class AndonMessage:
    """One MQTT message for the uplink to publish."""

    topic: str
    payload: bytes
    retain: bool


@dataclass(slots=True)
class _LineState:
    state: str
    summary: tuple[Mapping[str, Any], ...]
    updated_us: int
    dirty: bool = True


@dataclass
class AndonStats:
    """Counters for metrics."""

    states_changed: int = 0


@dataclass
class AndonPublisher:
    """Latest andon state per line, for the uplink to publish.

    Call from the event loop's thread. ``on_change`` (set by the uplink) is called after
    every change that needs publishing.
    """

    site: str
    gateway: str
    """The publishing gateway's id: its level in the topics (the broker's ACL lets a gateway
    write only under its own), so two gateways with the same line id never collide."""
    clock: Clock = field(default_factory=SystemClock)
    on_change: Callable[[], None] | None = None
    stats: AndonStats = field(default_factory=AndonStats)
    _lines: dict[str, _LineState] = field(default_factory=dict)

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

    # ---------------------------------------------------------------- for the uplink

    def pending(self) -> bool:
        """Whether anything waits to be published."""
        return any(s.dirty for s in self._lines.values())

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

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()
