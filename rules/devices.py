"""Devices that stay down: the ``device_down`` alert, worked out from the records alone.

A device whose link has been down (its adapter's ``link_down`` event, with no ``link_up``
or label read since: :class:`~rules.outages.OutageLog`) for longer than its configured
time raises ``device_down``; the alert clears once the link has stayed up for
:data:`SETTLE_S`. A shorter blip (a reconnect) raises nothing: an on-delay, as for the HACCP
limits; and a link that comes up and drops again at once (a converter that accepts the
connection and closes it, a peer resetting every session) is still down: outages less than
:data:`SETTLE_S` apart are one (an off-delay; docs/alarms.md §4).

Severity by what the device is (docs/alarms.md §4):

* ``checkweigher``: MAJOR — the packs go unweighed in the record: no ℮ batch statistics,
  no packer's record for them (SI 2006/659 reg 9);
* ``temperature_probe``: MAJOR — a critical control point is not monitored; the HACCP
  rule's own ``haccp_sensor_fault`` (no data) follows after the probe's ``no_data_s``;
* ``label_scanner``: WARNING — labels are not checked meanwhile, and the numbers printed in
  the outage come back as a label gap naming it.

Deterministic and replayable: the raise is stamped at the outage's start plus the device's
time and the clear at the link's return plus :data:`SETTLE_S`, whether they are noticed by a
tick (live) or by a later record (a replay, which has no ticks), so the same records give
the same alerts, with the same ids.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from gateway.core.records import DeviceEvent, Record
from rules import ids
from rules.model import Finding, Severity
from rules.outages import Outage, OutageLog

__all__ = [
    "DEFAULT_DOWN_AFTER_S",
    "RULE_DEVICE_DOWN",
    "SETTLE_S",
    "SEVERITY_BY_ROLE",
    "DeviceWatch",
    "WatchedDevice",
]

RULE_DEVICE_DOWN: Final = ids.DEVICE_DOWN
DEFAULT_DOWN_AFTER_S: Final = 30.0
"""Longer than a reconnect with backoff normally takes, short enough to act in a shift."""
SETTLE_S: Final = 5.0
"""A device is back once its link has stayed up this long."""
SEVERITY_BY_ROLE: Final = {
    "checkweigher": Severity.MAJOR,
    "temperature_probe": Severity.MAJOR,
    "label_scanner": Severity.WARNING,
}
_NOUN: Final = {
    "checkweigher": "checkweigher",
    "temperature_probe": "temperature probe",
    "label_scanner": "label scanner",
}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WatchedDevice:
    """A configured device: where it is, what it is, how long it may be down."""

    device: str
    line: str
    role: str
    down_after_s: float = DEFAULT_DOWN_AFTER_S
    """0: never raise ``device_down`` for it."""

    @property
    def severity(self) -> Severity:
        """The alert's severity for this device's role (WARNING for an unknown role)."""
        return SEVERITY_BY_ROLE.get(self.role, Severity.WARNING)


def _clock(ts_us: int) -> str:
    return f"{_EPOCH + timedelta(microseconds=ts_us):%H:%M:%S} UTC"


class DeviceWatch:
    """``device_down`` findings for the configured devices, from an :class:`OutageLog`.

    Feed :meth:`observe` every record right after the outage log has taken it, and call
    :meth:`tick` as time passes. Devices not configured are not watched.
    """

    def __init__(
        self,
        devices: Iterable[WatchedDevice],
        outages: OutageLog,
        *,
        settle_s: float = SETTLE_S,
    ) -> None:
        self.devices = {d.device: d for d in devices}
        self.outages = outages
        self.settle_us = round(settle_s * 1_000_000)
        self._watching: dict[str, int] = {}
        """Devices down, or back for less than the settle time: since when (the start of the
        first of the outages less than the settle time apart)."""
        self._raised: set[str] = set()
        """Devices whose current outage has raised its alert."""

    def observe(self, record: Record) -> list[Finding]:
        """The findings a record brings: judged at the record's time."""
        findings = self._judge(record.ts_us)
        if (
            isinstance(record, DeviceEvent)
            and record.kind == "link_up"
            and record.device in self.devices
            and record.device not in self._watching
            and not any(f.subject == record.device for f in findings)
        ):
            # Back without an outage this watch knows of (it began before the records it
            # was given): clears an alert restored from the store, if there is one.
            findings.append(self._clear(self.devices[record.device], None, record.ts_us))
        return findings

    def tick(self, ts_us: int) -> list[Finding]:
        """What has become due by ``ts_us``: outages long enough, devices settled back."""
        return self._judge(ts_us)

    @property
    def down(self) -> tuple[str, ...]:
        """The watched devices whose alert is raised, in order."""
        return tuple(sorted(self._raised))

    def _judge(self, now_us: int) -> list[Finding]:
        if not self._watching and not self.outages.any_open:
            return []  # the usual case, every record: no device down or settling back
        # Every link_down is judged as it is taken (evaluate), so no outage goes unseen.
        for outage in self.outages.open_outages():
            if outage.device in self.devices:
                self._watching.setdefault(outage.device, outage.start_us)
        findings: list[Finding] = []
        for name, start in sorted(self._watching.items()):
            device = self.devices[name]
            newest = self.outages.open_outage(name) or self.outages.ended(name)[-1]
            end = newest.end_us
            limit_us = round(device.down_after_s * 1_000_000)
            due_us = start + limit_us
            settles_us = None if end is None else end + self.settle_us
            if (
                limit_us
                and name not in self._raised
                and now_us >= due_us
                and (settles_us is None or due_us < settles_us)
            ):
                # Still down (or not settled back) when its time was up: raised then.
                self._raised.add(name)
                findings.append(self._raise(device, newest, start, due_us))
            if end is not None and now_us >= end + self.settle_us:
                del self._watching[name]
                if name in self._raised:
                    self._raised.discard(name)
                    findings.append(self._clear(device, (start, end), end + self.settle_us))
        return findings

    def _raise(self, device: WatchedDevice, newest: Outage, start_us: int, ts_us: int) -> Finding:
        noun = _NOUN.get(device.role, "device")
        why = f": {newest.reason}" if newest.reason else ""
        return Finding(
            rule=RULE_DEVICE_DOWN,
            subject=device.device,
            active=True,
            severity=device.severity,
            message=(
                f"{noun} {device.device} down since {_clock(start_us)} "
                f"({device.down_after_s:g} s or more){why}"
            ),
            ts_us=ts_us,
            line=device.line,
            detail={
                "device": device.device,
                "role": device.role,
                "since_us": start_us,
                "down_after_s": device.down_after_s,
                "reason": newest.reason,
            },
        )

    def _clear(self, device: WatchedDevice, span: tuple[int, int] | None, ts_us: int) -> Finding:
        noun = _NOUN.get(device.role, "device")
        detail: dict[str, object] = {"device": device.device, "role": device.role}
        message = f"{noun} {device.device} is back"
        if span is not None:
            since_us, until_us = span
            down_s = (until_us - since_us) / 1_000_000
            since = _clock(since_us).removesuffix(" UTC")
            message += f" after {down_s:.0f} s down ({since}–{_clock(until_us)})"
            detail.update(since_us=since_us, until_us=until_us, down_s=down_s)
        return Finding(
            rule=RULE_DEVICE_DOWN,
            subject=device.device,
            active=False,
            severity=device.severity,
            message=message,
            ts_us=ts_us,
            line=device.line,
            detail=detail,
        )
