"""Modbus tag units in the config, and the conversion of a decoded value (tag_sample)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from adapters.modbus.client import tag_sample
from gateway.config import ModbusTag, ModbusTcpDevice


def _device(role: str, tags: list[dict[str, Any]]) -> ModbusTcpDevice:
    return ModbusTcpDevice.model_validate(
        {"kind": "modbus_tcp", "id": "D1", "line": "L1", "role": role, "host": "h", "tags": tags}
    )


COUNTER = {"name": "pack_counter", "address": 0, "type": "uint32"}
NET = {"name": "net_weight", "address": 2, "type": "float32"}
STATUS = {"name": "rejected", "address": 4, "type": "uint16", "bit": 3}


def test_a_weight_in_kg_or_lb_and_a_probe_in_fahrenheit_are_accepted() -> None:
    cw = _device("checkweigher", [COUNTER, {**NET, "unit": "kg"}])
    assert cw.tags[1].unit == "kg"
    assert _device("checkweigher", [COUNTER, {**NET, "unit": "lb"}]).tags[1].unit == "lb"
    probe = _device("temperature_probe", [{"name": "P1", "address": 0, "unit": "°F"}])
    assert probe.tags[0].unit == "degF"
    assert probe.rule_unit("P1") == "degC"
    assert cw.rule_unit("net_weight") == "g"
    assert cw.rule_unit("pack_counter") is None


@pytest.mark.parametrize(
    ("role", "tags", "message"),
    [
        ("checkweigher", [{**COUNTER, "unit": "kg"}, NET], "a checkweigher's pack_counter has"),
        ("checkweigher", [COUNTER, NET, {**STATUS, "unit": "g"}], "remove scale, offset and unit"),
        (
            "checkweigher",
            [COUNTER, NET, {"name": "program", "address": 6, "mask": 0xFF, "unit": "g"}],
            "remove scale, offset and unit",
        ),
        ("checkweigher", [COUNTER, {**NET, "unit": "degF"}], "degF is a temperature"),
        (
            "temperature_probe",
            [{"name": "P1", "address": 0, "type": "float32", "unit": "kg"}],
            "kg is a mass",
        ),
        (
            "temperature_probe",
            [{"name": "P1", "table": "coil", "address": 0, "type": "bool", "unit": "degC"}],
            "a bool tag has none",
        ),
        ("temperature_probe", [{"name": "P1", "address": 0, "unit": "stone"}], "Input should be"),
    ],
)
def test_a_unit_that_does_not_fit_the_tag_is_refused(
    role: str, tags: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _device(role, tags)


def test_the_error_names_the_key_path() -> None:
    with pytest.raises(ValidationError) as info:
        ModbusTag.model_validate({"name": "P1", "address": 0, "unit": "furlong"})
    assert info.value.errors()[0]["loc"] == ("unit",)


def test_a_decoded_value_is_scaled_then_converted() -> None:
    kg = ModbusTag.model_validate({**NET, "unit": "kg"})
    # float32 0.2515 widens to 0.25150001049041748; its shortest decimal is converted, and
    # kept as the raw value (fault_codes compare against it).
    sample = tag_sample(kg, 0.25150001049041748)
    assert (sample.value, sample.raw) == (251.5, 0.2515)
    lb = ModbusTag.model_validate({**NET, "type": "uint16", "scale": 0.01, "unit": "lb"})
    assert tag_sample(lb, 100).value == 453.59237
    assert tag_sample(lb, 100).raw == 100
    fahrenheit = {"name": "P1", "address": 0, "type": "int16", "scale": 0.1, "unit": "degF"}
    probe = ModbusTag.model_validate(fahrenheit)
    assert tag_sample(probe, 410).value == 5.0
    assert tag_sample(probe, 383).value == 3.5
    celsius = ModbusTag.model_validate({**fahrenheit, "scale": 1.0, "unit": "degC"})
    assert tag_sample(celsius, 7).value == 7
