"""Devices that stay down: the ``device_down`` alert, worked out from the records alone.

A device whose link has been down (its adapter's ``link_down`` event, with no ``link_up``
or label read since: :class:`~rules.outages.OutageLog`) for longer than its configured
time raises ``device_down``; the alert clears when the link is back. A shorter blip (a
reconnect) raises nothing: it is an on-delay, as for the HACCP limits (docs/alarms.md §4).

Severity by what the device is (docs/alarms.md §4):

* ``checkweigher``: MAJOR — the packs go unweighed in the record: no ℮ batch statistics,
  no packer's record for them (SI 2006/659 reg 9);
* ``temperature_probe``: MAJOR — a critical control point is not monitored; the HACCP
  rule's own ``haccp_sensor_fault`` (no data) follows after the probe's ``no_data_s``;
* ``label_scanner``: WARNING — labels are not checked meanwhile, and the numbers printed in
  the outage come back as a label gap naming it.

Deterministic and replayable: the raise is stamped at the outage's start plus the device's
time, whether it is noticed by a tick (live) or by the first later record (a replay), and an
outage that ended before anything noticed it (a replay with no records in between) is
raised and cleared at its end. So the same records give the same alerts, with the same ids.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from gateway.records import DeviceEvent, LabelScan, Record
from rules.model import Finding, Severity
from rules.outages import Outage, OutageLog

__all__ = [
    "DEFAULT_DOWN_AFTER_S",
    "RULE_DEVICE_DOWN",
    "SEVERITY_BY_ROLE",
    "DeviceWatch",
    "WatchedDevice",
]

RULE_DEVICE_DOWN: Final = "device_down"
DEFAULT_DOWN_AFTER_S: Final = 30.0
"""Longer than a reconnect with backoff normally takes, short enough to act in a shift."""
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

    def __init__(self, devices: Iterable[WatchedDevice], outages: OutageLog) -> None:
        self.devices = {d.device: d for d in devices}
        self.outages = outages
        self._tracked: dict[str, Outage] = {}
        """The open outage of each watched device, as last seen."""
        self._raised: set[str] = set()
        """Devices whose current outage has raised its alert."""

    def observe(self, record: Record) -> list[Finding]:
        """The findings a record brings: a device back (clear), or an outage now long
        enough judged at the record's time."""
        findings: list[Finding] = []
        if self._tracked and isinstance(record, DeviceEvent | LabelScan):
            findings += self._ended(record.ts_us)  # a link_up or a read ends an outage
        if (
            isinstance(record, DeviceEvent)
            and record.kind == "link_up"
            and record.device in self.devices
            and not any(f.subject == record.device for f in findings)
        ):
            # Back without an outage this watch knows of (it began before the records it
            # was given): clears an alert restored from the store, if there is one.
            findings.append(self._clear(self.devices[record.device], None, record.ts_us))
        return findings + self._due(record.ts_us)

    def tick(self, ts_us: int) -> list[Finding]:
        """Outages that have become long enough by ``ts_us``."""
        return self._due(ts_us)

    @property
    def down(self) -> tuple[str, ...]:
        """The watched devices whose alert is raised, in order."""
        return tuple(sorted(self._raised))

    def _ended(self, ts_us: int) -> list[Finding]:
        still = {o.device for o in self.outages.open_outages()}
        findings: list[Finding] = []
        for name in [n for n in self._tracked if n not in still]:
            outage = self._tracked.pop(name)
            device = self.devices[name]
            limit_us = round(device.down_after_s * 1_000_000)
            if name not in self._raised and limit_us and ts_us - outage.start_us >= limit_us:
                # Ended before anything looked (a replay): raised and cleared, as live.
                findings.append(self._raise(device, outage))
                self._raised.add(name)
            if name in self._raised:
                self._raised.discard(name)
                findings.append(self._clear(device, outage, ts_us))
        return findings

    def _due(self, ts_us: int) -> list[Finding]:
        findings: list[Finding] = []
        for outage in self.outages.open_outages():
            device = self.devices.get(outage.device)
            if device is None:
                continue
            self._tracked[device.device] = outage
            limit_us = round(device.down_after_s * 1_000_000)
            if (
                limit_us
                and device.device not in self._raised
                and ts_us - outage.start_us >= limit_us
            ):
                self._raised.add(device.device)
                findings.append(self._raise(device, outage))
        return findings

    def _raise(self, device: WatchedDevice, outage: Outage) -> Finding:
        noun = _NOUN.get(device.role, "device")
        why = f": {outage.reason}" if outage.reason else ""
        return Finding(
            rule=RULE_DEVICE_DOWN,
            subject=device.device,
            active=True,
            severity=device.severity,
            message=(
                f"{noun} {device.device} down since {_clock(outage.start_us)} "
                f"({device.down_after_s:g} s or more){why}"
            ),
            ts_us=outage.start_us + round(device.down_after_s * 1_000_000),
            line=device.line,
            detail={
                "device": device.device,
                "role": device.role,
                "since_us": outage.start_us,
                "down_after_s": device.down_after_s,
                "reason": outage.reason,
            },
        )

    def _clear(self, device: WatchedDevice, outage: Outage | None, ts_us: int) -> Finding:
        noun = _NOUN.get(device.role, "device")
        detail: dict[str, object] = {"device": device.device, "role": device.role}
        message = f"{noun} {device.device} is back"
        if outage is not None:
            down_s = (ts_us - outage.start_us) / 1_000_000
            since = _clock(outage.start_us).removesuffix(" UTC")
            message += f" after {down_s:.0f} s down ({since}–{_clock(ts_us)})"
            detail.update(since_us=outage.start_us, until_us=ts_us, down_s=down_s)
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
