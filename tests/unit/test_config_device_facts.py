"""Config of bit/mask tags and fault codes: what is refused, and where the error points."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import ModbusTcpDevice, OpcUaDevice, parse_config
from gateway.core.errors import ConfigError


def _config(tags: list[dict[str, Any]], *, role: str, kind: str = "modbus_tcp") -> dict[str, Any]:
    device: dict[str, Any] = {"id": "cw1", "kind": kind, "line": "L1", "role": role}
    if kind == "modbus_tcp":
        device |= {"host": "h", "tags": tags}
    else:
        device |= {"endpoint": "opc.tcp://h:4840", "groups": [{"tags": tags}]}
    return {
        "gateway": {"id": "g", "site": "s"},
        "store": {"path": "x.db"},
        "lines": [{"id": "L1"}],
        "devices": [device],
    }


CW = [
    {"name": "pack_counter", "address": 0, "type": "uint32"},
    {"name": "net_weight", "address": 2},
]


def problems(tags: list[dict[str, Any]], *, role: str = "checkweigher", kind: str = "modbus_tcp"):
    with pytest.raises(ConfigError) as info:
        parse_config(_config(tags, role=role, kind=kind))
    return {p.location: p.reason for p in info.value.problems}


def test_a_status_word_with_a_program_and_a_reject_counter_is_valid() -> None:
    config = parse_config(
        _config(
            [
                *CW,
                {"name": "rejected", "address": 10, "bit": 0},
                {"name": "catch_weight_mode", "address": 10, "bit": 2},
                {"name": "changeover", "address": 10, "bit": 5},
                {"name": "program", "address": 11, "mask": 0x00FF},
                {"name": "reject_counter", "address": 12, "type": "uint32"},
            ],
            role="checkweigher",
        )
    )
    device = config.devices[0]
    assert isinstance(device, ModbusTcpDevice)
    assert device.bit_fields() == {
        "rejected": "bit",
        "catch_weight_mode": "bit",
        "changeover": "bit",
        "program": "mask",
    }


BIT = "devices[0].tags[2].bit"
MASK = "devices[0].tags[2].mask"


@pytest.mark.parametrize(
    ("tag", "where", "says"),
    [
        pytest.param({"type": "float32", "bit": 3}, BIT, "needs an integer type", id="float"),
        pytest.param({"type": "bool", "bit": 0}, BIT, "needs an integer type", id="bool"),
        pytest.param(
            {"type": "string", "length": 4, "bit": 0}, BIT, "needs an integer type", id="string"
        ),
        pytest.param({"bit": 16}, BIT, "beyond the 16 bits of a uint16", id="bit-16-of-16"),
        pytest.param({"type": "int32", "bit": 32}, BIT, "less than or equal to 31", id="bit-32"),
        pytest.param({"bit": 3, "scale": 0.1}, BIT, "not scaled", id="scaled"),
        pytest.param({"bit": 3, "offset": 1}, BIT, "not scaled", id="offset"),
        pytest.param({"bit": 3, "max": 1}, BIT, "min and max do not apply", id="range"),
        pytest.param({"bit": 3, "fault_codes": [1]}, BIT, "fault_codes", id="fault-codes"),
        pytest.param({"bit": 1, "mask": 2}, MASK, "not both", id="bit-and-mask"),
        pytest.param({"mask": 0x0101}, MASK, "not one run of adjacent bits", id="holes"),
        pytest.param({"mask": 0x10000}, MASK, "wider than the 16 bits", id="wide"),
        pytest.param({"mask": 0}, MASK, "greater than or equal to 1", id="zero"),
        pytest.param(
            {"table": "coil", "type": "bool", "bit": 0}, BIT, "one bit already", id="coil"
        ),
    ],
)
def test_bit_and_mask_errors_point_at_the_key(tag: dict[str, Any], where: str, says: str) -> None:
    found = problems([*CW, {"name": "rejected", "address": 10, **tag}])
    assert list(found) == [where], found
    assert says in found[where]


@pytest.mark.parametrize(
    ("tag", "says"),
    [
        pytest.param({"name": "program", "bit": 0}, "only ['accepted',", id="program-bit"),
        pytest.param({"name": "tare", "mask": 0xFF}, "weights are not bit fields", id="tare"),
    ],
)
def test_checkweigher_bits_are_flags(tag: dict[str, Any], says: str) -> None:
    found = problems([*CW, {"address": 10, **tag}])
    assert says in found["devices[0]"]


def test_a_probe_is_no_bit_field() -> None:
    found = problems([{"name": "T1", "address": 0, "bit": 0}], role="temperature_probe")
    assert "temperatures, not bit fields" in found["devices[0]"]


def test_fault_codes_are_numbers() -> None:
    config = parse_config(
        _config(
            [{"name": "T1", "address": 0, "type": "int16", "fault_codes": [32767, -32768]}],
            role="temperature_probe",
        )
    )
    assert config.devices[0].tags[0].fault_codes == (32767, -32768)  # type: ignore[union-attr]
    for bad in (True, "32767", float("nan")):
        found = problems(
            [{"name": "T1", "address": 0, "fault_codes": [bad]}], role="temperature_probe"
        )
        assert "devices[0].tags[0].fault_codes" in found, found
    found = problems(
        [{"name": "T1", "address": 0, "type": "bool", "fault_codes": [1]}],
        role="temperature_probe",
    )
    assert "a bool tag has none" in found["devices[0].tags[0]"]


def test_opcua_bit_and_mask() -> None:
    tags: list[dict[str, Any]] = [
        {"name": "pack_counter", "node": "ns=2;s=C"},
        {"name": "net_weight", "node": "ns=2;s=W"},
        {"name": "changeover", "node": "ns=2;s=Status", "bit": 40},
        {"name": "program", "node": "ns=2;s=Status", "mask": 0xFF00},
    ]
    config = parse_config(_config(tags, role="checkweigher", kind="opcua"))
    device = config.devices[0]
    assert isinstance(device, OpcUaDevice)
    assert device.bit_fields() == {"changeover": "bit", "program": "mask"}
    found = problems(
        [*tags[:2], {"name": "changeover", "node": "ns=2;s=S", "bit": 1, "min": 0}], kind="opcua"
    )
    assert "min and max do not apply" in found["devices[0].groups[0].tags[2].bit"]
    found = problems(
        [*tags[:2], {"name": "program", "node": "ns=2;s=S", "mask": 0b1010}], kind="opcua"
    )
    assert "adjacent" in found["devices[0].groups[0].tags[2].mask"]
