"""A Modbus device's read plan and tag values: the blocks one poll cycle reads, the value of
one decoded tag at its physical precision, and the silence an RTU line needs between frames."""

from __future__ import annotations

import math
from dataclasses import dataclass

from adapters.base import TagSample
from gateway.config import ModbusRtuDevice, ModbusTag, ModbusTcpDevice
from gateway.core.codecs.bitfields import extract_field
from gateway.core.codecs.precision import shortest_float32
from gateway.core.codecs.read_plan import ReadBlock, RegisterSpan, plan_reads
from gateway.core.codecs.registers import DataType, scale
from gateway.core.codecs.units import UNITS, to_rule_unit
from gateway.core.errors import DeviceConfigError


def frame_gap_s(device: ModbusTcpDevice | ModbusRtuDevice) -> float:
    """Least silence between the end of a reply and the next request on this device's line.

    Modbus over Serial Line V1.02 §2.5.1.1: RTU frames are separated by at least 3.5
    character times; above 19200 baud a fixed 1.750 ms. A character is a start bit, the
    data bits, the parity bit if any and the stop bits. TCP needs no gap.
    """
    if isinstance(device, ModbusTcpDevice):
        return 0.0
    if device.baudrate > 19200:
        return 0.00175
    bits = 1 + device.bytesize + (0 if device.parity == "N" else 1) + device.stopbits
    return 3.5 * bits / device.baudrate


@dataclass(eq=False)
class Block:
    """One read request of the poll cycle and what we know about it."""

    read: ReadBlock
    tags: tuple[ModbusTag, ...]
    retry_at: float = -math.inf
    """Monotonic time before which the block is not read (after a configuration error)."""
    config_code: int | None = None
    """The exception code 01-03 the block was refused with, until it reads again."""
    fault: str = ""
    """Category of the block's current failure; empty after a good read."""

    @property
    def where(self) -> str:
        """``holding 100..101`` style description for logs and events."""
        return f"{self.read.table} {self.read.address}..{self.read.end - 1}"


def plan_blocks(device: ModbusTcpDevice | ModbusRtuDevice) -> list[Block]:
    """The blocks of ``device``'s tags, neighbours merged (DeviceConfigError if impossible)."""
    spans = [RegisterSpan(t.table, t.address, t.registers) for t in device.tags]
    try:
        reads = plan_reads(spans, max_gap=device.max_gap)
    except ValueError as exc:
        raise DeviceConfigError(device.id, f"cannot plan the reads: {exc}") from exc
    return [Block(r, tuple(device.tags[i] for i in r.members)) for r in reads]


def tag_sample(tag: ModbusTag, raw: int | float | bool | str) -> TagSample:
    """The sample of one decoded tag: its bit field, or its value at physical precision.

    * ``bit``/``mask``: the flag (bool) or the field (int) of the integer read;
    * a float32 is its shortest decimal (a register pair holding 6.8 reads 6.8, not
      6.800000190734863);
    * scale and offset are applied in decimal, so 68 x 0.1 is 6.8 (docs/devices.md);
    * a ``unit`` (kg, lb, degF, ...) converts the result into grams or degC;
      integers stay integers when nothing is scaled (counters must stay exact).

    ``raw`` is kept on the sample whenever the value was derived from it: the tag's
    ``fault_codes`` are raw values.
    """
    if isinstance(raw, bool | str):
        return TagSample(tag.name, raw)
    if tag.bit is not None or tag.mask is not None:
        # Config allows bit/mask only on integer types, so raw is an int here.
        return TagSample(tag.name, extract_field(int(raw), bit=tag.bit, mask=tag.mask), raw=raw)
    if tag.type is DataType.FLOAT32:
        raw = shortest_float32(raw)
    plain = tag.scale == 1.0 and tag.offset == 0.0
    if plain and tag.unit is None:
        return TagSample(tag.name, raw)
    value = raw if plain else scale(raw, factor=tag.scale, offset=tag.offset)
    if tag.unit is not None:
        # The config allows a unit only on a weight or temperature, so it converts into
        # grams or degC (docs/devices.md, "Units and scale").
        value = to_rule_unit(value, UNITS[tag.unit])
    return TagSample(tag.name, value, raw=raw)
