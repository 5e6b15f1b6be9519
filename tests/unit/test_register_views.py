"""Every way a block of registers reads (gateway/core/codecs/register_views.py)."""

from __future__ import annotations

import json

import pytest

from gateway.core.codecs.register_views import every_view, tag_fragment, views_as_json
from gateway.core.codecs.registers import DataType, Table, WordOrder, encode_registers
from gateway.modbus_probe import parse_target


@pytest.mark.parametrize("order", list(WordOrder))
def test_the_golden_float_reads_right_in_its_own_order_only(order: WordOrder) -> None:
    words = encode_registers(123456.0, DataType.FLOAT32, order)
    floats = {
        v.order: v.value
        for v in every_view(40, words)
        if v.data_type is DataType.FLOAT32 and v.address == 40
    }
    assert floats[order] == 123456.0
    assert [o for o, value in floats.items() if value == 123456.0] == [order]


def test_sixteen_bit_views_at_every_register_and_json() -> None:
    views = every_view(7, [0x0102, 0xFF85])
    int16 = {(v.address, v.order): v.value for v in views if v.data_type is DataType.INT16}
    assert int16 == {(7, "ABCD"): 258, (7, "BADC"): 513, (8, "ABCD"): -123, (8, "BADC"): -31233}
    parsed = json.loads(views_as_json(Table.INPUT, 7, [0x0102, 0xFF85]))
    assert parsed["registers"] == [0x0102, 0xFF85]
    assert len(parsed["views"]) == len(views)


def test_the_fragment_leaves_out_the_default_order() -> None:
    plain = tag_fragment("T1", Table.INPUT, 3, DataType.INT16, WordOrder.ABCD)
    assert plain == '{ name = "T1", table = "input", address = 3, type = "int16" },'


@pytest.mark.parametrize(
    ("text", "target"),
    [("10.0.0.5", ("10.0.0.5", 502)), ("plc:1502", ("plc", 1502)), ("[::1]:5020", ("::1", 5020))],
)
def test_targets(text: str, target: tuple[str, int]) -> None:
    assert parse_target(text) == target
