"""``lineside browse`` against a real asyncua server laid out like an OPC 40200 checkweigher.

The server has a ``CheckweigherType`` in the OPC 40200 namespace
(``http://opcfoundation.org/UA/Scales/V2/``) and an instance with ``RegisteredWeight`` in
kilograms (EngineeringUnits KGM) and an ``ItemCount``, beside a vendor label scanner and a
chill-room temperature. The listing names the 40200 type and the units; the printed
fragment loads through the config loader and, run, stores a pack in grams.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

from asyncua import ua
from asyncua.server.server import Server

from adapters.opcua.client import OpcUaAdapter
from adapters.simulators.opcua_server import APPLICATION_URI
from gateway.cli import main
from gateway.config import OpcUaDevice, load_config
from gateway.core.clock import SystemClock
from tests.support.collector import Collector, running
from tests.support.configs import minimal_config_text
from tests.support.opcua_harness import GATEWAY_URI, Simulator, make_certificate
from tests.support.ua_server import eu, ua_server
from tests.support.waiting import wait_for

SCALES = "http://opcfoundation.org/UA/Scales/V2/"
VENDOR = "urn:vendor:line1"


async def _plant(server: Server) -> None:
    scales = await server.register_namespace(SCALES)
    vendor = await server.register_namespace(VENDOR)
    base = server.nodes.base_object_type
    cw_type = await base.add_object_type(scales, "CheckweigherType")
    item_type = await base.add_object_type(scales, "WeighingItemType")
    objects = server.nodes.objects
    cw = await objects.add_object(f"ns={vendor};s=CW", f"{vendor}:Checkweigher1", cw_type.nodeid)
    weight = await cw.add_variable(
        f"ns={vendor};s=CW.RegisteredWeight",
        f"{scales}:RegisteredWeight",
        ua.Variant(0.0, ua.VariantType.Double),
    )
    await weight.add_property(f"ns={vendor};s=CW.RW.EU", "EngineeringUnits", eu("KGM", "kg"))
    await cw.add_variable(
        f"ns={vendor};s=CW.ItemCount", f"{scales}:ItemCount", ua.Variant(0, ua.VariantType.UInt32)
    )
    item = await cw.add_object(f"ns={vendor};s=CW.LastItem", f"{scales}:LastItem", item_type.nodeid)
    await item.add_variable(
        f"ns={vendor};s=CW.LastItem.MeasuredWeight",
        f"{scales}:MeasuredWeight",
        ua.Variant(0.0, ua.VariantType.Double),
    )
    scanner = await objects.add_object(f"ns={vendor};s=SC", f"{vendor}:Scanner1")
    await scanner.add_variable(
        f"ns={vendor};s=SC.Barcode", f"{vendor}:Barcode", ua.Variant("", ua.VariantType.String)
    )
    room = await objects.add_object(f"ns={vendor};s=CR", f"{vendor}:ChillRoom")
    temp = await room.add_variable(
        f"ns={vendor};i=7001", f"{vendor}:Temperature", ua.Variant(3.5, ua.VariantType.Double)
    )
    await temp.add_property(f"ns={vendor};s=CR.EU", "EngineeringUnits", eu("CEL", "°C"))


async def _lineside(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(list(args))

    # The command runs its own event loop; the server keeps serving on this one.
    code = await asyncio.to_thread(call)
    return code, out.getvalue(), err.getvalue()


async def test_browse_recognises_opc_40200_and_prints_a_fragment_that_loads_and_reads(
    tmp_path: Path,
) -> None:
    async with ua_server() as (server, endpoint):
        await _plant(server)
        await server.start()
        code, out, err = await _lineside("browse", endpoint, "--line", "L1")
        assert (code, err) == (0, "")
        assert "Checkweigher1  [OPC 40200 CheckweigherType]" in out
        assert (
            f"Checkweigher1.RegisteredWeight  Double  [kg]  nsu={VENDOR};s=CW.RegisteredWeight"
            in out
        )
        assert f"ChillRoom.Temperature  Double  [°C]  nsu={VENDOR};i=7001" in out
        assert "Server" not in out.split("# ----")[0]

        fragment = out.split("(docs/devices.md) ----\n", 1)[1]
        path = tmp_path / "line.toml"
        path.write_text(minimal_config_text(tmp_path / "store.db") + "\n" + fragment)
        config = load_config(path)
        devices = {d.id: d for d in config.devices}
        assert {d.role for d in devices.values()} == {
            "checkweigher",
            "label_scanner",
            "temperature_probe",
        }
        cw = devices["checkweigher1"]
        assert isinstance(cw, OpcUaDevice)
        tags = {t.name: t for g in cw.groups for t in g.tags}
        assert set(tags) == {"pack_counter", "net_weight"}
        assert tags["net_weight"].unit == "kg"
        assert tags["pack_counter"].node == f"nsu={VENDOR};s=CW.ItemCount"
        scanner = devices["scanner1"]
        assert isinstance(scanner, OpcUaDevice)
        assert [t.name for g in scanner.groups for t in g.tags] == ["barcode"]

        # The fragment, run: a pack of 0.2515 kg is stored as 251.5 g.
        fast = cw.model_copy(update={"reconnect_min_s": 0.05, "reconnect_max_s": 0.3})
        sink = Collector()
        async with running(OpcUaAdapter(fast, sink, SystemClock())):
            await wait_for(lambda: bool(sink.events("pack_counter_baseline")), what="baseline")
            vendor = await server.get_namespace_index(VENDOR)
            await server.get_node(f"ns={vendor};s=CW.RegisteredWeight").write_value(
                ua.Variant(0.2515, ua.VariantType.Double)
            )
            await server.get_node(f"ns={vendor};s=CW.ItemCount").write_value(
                ua.Variant(1, ua.VariantType.UInt32)
            )
            await wait_for(lambda: len(sink.packs()) == 1, what="pack 1")
        assert sink.packs()[0].net_g == 251.5


async def test_browse_is_bounded_and_speaks_json() -> None:
    async with ua_server() as (server, endpoint):
        await _plant(server)
        await server.start()
        code, out, _ = await _lineside("browse", endpoint, "--max-nodes", "3", "--json")
    assert code == 0
    parsed = json.loads(out)
    assert len(parsed["nodes"]) == 3
    assert parsed["truncated"] is True


async def test_browse_of_nothing_names_the_endpoint() -> None:
    async with ua_server() as (_, endpoint):
        pass  # never started: nothing listens
    code, out, err = await _lineside("browse", endpoint, "--timeout", "1")
    assert code == 1
    assert out == ""
    assert endpoint in err


def _secure_config(tmp_path: Path, endpoint: str, pinned: Path, client: tuple[Path, Path]) -> Path:
    path = tmp_path / f"secure-{pinned.stem}.toml"
    device = (
        '[[devices]]\nid = "cw1"\nkind = "opcua"\nline = "L1"\nrole = "checkweigher"\n'
        f'endpoint = "{endpoint}"\ntimeout_s = 2.0\n'
        '[devices.security]\npolicy = "Basic256Sha256"\n'
        f'certificate = "{client[0]}"\nprivate_key = "{client[1]}"\n'
        f'server_certificate = "{pinned}"\n'
        '[[devices.groups]]\ntags = [{ name = "pack_counter", node = "ns=2;s=CW1.PackCounter" },'
        ' { name = "net_weight", node = "ns=2;s=CW1.LastNetWeight" }]\n'
    )
    path.write_text(minimal_config_text(tmp_path / "store.db") + device)
    return path


async def test_browse_uses_the_security_of_a_configured_device(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "server", APPLICATION_URI, server=True)
    other, _ = make_certificate(tmp_path, "impostor", APPLICATION_URI, server=True)
    client = make_certificate(tmp_path, "gateway", GATEWAY_URI, server=False)
    async with Simulator(certificate=cert, private_key=key) as sim:
        good = _secure_config(tmp_path, sim.endpoint, cert, client)
        code, out, err = await _lineside("browse", "--config", str(good), "--device", "cw1")
        assert (code, err) == (0, "")
        assert "CW1.LastNetWeight  Double  [g]" in out
        assert "# checkweigher recognised by variable names" in out
        # Pinned to another server certificate: refused, although the server also offers
        # no security, so the device's security settings were used.
        wrong = _secure_config(tmp_path, sim.endpoint, other, client)
        code, out, err = await _lineside("browse", "--config", str(wrong), "--device", "cw1")
    assert code == 1
    assert out == ""
    assert err.startswith("lineside browse: device cw1:"), err
    assert f"is {other} this server's certificate" in err
