"""Device records shed when the store cannot keep up: counted, alerted, kept as evidence.

Memory is bounded by ``store.max_pending_rows``. Intake that can wait is held back before
that (:meth:`gateway.store.Store.wait_for_space`); what cannot wait (an OPC UA subscription
delivers what the server publishes) and arrives while that many records are pending is shed
by :class:`gateway.pipeline.Pipeline` before the rules see it, and accounted for here:

* per device and kind (the record's table) since start, for metrics and the live status;
* per device as one ``records_shed`` device event with the count, the first and last shed
  record's time and the count per kind, stored when the pressure ends (the pending records
  are back under the backpressure level) or, while it lasts, once the device's episode
  spans :data:`SUMMARY_WINDOW_US` of record time, so a long episode is not one number held
  in memory only. Every device record is then either stored or counted in such an event;
  ``records_shed`` events are never evicted for space (:mod:`gateway.store.eviction`);
* one MAJOR ``intake.shed`` alert, raised at the first shed and cleared with the last
  events when the pressure ends (a stale one is cleared by the next start, as any alert that
  is not latching: :meth:`gateway.rules_engine.RulesEngine.restore`).

Not shed, whatever the pressure: the device events that carry pack counter continuity and
missed-pack evidence, and link up/down events (rare by construction: one per connection or
outage, paced by the reconnect backoff); and everything queued other than through
:meth:`Pipeline.submit` (alerts, including those the rules make of a stored record, the
gateway's own events, operator commands).

Pure bookkeeping: times come from the records and from the caller (``now_us``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gateway.core.records import (
    AlertRecord,
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    RejectedInput,
    Severity,
    TemperatureReading,
)
from gateway.store.eviction import PROTECTED_EVENT_KINDS
from gateway.store.schema import RECORD_TABLES

__all__ = [
    "ALERT_ID",
    "ALERT_RULE",
    "NEVER_SHED_EVENT_KINDS",
    "SHED_EVENT_KIND",
    "SUMMARY_WINDOW_US",
    "ShedLedger",
    "device_of",
    "sheddable",
]

SHED_EVENT_KIND = "records_shed"
ALERT_ID = "intake.shed"
ALERT_RULE = "intake_shed"

SUMMARY_WINDOW_US = 60_000_000
"""Longest span of record time one ``records_shed`` event covers while shedding goes on."""

NEVER_SHED_EVENT_KINDS = frozenset({*PROTECTED_EVENT_KINDS, "link_up", "link_down"})
"""Device events queued whatever the pressure (see the module docstring)."""

if SHED_EVENT_KIND not in PROTECTED_EVENT_KINDS:  # pragma: no cover
    raise RuntimeError("records_shed events are evidence: eviction must keep them")


def device_of(record: Record) -> str | None:
    """The device a record came from, or None for records that are not a device's."""
    if isinstance(record, PackEvent | TemperatureReading | LabelScan | DeviceEvent):
        return record.device
    if isinstance(record, RejectedInput):
        return record.source
    return None


def sheddable(record: Record) -> bool:
    """Whether ``record`` may be shed under pressure (a device's reading or event)."""
    if isinstance(record, DeviceEvent):
        return record.kind not in NEVER_SHED_EVENT_KINDS
    return isinstance(record, PackEvent | TemperatureReading | LabelScan | RejectedInput)


def _kind(record: Record) -> str:
    spec = RECORD_TABLES.get(type(record))
    return spec.table if spec is not None else type(record).__name__


@dataclass(slots=True)
class _Episode:
    """Records of one device shed since its last ``records_shed`` event."""

    line: str | None
    first_us: int
    last_us: int
    count: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


class ShedLedger:
    """Counts shed device records and says what to store about them.

    Attributes:
        totals: Records shed since start per (device, kind).
        raised: True while the ``intake.shed`` alert is raised.
    """

    def __init__(self, window_us: int = SUMMARY_WINDOW_US) -> None:
        self.window_us = window_us
        self.totals: Counter[tuple[str, str]] = Counter()
        self.raised = False
        self._episodes: dict[str, _Episode] = {}
        self._this_alert: Counter[str] = Counter()

    @property
    def total(self) -> int:
        """Records shed since start."""
        return sum(self.totals.values())

    def by_device(self) -> dict[str, dict[str, int]]:
        """Records shed since start, per device and kind."""
        out: dict[str, dict[str, int]] = {}
        for (device, kind), count in sorted(self.totals.items()):
            out.setdefault(device, {})[kind] = count
        return out

    def shed(self, record: Record, now_us: int, pending: int, limit: int) -> list[Record]:
        """Count ``record`` as shed; returns what to store now: the alert at the first shed
        of an episode, a device's ``records_shed`` event when its window is full."""
        device = device_of(record) or "unknown"
        kind = _kind(record)
        self.totals[device, kind] += 1
        self._this_alert[device] += 1
        out: list[Record] = []
        if not self.raised:
            self.raised = True
            out.append(
                self._alert(
                    "raised",
                    now_us,
                    f"device records are being shed: {pending} records wait for the store "
                    f"(limit store.max_pending_rows = {limit}); the store is not keeping up "
                    "with the devices. Each device's shed records are counted in a "
                    "records_shed event",
                    {"pending": pending, "max_pending_rows": limit, "first_device": device},
                )
            )
        episode = self._episodes.get(device)
        if episode is not None and record.ts_us - episode.first_us >= self.window_us:
            out.append(self._summary(device, episode, now_us))
            episode = None
        if episode is None:
            line = getattr(record, "line", None)
            episode = _Episode(line if isinstance(line, str) else None, record.ts_us, record.ts_us)
            self._episodes[device] = episode
        episode.count += 1
        episode.kinds[kind] += 1
        episode.first_us = min(episode.first_us, record.ts_us)
        episode.last_us = max(episode.last_us, record.ts_us)
        return out

    def relieved(self, now_us: int, pending: int) -> list[Record]:
        """The pressure is over: each device's open ``records_shed`` event, then the alert
        cleared (nothing when nothing was shed)."""
        out: list[Record] = [
            self._summary(device, episode, now_us)
            for device, episode in sorted(self._episodes.items())
        ]
        self._episodes.clear()
        if self.raised:
            self.raised = False
            shed = dict(sorted(self._this_alert.items()))
            self._this_alert.clear()
            counts = ", ".join(f"{device} {count}" for device, count in shed.items())
            out.append(
                self._alert(
                    "cleared",
                    now_us,
                    f"intake keeps up again ({pending} records pending); shed meanwhile: {counts}",
                    {"pending": pending, "shed": shed},
                )
            )
        return out

    @staticmethod
    def _summary(device: str, episode: _Episode, now_us: int) -> DeviceEvent:
        return DeviceEvent(
            ts_us=now_us,
            device=device,
            line=episode.line,
            kind=SHED_EVENT_KIND,
            detail={
                "count": episode.count,
                "first_us": episode.first_us,
                "last_us": episode.last_us,
                "kinds": dict(sorted(episode.kinds.items())),
            },
        )

    @staticmethod
    def _alert(state: str, now_us: int, message: str, detail: dict[str, object]) -> AlertRecord:
        return AlertRecord(
            ts_us=now_us,
            alert_id=ALERT_ID,
            rule=ALERT_RULE,
            subject="intake",
            severity=Severity.MAJOR,
            state=state,
            message=message,
            detail=detail,
        )
