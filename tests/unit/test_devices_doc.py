"""The config in docs/devices.md, "Connecting real devices", loads as it is written."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from gateway.config import ModbusTag, ModbusTcpDevice, OpcUaDevice, load_config
from tests.support.configs import minimal_config_text
from tests.support.paths import REPO

PAGE = (REPO / "docs" / "devices.md").read_text(encoding="utf-8")
SECTION = PAGE.split("# Connecting real devices", 1)[1]
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", SECTION, re.DOTALL)


def test_the_section_has_its_examples() -> None:
    assert len(TOML_BLOCKS) == 3
    headings = ("Units and scale", "`ns=` and `nsu=`", "label reads", "browse", "modbus-probe")
    for heading in headings:
        assert heading in SECTION


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=lambda b: b.split('id = "')[1].split('"')[0])
def test_every_toml_block_loads(block: str, tmp_path: Path) -> None:
    path = tmp_path / "line.toml"
    path.write_text(minimal_config_text(tmp_path / "store.db") + "\n" + block, encoding="utf-8")
    config = load_config(path)
    assert config.devices
    assert all(isinstance(d, OpcUaDevice | ModbusTcpDevice) for d in config.devices)


def test_the_units_example_converts_kg_and_fahrenheit(tmp_path: Path) -> None:
    path = tmp_path / "line.toml"
    path.write_text(
        minimal_config_text(tmp_path / "s.db") + "\n" + TOML_BLOCKS[0], encoding="utf-8"
    )
    units = {
        t.name: t.unit
        for d in load_config(path).devices
        if isinstance(d, OpcUaDevice)
        for g in d.groups
        for t in g.tags
    }
    assert units == {"pack_counter": None, "net_weight": "kg", "tare": None, "chill_room": "degF"}


def test_the_modbus_units_example_converts_kg_and_fahrenheit(tmp_path: Path) -> None:
    path = tmp_path / "line.toml"
    path.write_text(
        minimal_config_text(tmp_path / "s.db") + "\n" + TOML_BLOCKS[1], encoding="utf-8"
    )
    units = {
        t.name: t.unit
        for d in load_config(path).devices
        if isinstance(d, ModbusTcpDevice)
        for t in d.tags
    }
    assert units == {"net_weight": "kg", "pack_counter": None, "dock_door": "degF"}


def test_the_modbus_probe_example_tag_is_a_valid_tag() -> None:
    (line,) = re.findall(r"^\{ name = .*\},$", SECTION, re.MULTILINE)
    (tag,) = tomllib.loads(f"tags = [{line[:-1]}]")["tags"]
    assert ModbusTag.model_validate(tag).order == "CDAB"


def test_the_commented_opc_ua_examples_of_example_toml_load(tmp_path: Path) -> None:
    example = (REPO / "config" / "example.toml").read_text(encoding="utf-8")
    scanner = re.search(r"^# \[\[devices\]\]\n# id = \"vision1\"\n(?:# .*\n)+", example, re.M)
    assert scanner is not None
    block = "\n".join(line.removeprefix("# ") for line in scanner.group(0).splitlines())
    (kg_line,) = re.findall(r"^  # (\{ name = \"net_weight\", node = \"nsu=.*\}),$", example, re.M)
    checkweigher = (
        '[[devices]]\nid = "cw9"\nkind = "opcua"\nline = "L1"\nrole = "checkweigher"\n'
        'endpoint = "opc.tcp://10.0.0.1:4840"\n[[devices.groups]]\n'
        f'tags = [{{ name = "pack_counter", node = "i=1" }}, {kg_line}]\n'
    )
    path = tmp_path / "line.toml"
    path.write_text(minimal_config_text(tmp_path / "s.db") + block + "\n" + checkweigher)
    devices = {d.id: d for d in load_config(path).devices}
    assert devices["vision1"].role == "label_scanner"
    cw = devices["cw9"]
    assert isinstance(cw, OpcUaDevice)
    assert cw.groups[0].tags[1].unit == "kg"


def test_the_commented_modbus_unit_examples_of_example_toml_load() -> None:
    example = (REPO / "config" / "example.toml").read_text(encoding="utf-8")
    lines = re.findall(r"^  # (\{ name = \"\w+\", [^}]*unit = .*\}),$", example, re.M)
    tags = [tomllib.loads(f"tag = {line}")["tag"] for line in lines if "address" in line]
    by_name = {t["name"]: t for t in tags}
    assert set(by_name) == {"T3", "net_weight"}
    common = {"kind": "modbus_tcp", "id": "d", "line": "L1", "host": "h"}
    probe = ModbusTcpDevice.model_validate(
        {**common, "role": "temperature_probe", "tags": [by_name["T3"]]}
    )
    assert probe.tags[0].unit == "degF"
    counter = {"name": "pack_counter", "address": 204, "type": "uint32"}
    cw = ModbusTcpDevice.model_validate(
        {**common, "role": "checkweigher", "tags": [by_name["net_weight"], counter]}
    )
    assert cw.tags[0].unit == "kg"
