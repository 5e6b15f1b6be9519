"""OPC UA tag units in the config and the pure unit codec (gateway/core/codecs/units.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from adapters.base import TagSample
from adapters.opcua.units import engineering_sample
from gateway.config import OpcUaDevice, OpcUaTag
from gateway.core.codecs.units import UNITS, common_code, from_common_code, to_rule_unit, unit_id


def _device(role: str, tags: list[dict[str, Any]]) -> OpcUaDevice:
    return OpcUaDevice.model_validate(
        {
            "kind": "opcua",
            "id": "D1",
            "line": "L1",
            "role": role,
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "groups": [{"tags": tags}],
        }
    )


CW = [{"name": "pack_counter", "node": "ns=2;s=C"}, {"name": "net_weight", "node": "ns=2;s=N"}]


def test_unit_id_is_the_unece_code_one_byte_per_character() -> None:
    assert unit_id("KGM") == 0x4B474D
    assert common_code(0x4B474D) == "KGM"
    assert common_code(-1) == ""
    assert from_common_code("FAH") is UNITS["degF"]
    assert from_common_code("XYZ") is None


def test_conversions_into_grams_and_celsius_have_no_binary_noise() -> None:
    assert to_rule_unit(0.2515, UNITS["kg"]) == 251.5
    assert to_rule_unit(1, UNITS["lb"]) == 453.59237
    assert to_rule_unit(41.0, UNITS["degF"]) == 5.0
    assert to_rule_unit(38.3, UNITS["degF"]) == 3.5
    assert to_rule_unit(278.15, UNITS["K"]) == 5.0


def test_a_weight_in_kg_and_a_probe_in_fahrenheit_are_accepted() -> None:
    cw = _device("checkweigher", [*CW[:1], {**CW[1], "unit": "kg"}])
    assert cw.groups[0].tags[1].unit == "kg"
    probe = _device("temperature_probe", [{"name": "P1", "node": "ns=2;s=T", "unit": "°F"}])
    assert probe.groups[0].tags[0].unit == "degF"
    assert probe.rule_unit("P1") == "degC"
    assert cw.rule_unit("pack_counter") is None


@pytest.mark.parametrize(
    ("role", "tags", "message"),
    [
        (
            "checkweigher",
            [{**CW[0], "unit": "kg"}, CW[1]],
            "a checkweigher's pack_counter has none",
        ),
        ("checkweigher", [CW[0], {**CW[1], "unit": "degC"}], "degC is a temperature"),
        (
            "temperature_probe",
            [{"name": "P1", "node": "ns=2;s=T", "unit": "kg"}],
            "kg is a mass",
        ),
    ],
)
def test_a_unit_that_does_not_fit_the_tag_is_refused(
    role: str, tags: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _device(role, tags)


def test_a_bit_field_is_not_scaled() -> None:
    with pytest.raises(ValidationError, match="a bit field is not scaled"):
        OpcUaTag.model_validate({"name": "rejected", "node": "ns=2;s=S", "scale": 2, "bit": 1})


def test_a_wrong_node_id_names_the_nsu_form() -> None:
    with pytest.raises(ValidationError, match=r"nsu=<namespace URI>;s=<name>"):
        OpcUaTag.model_validate({"name": "net_weight", "node": "CW1.Net"})


def test_scale_offset_and_unit_give_grams_and_keep_the_raw_value() -> None:
    tag = OpcUaTag.model_validate(
        {"name": "net_weight", "node": "ns=2;s=N", "scale": 0.001, "unit": "kg"}
    )
    sample = engineering_sample(TagSample("net_weight", 2515), tag, "g")
    assert (sample.value, sample.raw) == (2515.0, 2515)
    plain = OpcUaTag.model_validate({"name": "net_weight", "node": "ns=2;s=N"})
    untouched = TagSample("net_weight", 251.5)
    assert engineering_sample(untouched, plain, "g") is untouched
