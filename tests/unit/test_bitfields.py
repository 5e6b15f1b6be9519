"""Bit and mask tags: the flag or field of a decoded integer, on Modbus and OPC UA."""

from __future__ import annotations

import pytest
from asyncua import ua

from adapters.base import Quality, TagSample
from adapters.modbus import ModbusAdapter
from adapters.modbus.client import tag_sample
from adapters.opcua.status import BAD_TYPE_MISMATCH, bit_field, sample_from
from gateway.config import ModbusTag
from gateway.core.clock import ManualClock
from gateway.core.codecs.bitfields import extract_field, is_contiguous, mask_shift
from gateway.core.codecs.registers import DataType, decode_registers
from tests.support.collector import Collector
from tests.support.modbus_harness import device

STATUS = 0b0000_1010_0010_0101  # 0x0A25: bits 0, 2, 5, 9, 11


@pytest.mark.parametrize(
    ("bit", "expected"),
    [(0, True), (1, False), (2, True), (5, True), (9, True), (10, False), (15, False)],
)
def test_bit_counts_from_the_least_significant_bit(bit: int, expected: bool) -> None:
    assert extract_field(STATUS, bit=bit) is expected


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        pytest.param(0x0F00, 0xA, id="high-nibble-shifted-down"),
        pytest.param(0x00FF, 0x25, id="low-byte"),
        pytest.param(0x0004, 1, id="one-bit-mask-is-a-number"),
        pytest.param(0x0002, 0, id="one-bit-mask-clear"),
        pytest.param(0xFFFF, STATUS, id="whole-word"),
    ],
)
def test_mask_is_the_field_shifted_down(mask: int, expected: int) -> None:
    value = extract_field(STATUS, mask=mask)
    assert value == expected
    assert type(value) is int


def test_signed_values_are_their_twos_complement_bits() -> None:
    raw = decode_registers([0x8001], DataType.INT16)
    assert isinstance(raw, int)
    assert raw == -32767
    assert extract_field(raw, bit=15) is True  # the sign bit
    assert extract_field(raw, bit=0) is True
    assert extract_field(raw, bit=1) is False
    assert extract_field(raw, mask=0xF000) == 0x8


def test_mask_shape() -> None:
    assert mask_shift(0x0F00) == 8
    assert mask_shift(1) == 0
    assert is_contiguous(0x0F00)
    assert is_contiguous(0x8000_0000)
    assert not is_contiguous(0x0101)
    assert not is_contiguous(0)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"bit": 1, "mask": 2}, {"bit": -1}, {"mask": 0x0101}, {"mask": 0}],
)
def test_extract_refuses_what_has_no_meaning(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"bit|mask"):
        extract_field(STATUS, **kwargs)


# ----------------------------------------------------------------------------- Modbus


def _tag(**kwargs: object) -> ModbusTag:
    return ModbusTag.model_validate({"name": "t", "address": 10, **kwargs})


def test_modbus_bit_tag_reads_a_bool_and_keeps_the_word() -> None:
    sample = tag_sample(_tag(bit=5), STATUS)
    assert sample == TagSample("t", True, raw=STATUS)


def test_modbus_mask_tag_reads_the_field() -> None:
    assert tag_sample(_tag(mask=0x0F00), STATUS).value == 0xA


def test_modbus_uint32_bit_above_16() -> None:
    raw = decode_registers([0x0001, 0x0000], DataType.UINT32)  # bit 16
    assert tag_sample(_tag(type="uint32", bit=16), raw).value is True
    assert tag_sample(_tag(type="uint32", bit=0), raw).value is False


def test_status_word_bits_share_one_read() -> None:
    tags = [
        {"name": "net_weight", "address": 200, "type": "float32"},
        {"name": "gross_weight", "address": 202, "type": "float32"},
        {"name": "pack_counter", "address": 204, "type": "uint32"},
        {"name": "accepted", "address": 206, "bit": 1},
        {"name": "catch_weight_mode", "address": 206, "bit": 2},
        {"name": "changeover", "address": 206, "bit": 3},
        {"name": "program", "address": 207},
    ]
    together = ModbusAdapter(device(1502, tags, role="checkweigher"), Collector(), ManualClock())
    assert together.blocks == [("holding", 200, 8)]
    # On a register of their own, the three bit tags are one request of one register.
    apart = [*tags[:3], *({**t, "address": 300} for t in tags[3:6])]
    adapter = ModbusAdapter(device(1502, apart, role="checkweigher"), Collector(), ManualClock())
    assert adapter.blocks == [("holding", 200, 6), ("holding", 300, 1)]


# ----------------------------------------------------------------------------- OPC UA


def _opcua(value: object, variant: ua.VariantType, status: int = 0) -> TagSample:
    data = ua.DataValue(ua.Variant(value, variant), StatusCode=ua.StatusCode(ua.UInt32(status)))
    return sample_from("t", data)


def test_opcua_bit_and_mask_of_an_integer_node() -> None:
    word = _opcua(STATUS, ua.VariantType.UInt16)
    assert bit_field(word, bit=2, mask=None) == TagSample("t", True, raw=STATUS)
    assert bit_field(word, bit=None, mask=0x0F00).value == 0xA
    assert bit_field(word, bit=None, mask=None) is word


@pytest.mark.parametrize(
    ("value", "variant"),
    [(True, ua.VariantType.Boolean), (6.5, ua.VariantType.Double), ("x", ua.VariantType.String)],
)
def test_opcua_bit_of_a_non_integer_is_a_type_mismatch(value: object, variant: ua.VariantType):
    sample = bit_field(_opcua(value, variant), bit=0, mask=None)
    assert sample.quality is Quality.BAD
    assert sample.value is None
    assert sample.status.startswith(BAD_TYPE_MISMATCH)


def test_opcua_bad_sample_keeps_its_own_status() -> None:
    bad = _opcua(1.5, ua.VariantType.Double, status=0x80000000)  # Bad
    assert bit_field(bad, bit=0, mask=None) is bad
