"""OPC UA tag values in the rules' units: scale, offset, unit, and the server's
EngineeringUnits checked against them.

A tag's value is ``raw × scale + offset`` in the tag's ``unit`` (default: the rule's unit,
grams for weights and degC for temperatures), converted into the rule's unit
(:mod:`gateway.core.codecs.units`). ``fault_codes`` stay raw values (``TagSample.raw``).

When the adapter connects, every weight and temperature tag read as the server gives it
(no scale, no offset) has its ``EngineeringUnits`` property read, where the server offers
one (OPC 10000-8 §5.6.3). A unit that differs from the tag's is refused with a
:class:`DeviceConfigError` naming the node, the server's unit and the one expected: the
gateway never converts on a guess, because a config that silently follows the server would
equally silently follow a server whose PLC program was changed. ``unit = "kg"`` on the tag
is the one-line fix the message gives. A tag with scale or offset is converted by the
engineer's own numbers, and the server's unit (which describes the raw value) is only
logged. docs/devices.md, "Units and scale".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from asyncua import ua
from asyncua.common.node import Node
from asyncua.ua.uaerrors import UaStatusCodeError

from adapters.base import TagSample
from gateway.config import OpcUaDevice, OpcUaTag
from gateway.core.codecs.precision import scaled
from gateway.core.codecs.units import UNITS, common_code, from_common_code, to_rule_unit
from gateway.core.errors import DeviceConfigError

__all__ = ["check_engineering_units", "engineering_sample", "read_engineering_units"]

log = logging.getLogger(__name__)

_EU_PROPERTY = "0:EngineeringUnits"


def engineering_sample(sample: TagSample, tag: OpcUaTag, rule_unit: str | None) -> TagSample:
    """``sample`` scaled, offset and converted into ``rule_unit``; the raw value kept."""
    value = sample.value
    plain = tag.scale == 1.0 and tag.offset == 0.0
    unit = UNITS[tag.unit] if tag.unit is not None and rule_unit is not None else None
    if (plain and unit is None) or isinstance(value, bool) or not isinstance(value, int | float):
        return sample
    engineering = value if plain else scaled(value, tag.scale, tag.offset)
    if unit is not None:
        engineering = to_rule_unit(engineering, unit)
    return TagSample(sample.tag, engineering, sample.quality, sample.status, raw=value)


def _describe(info: ua.EUInformation) -> str:
    code = common_code(int(info.UnitId))
    name = info.DisplayName.Text if info.DisplayName is not None else None
    return f"{name or code or '?'} (UNECE {code or '?'})"


async def read_engineering_units(node: Node, timeout_s: float) -> ua.EUInformation | None:
    """A variable's EngineeringUnits, or None when the server offers none for it."""
    try:
        async with asyncio.timeout(timeout_s):
            prop = await node.get_child(_EU_PROPERTY)
            info = await prop.read_value()
    except UaStatusCodeError:
        return None  # no such property (or no such node: reported when it is monitored)
    return info if isinstance(info, ua.EUInformation) else None


async def check_engineering_units(
    device: OpcUaDevice, nodes: Mapping[str, Node], timeout_s: float
) -> None:
    """Refuse a weight or temperature tag whose server unit is not the one it is read in."""
    for group in device.groups:
        for tag in group.tags:
            rule_unit = device.rule_unit(tag.name)
            if rule_unit is None or tag.bit is not None or tag.mask is not None:
                continue
            info = await read_engineering_units(nodes[tag.name], timeout_s)
            if info is None:
                continue
            expected = tag.unit or rule_unit
            server = from_common_code(common_code(int(info.UnitId)))
            if tag.scale != 1.0 or tag.offset != 0.0:
                log.info(
                    "device %s: tag %s (%s): the server's unit is %s; scale and offset convert "
                    "it to %s",
                    device.id,
                    tag.name,
                    tag.node,
                    _describe(info),
                    expected,
                )
                continue
            if server is None:
                log.warning(
                    "device %s: tag %s (%s): the server's unit %s is not one Lineside knows; "
                    "read as %s",
                    device.id,
                    tag.name,
                    tag.node,
                    _describe(info),
                    expected,
                )
                continue
            if server.name != expected:
                fix = (
                    f'set unit = "{server.name}" on the tag to convert it'
                    if server.quantity == UNITS[rule_unit].quantity
                    else "check the node id"
                )
                raise DeviceConfigError(
                    device.id,
                    f"tag {tag.name} ({tag.node}): the server gives EngineeringUnits "
                    f"{_describe(info)}, but the tag is read as {expected}; {fix} "
                    "(docs/devices.md, Units and scale)",
                )
