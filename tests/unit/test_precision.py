"""Values at their physical precision: scaled registers and float32 without binary noise."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.modbus.client import tag_sample
from adapters.opcua.status import plain_value
from gateway.config import ModbusTag
from gateway.core.codecs.precision import scaled, shortest_float32
from gateway.core.codecs.registers import DataType, decode_registers, scale


@pytest.mark.parametrize(
    ("raw", "factor", "offset", "expected"),
    [
        pytest.param(68, 0.1, 0.0, "6.8", id="68x0.1"),
        pytest.param(-185, 0.1, 0.0, "-18.5", id="negative"),
        pytest.param(3, 0.1, 0.0, "0.3", id="3x0.1-not-0.30000000000000004"),
        pytest.param(1234, 0.01, 0.0, "12.34", id="two-places"),
        pytest.param(4000, 0.01, -20.0, "20.0", id="offset"),
        pytest.param(7, 0.1, 0.05, "0.75", id="offset-places"),
        pytest.param(12.34, 0.1, 0.0, "1.234", id="float-raw-keeps-its-places"),
        pytest.param(10, 2.0, -5.0, "15.0", id="multiply-then-offset"),
    ],
)
def test_scaled_has_the_scale_decimal_places(
    raw: float, factor: float, offset: float, expected: str
) -> None:
    value = scaled(raw, factor, offset)
    assert repr(value) == expected
    assert scale(raw, factor=factor, offset=offset) == value


def test_plain_float_arithmetic_would_have_noise() -> None:
    # The reason for scaled(): the acceptance run stored 6.800000000000001 °C.
    assert 68 * 0.1 != 6.8
    assert scaled(68, 0.1) == 6.8


def test_non_finite_goes_through() -> None:
    assert math.isnan(scaled(math.nan, 0.1))
    assert scaled(math.inf, 0.1) == math.inf
    assert scaled(math.inf, 0.0, 1.0) != scaled(math.inf, 0.0, 1.0)  # inf*0 is NaN, no error


@given(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0.1, 0.01, 0.001, 0.5, 0.25]))
def test_scaled_is_the_nearest_float_to_the_exact_decimal(raw: int, factor: float) -> None:
    from decimal import Decimal  # noqa: PLC0415

    assert scaled(raw, factor) == float(Decimal(raw) * Decimal(repr(factor)))
    assert scaled(raw, factor) == pytest.approx(raw * factor, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("wide", "expected"),
    [
        (6.800000190734863, 6.8),
        (241.3000030517578, 241.3),
        (-18.5, -18.5),
        (0.1, 0.1),
        (123456.0, 123456.0),
        (3.4028234663852886e38, 3.4028235e38),  # the largest float32
    ],
)
def test_shortest_float32(wide: float, expected: float) -> None:
    value = shortest_float32(wide)
    assert value == expected
    assert struct.pack("<f", value) == struct.pack("<f", wide)


def test_shortest_float32_leaves_what_is_no_float32() -> None:
    assert math.isnan(shortest_float32(math.nan))
    assert shortest_float32(-math.inf) == -math.inf
    assert shortest_float32(1e300) == 1e300


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_shortest_float32_is_the_same_float32_and_no_longer(value: float) -> None:
    short = shortest_float32(value)
    assert struct.pack("<f", short) == struct.pack("<f", value)
    assert len(repr(short)) <= len(repr(value))


def test_modbus_scaled_register_is_stored_at_its_precision() -> None:
    tag = ModbusTag.model_validate({"name": "T1", "address": 0, "type": "int16", "scale": 0.1})
    raw = decode_registers([68], DataType.INT16)
    sample = tag_sample(tag, raw)
    assert repr(sample.value) == "6.8"
    assert sample.raw == 68


def test_modbus_float32_register_is_its_shortest_decimal() -> None:
    tag = ModbusTag.model_validate({"name": "T2", "address": 0, "type": "float32"})
    raw = decode_registers([0x40D9, 0x999A], DataType.FLOAT32)  # float32 6.8
    assert raw == 6.800000190734863
    assert repr(tag_sample(tag, raw).value) == "6.8"


def test_unscaled_integers_stay_integers() -> None:
    tag = ModbusTag.model_validate({"name": "pack_counter", "address": 0, "type": "uint32"})
    sample = tag_sample(tag, 4_000_000_000)
    assert sample.value == 4_000_000_000
    assert type(sample.value) is int
    assert sample.raw is None


def test_opcua_float_node_is_its_shortest_decimal() -> None:
    from asyncua import ua  # noqa: PLC0415

    assert repr(plain_value(ua.Variant(6.800000190734863, ua.VariantType.Float))) == "6.8"
    # A Double is the device's own 64-bit value: left as it is.
    assert plain_value(ua.Variant(6.800000190734863, ua.VariantType.Double)) == 6.800000190734863
