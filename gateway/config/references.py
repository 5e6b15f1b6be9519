"""Cross-references in a config: ids that must be unique, and ids that must name something.

Each problem carries the key path of the entry that refers (``rules.probes[0].probe``), not
the top of the file, and the nearest existing id when the one given looks misspelt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from gateway.config.hints import did_you_mean

if TYPE_CHECKING:
    from gateway.config import LinesideConfig


class Reference(NamedTuple):
    """One broken reference: where (key path), the value there, and why."""

    location: str
    value: object
    reason: str


def reference_problems(config: LinesideConfig) -> list[Reference]:
    """Every duplicate id and every id that names nothing, in file order."""
    problems: list[Reference] = []
    line_ids = [line.id for line in config.lines]
    for index, line_id in enumerate(line_ids):
        if line_id in line_ids[:index]:
            problems.append(Reference(f"lines[{index}].id", line_id, "line ids must be unique"))
    device_ids = [d.id for d in config.devices]
    for index, device_id in enumerate(device_ids):
        if device_id in device_ids[:index]:
            problems.append(
                Reference(f"devices[{index}].id", device_id, "device ids must be unique")
            )
    for index, device in enumerate(config.devices):
        if device.line not in line_ids:
            problems.append(
                Reference(
                    f"devices[{index}].line",
                    device.line,
                    f"device {device.id} names line {device.line!r}, which is not in "
                    f"[[lines]]{did_you_mean(device.line, line_ids)}",
                )
            )
    problems.extend(_shared_serial_ports(config))
    for index, override in enumerate(config.rules.lines):
        if override.line not in line_ids:
            problems.append(
                Reference(
                    f"rules.lines[{index}].line",
                    override.line,
                    f"names line {override.line!r}, which is not in "
                    f"[[lines]]{did_you_mean(override.line, line_ids)}",
                )
            )
    tags = {d.id: d.tag_names() for d in config.devices}
    for index, probe in enumerate(config.rules.probes):
        named = f"{probe.device}/{probe.probe}"
        if probe.device not in tags:
            problems.append(
                Reference(
                    f"rules.probes[{index}].device",
                    probe.device,
                    f"names {named}, which is no device tag: no device "
                    f"{probe.device!r}{did_you_mean(probe.device, tags)}",
                )
            )
        elif probe.probe not in tags[probe.device]:
            problems.append(
                Reference(
                    f"rules.probes[{index}].probe",
                    probe.probe,
                    f"names {named}, which is no device tag: device {probe.device} has "
                    f"{', '.join(tags[probe.device]) or 'no tags'}"
                    f"{did_you_mean(probe.probe, tags[probe.device])}",
                )
            )
    return problems


def _shared_serial_ports(config: LinesideConfig) -> list[Reference]:
    # pymodbus opens a serial port exclusively: a second device on it would stay down.
    seen: set[str] = set()
    problems = []
    for index, device in enumerate(config.devices):
        port = getattr(device, "serial_port", None)
        if device.kind != "modbus_rtu" or not isinstance(port, str):
            continue
        if port in seen:
            problems.append(
                Reference(
                    f"devices[{index}].serial_port",
                    port,
                    "several modbus_rtu devices on one serial port is not supported yet",
                )
            )
        seen.add(port)
    return problems
