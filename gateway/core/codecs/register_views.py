"""Pure: a block of registers decoded every way a tag could read it, for ``lineside
modbus-probe``, and the tag config of the way the engineer picks.

A device manual rarely says which word order a 32-bit value uses, and a wrong guess reads
a plausible-looking wrong number (docs/devices.md, "Word order"). Showing every type in
every order side by side lets the engineer pick the one that shows the value the device's
display shows. No I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gateway.core.codecs.precision import shortest_float32
from gateway.core.codecs.registers import (
    DataType,
    RegisterDecodeError,
    Table,
    WordOrder,
    decode_registers,
    register_count,
)

__all__ = [
    "NUMERIC_TYPES",
    "RegisterView",
    "every_view",
    "format_views",
    "tag_fragment",
    "views_as_json",
]

NUMERIC_TYPES: Final = (
    DataType.INT16,
    DataType.UINT16,
    DataType.INT32,
    DataType.UINT32,
    DataType.FLOAT32,
)
"""The types shown: what weights, temperatures and counters come as."""

# 16-bit values only have a byte order: ABCD and BADC say all there is.
_ORDERS: Final[dict[int, tuple[WordOrder, ...]]] = {
    1: (WordOrder.ABCD, WordOrder.BADC),
    2: tuple(WordOrder),
}


@dataclass(frozen=True, slots=True)
class RegisterView:
    """One way to read the registers from ``address``: a type in an order, and its value."""

    address: int
    data_type: DataType
    order: WordOrder
    value: int | float


def every_view(address: int, words: Sequence[int]) -> list[RegisterView]:
    """Every numeric type in every order at every register of ``words`` (read from
    ``address``) that has enough registers after it. Floats are shown as their shortest
    decimal (a float32 of 6.8 reads 6.8)."""
    views = []
    for offset in range(len(words)):
        for data_type in NUMERIC_TYPES:
            size = register_count(data_type)
            chunk = words[offset : offset + size]
            if len(chunk) < size:
                continue
            for order in _ORDERS[size]:
                try:
                    value = decode_registers(chunk, data_type, order)
                except RegisterDecodeError:
                    continue
                if isinstance(value, float):
                    value = shortest_float32(value)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    views.append(RegisterView(address + offset, data_type, order, value))
    return views


def _shown(value: int | float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, float) and (abs(value) >= 1e9 or (value != 0 and abs(value) < 1e-6)):
        return f"{value:.6g}"  # a wrong order's float: its size is all that matters
    return repr(value)


def format_views(table: Table, address: int, words: Sequence[int]) -> str:
    """The registers as read, then one line per view: address, type, order, value."""
    raw = " ".join(f"0x{w:04X}" for w in words)
    lines = [
        f"{table} registers {address}..{address + len(words) - 1} (0-based): {raw}",
        "",
        f"{'address':>7}  {'type':<7}  {'order':<5}  value",
    ]
    lines += [
        f"{v.address:>7}  {v.data_type:<7}  {v.order:<5}  {_shown(v.value)}"
        for v in every_view(address, words)
    ]
    return "\n".join(lines)


def views_as_json(table: Table, address: int, words: Sequence[int]) -> str:
    """The same as :func:`format_views`, for programs."""
    views = [
        {
            "address": v.address,
            "type": str(v.data_type),
            "order": str(v.order),
            "value": v.value if math.isfinite(v.value) else str(v.value),
        }
        for v in every_view(address, words)
    ]
    return json.dumps(
        {"table": str(table), "address": address, "registers": list(words), "views": views},
        ensure_ascii=False,
    )


def tag_fragment(
    name: str, table: Table, address: int, data_type: DataType, order: WordOrder
) -> str:
    """The tag entry that reads the picked view, for the ``tags = [...]`` list of a
    ``[[devices]]`` of kind modbus_tcp or modbus_rtu."""
    keys = [f'name = "{name}"', f'table = "{table}"', f"address = {address}"]
    keys.append(f'type = "{data_type}"')
    if order is not WordOrder.ABCD:
        keys.append(f'order = "{order}"')
    return "{ " + ", ".join(keys) + " },"
