"""When a device's link or the gateway itself was down, told by the records alone.

Label numbers printed while the scanner could not be read, or while the gateway was not
running, are never scanned: the label rules (:mod:`rules.labels`) name such an outage as the
likely cause of a gap that spans it. The outages are worked out from the stored record
stream only (each record's ``ts_us``, never a clock), so feeding the same records again,
in the same order, gives the same outages (the gateway rebuilds its rules' state that way
at start):

* a device outage runs from the device's ``link_down`` event to its next ``link_up``
  (or to its next label read, which proves the link was up again);
* a gateway outage runs from the last record seen before a ``gateway_started`` event to
  that event. When that last record is the gateway's own ``gateway_stopped`` event the stop
  was planned; otherwise the gateway went away without a word (a crash, a power cut).

Only the kinds of record that the gateway stores and replays count as "seen": pack events,
temperature readings, label scans and device events.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from gateway.core.records import DeviceEvent, LabelScan, PackEvent, Record, TemperatureReading

__all__ = [
    "DEVICE_OFFLINE",
    "GATEWAY",
    "GATEWAY_DOWN",
    "Outage",
    "OutageLog",
]

GATEWAY: Final = "gateway"
"""The ``device`` of the gateway's own events (``gateway_started``, ``gateway_stopped``)."""
DEVICE_OFFLINE: Final = "device_offline"
GATEWAY_DOWN: Final = "gateway_down"

_SEEN = (PackEvent, TemperatureReading, LabelScan, DeviceEvent)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Outage:
    """A span during which a device could not be read, or the gateway was not running."""

    kind: str
    """:data:`DEVICE_OFFLINE` or :data:`GATEWAY_DOWN`."""
    device: str
    """The device whose link was down (:data:`GATEWAY` for the gateway)."""
    start_us: int
    end_us: int | None
    """``None`` while the outage lasts."""
    planned: bool = False
    """A gateway outage that began with a ``gateway_stopped`` event (a planned stop)."""
    reason: str = ""
    """What the device's ``link_down`` event said."""

    def overlap_us(self, start_us: int, end_us: int) -> int | None:
        """How long this outage overlaps ``[start_us, end_us]``; ``None`` if it does not.

        An outage wholly inside the span overlaps it even when it lasted no time at all.
        """
        end = end_us if self.end_us is None else self.end_us
        if start_us <= self.start_us and end <= end_us:
            return max(0, end - self.start_us)
        overlap = min(end, end_us) - max(self.start_us, start_us)
        return overlap if overlap > 0 else None

    def describe(self, noun: str = "device") -> str:
        """E.g. ``the gateway was down 10:02:03–10:02:09 UTC (restart)``, or for a device
        (called ``noun``) ``scanner scan1 was offline 10:02:03–10:02:09 UTC``."""
        when = _span(self.start_us, self.end_us)
        if self.kind == GATEWAY_DOWN:
            how = "planned stop" if self.planned else "restart"
            return f"the gateway was down {when} ({how})"
        return f"{noun} {self.device} was offline {when}"

    def as_detail(self) -> dict[str, object]:
        """The outage for a finding's detail (JSON-ready)."""
        return {
            "kind": self.kind,
            "device": self.device,
            "start_us": self.start_us,
            "end_us": self.end_us,
            "planned": self.planned,
            "reason": self.reason,
        }


class OutageLog:
    """The device and gateway outages of the records seen so far.

    Feed it every record the rules engine evaluates, in order (:meth:`observe`); ask it
    which outages overlap a span (:meth:`between`). It keeps the last ``keep`` outages of
    each device and of the gateway.
    """

    def __init__(self, keep: int = 64) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._keep = keep
        self._open: dict[str, Outage] = {}
        self._closed: dict[str, deque[Outage]] = {}
        self._last_us: int | None = None
        self._last_was_stop = False

    @property
    def last_seen_us(self) -> int | None:
        """The time of the last record seen (``None`` before the first)."""
        return self._last_us

    def observe(self, record: Record) -> None:
        """Take one record (other kinds than those the gateway replays are ignored)."""
        if not isinstance(record, _SEEN):
            return
        ts = record.ts_us
        if isinstance(record, DeviceEvent):
            self._device_event(record)
        elif isinstance(record, LabelScan) and record.device in self._open:
            self._close(record.device, ts)  # a read: the link is up again
        self._last_us = ts
        self._last_was_stop = (
            isinstance(record, DeviceEvent)
            and record.device == GATEWAY
            and record.kind == "gateway_stopped"
        )

    @property
    def any_open(self) -> bool:
        """Whether some device outage has not ended yet (asked for every record)."""
        return bool(self._open)

    def open_outages(self) -> tuple[Outage, ...]:
        """The device outages that have not ended yet (link down, no sign of it since)."""
        return tuple(self._open.values())

    def open_outage(self, device: str) -> Outage | None:
        """The device's outage that has not ended yet, if there is one."""
        return self._open.get(device)

    def ended(self, device: str) -> tuple[Outage, ...]:
        """The device's last outages that have ended, oldest first."""
        return tuple(self._closed.get(device, ()))

    def between(self, device: str, start_us: int, end_us: int) -> list[Outage]:
        """The outages of ``device`` and of the gateway that overlap ``[start_us, end_us]``,
        the longest overlap first (then the earliest)."""
        found: list[tuple[int, int, Outage]] = []
        for source in (device, GATEWAY):
            candidates = list(self._closed.get(source, ()))
            if (current := self._open.get(source)) is not None:
                candidates.append(current)
            for outage in candidates:
                overlap = outage.overlap_us(start_us, end_us)
                if overlap is not None:
                    found.append((-overlap, outage.start_us, outage))
        found.sort(key=lambda item: (item[0], item[1]))
        return [outage for _, _, outage in found]

    def _device_event(self, event: DeviceEvent) -> None:
        if event.device == GATEWAY:
            if event.kind == "gateway_started" and self._last_us is not None:
                start = min(self._last_us, event.ts_us)  # a clock set back: no negative span
                self._add(
                    Outage(
                        kind=GATEWAY_DOWN,
                        device=GATEWAY,
                        start_us=start,
                        end_us=event.ts_us,
                        planned=self._last_was_stop,
                    )
                )
            return
        if event.kind == "link_down" and event.device not in self._open:
            self._open[event.device] = Outage(
                kind=DEVICE_OFFLINE,
                device=event.device,
                start_us=event.ts_us,
                end_us=None,
                reason=str(event.detail.get("error", "")),
            )
        elif event.kind == "link_up":
            self._close(event.device, event.ts_us)

    def _close(self, device: str, ts_us: int) -> None:
        outage = self._open.pop(device, None)
        if outage is not None:
            self._add(replace(outage, end_us=max(ts_us, outage.start_us)))

    def _add(self, outage: Outage) -> None:
        kept = self._closed.get(outage.device)
        if kept is None:
            kept = self._closed[outage.device] = deque(maxlen=self._keep)
        kept.append(outage)


def _clock(ts_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ts_us)


def _span(start_us: int, end_us: int | None) -> str:
    """``10:02:03–10:02:09 UTC``; with dates when the span is not within one day."""
    start = _clock(start_us)
    if end_us is None:
        return f"since {start:%H:%M:%S} UTC"
    end = _clock(end_us)
    if start.date() == end.date():
        return f"{start:%H:%M:%S}–{end:%H:%M:%S} UTC"
    return f"{start:%Y-%m-%d %H:%M:%S}–{end:%Y-%m-%d %H:%M:%S} UTC"
