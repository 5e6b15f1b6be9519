"""``lineside browse`` against a hostile OPC UA server (a real asyncua server).

Browse names, node ids and unit names are the server's text. They must not drive the
operator's terminal, and the printed ``[[devices]]`` fragment must load as exactly the
device it shows: a name holding a quote or a newline must not end a TOML comment or
string and define keys of its own. A cyclic address space must stop at ``--depth`` and
``--max-nodes``.
"""

from __future__ import annotations

import json
from pathlib import Path

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds

from gateway.config import OpcUaDevice, load_config
from tests.integration.test_browse import _lineside
from tests.support.configs import minimal_config_text
from tests.support.ua_server import eu, ua_server

VENDOR = "urn:vendor:hostile"
INJECT = '"\n[store]\npath = "/tmp/evil.db"\n# \x1b[2J\x9b31m\u202e'


async def _hostile_plant(server: Server) -> None:
    vendor = await server.register_namespace(VENDOR)
    cw = await server.nodes.objects.add_object(f"ns={vendor};s=CW", f"{vendor}:CW{INJECT}")
    await cw.add_variable(
        f"ns={vendor};s=CW.PackCounter",
        f"{vendor}:PackCounter",
        ua.Variant(0, ua.VariantType.UInt32),
    )
    weight = await cw.add_variable(
        f"ns={vendor};s=CW.NetWeight",
        f"{vendor}:NetWeight",
        ua.Variant(0.0, ua.VariantType.Double),
    )
    await weight.add_property(f"ns={vendor};s=CW.EU", "EngineeringUnits", eu("GRM", f"g{INJECT}"))


def _no_control_characters(text: str) -> None:
    for bad in ("\x1b", "\x9b", "\u202e", "\x7f"):
        assert bad not in text, (bad, text)


async def test_hostile_names_are_escaped_and_cannot_inject_config_keys(tmp_path: Path) -> None:
    async with ua_server() as (server, endpoint):
        await _hostile_plant(server)
        await server.start()
        code, out, err = await _lineside("browse", endpoint, "--line", "L1")
        json_code, json_out, _ = await _lineside("browse", endpoint, "--json")
    assert (code, err) == (0, ""), (out, err)
    assert json_code == 0
    _no_control_characters(json_out)
    assert any(INJECT in n["path"][0] for n in json.loads(json_out)["nodes"])
    _no_control_characters(out)
    fragment = out.split("(docs/devices.md) ----\n", 1)[1]
    store = tmp_path / "store.db"
    path = tmp_path / "line.toml"
    path.write_text(minimal_config_text(store) + "\n" + fragment)
    config = load_config(path)
    assert config.store.path == store
    [device] = config.devices
    assert isinstance(device, OpcUaDevice)
    tags = {t.name: t.node for g in device.groups for t in g.tags}
    assert set(tags) == {"pack_counter", "net_weight"}
    assert tags["pack_counter"] == f"nsu={VENDOR};s=CW.PackCounter"


async def test_a_cyclic_address_space_stops_at_the_bounds() -> None:
    async with ua_server() as (server, endpoint):
        vendor = await server.register_namespace(VENDOR)
        a = await server.nodes.objects.add_object(f"ns={vendor};s=A", f"{vendor}:A")
        b = await a.add_object(f"ns={vendor};s=B", f"{vendor}:B")
        # B organizes A again: a loop a naive walk follows for ever.
        await b.add_reference(a.nodeid, ObjectIds.Organizes)
        for i in range(50):
            await b.add_variable(f"ns={vendor};s=B.V{i}", f"{vendor}:V{i}", 0.0)
        await server.start()
        code, out, _ = await _lineside("browse", endpoint, "--depth", "40", "--max-nodes", "20")
    assert code == 0, out
    assert "stopped at --max-nodes" in out
    assert len([line for line in out.splitlines() if "nsu=" in line]) <= 20
