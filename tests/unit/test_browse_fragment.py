"""Devices recognised among browsed nodes and their fragments (browse_fragment.py)."""

from __future__ import annotations

import tomllib

from adapters.opcua.browse_fragment import BrowsedNode, find_devices, format_fragments

SCALES = "http://opcfoundation.org/UA/Scales/V2/"


def _var(path: str, data_type: str = "Double", unit: str = "") -> BrowsedNode:
    return BrowsedNode(
        f"nsu=urn:v;s={path}", tuple(path.split(".")), "variable", "", "", data_type, unit
    )


def test_a_structure_weight_is_named_not_mapped_and_the_missing_signals_are_said() -> None:
    cw = BrowsedNode("nsu=urn:v;s=CW", ("CW",), "object", "CheckweigherType", SCALES)
    nodes = [cw, _var("CW.RegisteredWeight", "WeightType")]
    (device,) = find_devices(nodes)
    assert device.tags == []
    assert any("RegisteredWeight" in note and "WeightType" in note for note in device.notes)
    assert any("no pack counter" in note for note in device.notes)
    assert "# NOTE: no net weight found" in format_fragments([device], "opc.tcp://h:4840", "L1")


def test_vendor_names_without_types_make_a_checkweigher_in_grams() -> None:
    cw = BrowsedNode("nsu=urn:v;s=CW1", ("CW1",), "object", "BaseObjectType", "")
    nodes = [cw, _var("CW1.PackCounter", "UInt32"), _var("CW1.LastNetWeight", unit="GRM")]
    (device,) = find_devices(nodes)
    assert device.source == "variable names"
    text = format_fragments([device], "opc.tcp://h:4840", "L1")
    (parsed,) = tomllib.loads(text)["devices"]
    assert parsed["groups"][0]["tags"] == [
        {"name": "pack_counter", "node": "nsu=urn:v;s=CW1.PackCounter"},
        {"name": "net_weight", "node": "nsu=urn:v;s=CW1.LastNetWeight"},
    ]


def test_fahrenheit_probes_get_their_unit() -> None:
    (probes,) = find_devices([_var("Freezer.Temp", unit="FAH")])
    assert 'unit = "degF"' in format_fragments([probes], "opc.tcp://h:4840", "L1")
