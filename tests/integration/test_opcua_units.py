"""OPC UA tags in the rules' units: scale, offset, unit and the server's EngineeringUnits.

A real asyncua server whose checkweigher reports kilograms (EngineeringUnits KGM) and whose
probe reports degrees Fahrenheit (FAH). Configured with ``unit``, the values arrive in grams
and degrees Celsius; configured without, the adapter refuses to read them and says which
node, which unit the server gives and which one it expected (docs/devices.md, "Units and
scale").
"""

from __future__ import annotations

from typing import Any

from asyncua import ua
from asyncua.server.server import Server

from adapters.opcua.client import OpcUaAdapter
from gateway.config import OpcUaDevice
from gateway.core.clock import SystemClock
from gateway.core.link import LinkState
from tests.support.collector import Collector, running
from tests.support.opcua_harness import device
from tests.support.ua_server import eu, ua_server
from tests.support.waiting import wait_for

NS_URI = "urn:lineside:test:units"


async def _line(server: Server) -> None:
    """CW1 (kg, a tare in 0.1 g steps without a unit) and probe P1 (°F)."""
    ns = await server.register_namespace(NS_URI)
    cw = await server.nodes.objects.add_object(f"ns={ns};s=CW1", f"{ns}:CW1")
    net = await cw.add_variable(
        f"ns={ns};s=CW1.Net", f"{ns}:Net", ua.Variant(0.0, ua.VariantType.Double)
    )
    await net.add_property(f"ns={ns};s=CW1.Net.EU", "EngineeringUnits", eu("KGM", "kg"))
    await cw.add_variable(f"ns={ns};s=CW1.Tare", f"{ns}:Tare", ua.Variant(0, ua.VariantType.Int32))
    await cw.add_variable(
        f"ns={ns};s=CW1.Count", f"{ns}:Count", ua.Variant(0, ua.VariantType.UInt32)
    )
    probe = await server.nodes.objects.add_object(f"ns={ns};s=P1", f"{ns}:P1")
    temp = await probe.add_variable(
        f"ns={ns};s=P1.Temp", f"{ns}:Temp", ua.Variant(41.0, ua.VariantType.Double)
    )
    await temp.add_property(f"ns={ns};s=P1.Temp.EU", "EngineeringUnits", eu("FAH", "°F"))


def _checkweigher(endpoint: str, **net: Any) -> OpcUaDevice:
    tags = [
        {"name": "pack_counter", "node": f"nsu={NS_URI};s=CW1.Count"},
        {"name": "net_weight", "node": f"nsu={NS_URI};s=CW1.Net", **net},
    ]
    if net:
        tags.append({"name": "tare", "node": f"nsu={NS_URI};s=CW1.Tare", "scale": 0.1})
    group = {"name": "cw", "publishing_interval_ms": 50, "sampling_interval_ms": 0, "tags": tags}
    return device(endpoint, "checkweigher", [group], id="CW1")


def _probe(endpoint: str, **temp: Any) -> OpcUaDevice:
    tags = [{"name": "P1", "node": f"nsu={NS_URI};s=P1.Temp", **temp}]
    group = {"name": "t", "mode": "poll", "poll_interval_ms": 50, "tags": tags}
    return device(endpoint, "temperature_probe", [group], id="PT")


async def _write(server: Server, name: str, value: object, kind: ua.VariantType) -> None:
    ns = await server.get_namespace_index(NS_URI)
    node = server.get_node(f"ns={ns};s={name}")
    await node.write_value(ua.Variant(value, kind))


async def test_kilograms_with_unit_kg_are_stored_in_grams_and_scale_applies() -> None:
    async with ua_server() as (server, endpoint):
        await _line(server)
        await server.start()
        sink = Collector()
        adapter = OpcUaAdapter(_checkweigher(endpoint, unit="kg"), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: bool(sink.events("pack_counter_baseline")), what="baseline")
            await _write(server, "CW1.Net", 0.2515, ua.VariantType.Double)
            await _write(server, "CW1.Tare", 125, ua.VariantType.Int32)
            await _write(server, "CW1.Count", 1, ua.VariantType.UInt32)
            await wait_for(lambda: len(sink.packs()) == 1, what="pack 1")
        (pack,) = sink.packs()
        assert (pack.net_g, pack.tare_g) == (251.5, 12.5)
        assert not sink.rejected()


async def test_kilograms_read_as_grams_are_refused_naming_node_and_units() -> None:
    async with ua_server() as (server, endpoint):
        await _line(server)
        await server.start()
        sink = Collector()
        adapter = OpcUaAdapter(_checkweigher(endpoint), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: bool(sink.events("link_down")), what="refusal")
        (down,) = sink.events("link_down")
        assert down.detail["cause"] == "config"
        error = str(down.detail["error"])
        assert f"nsu={NS_URI};s=CW1.Net" in error
        assert "kg (UNECE KGM)" in error
        assert "read as g" in error
        assert 'set unit = "kg"' in error
        assert adapter.state is LinkState.DOWN
        assert not sink.packs()


async def test_fahrenheit_is_refused_as_celsius_and_converted_with_unit_degf() -> None:
    async with ua_server() as (server, endpoint):
        await _line(server)
        await server.start()
        refused = Collector()
        adapter = OpcUaAdapter(_probe(endpoint), refused, SystemClock())
        async with running(adapter):
            await wait_for(lambda: bool(refused.events("link_down")), what="refusal")
        error = str(refused.events("link_down")[0].detail["error"])
        assert "°F (UNECE FAH)" in error
        assert "read as degC" in error
        assert not refused.readings()

        sink = Collector()
        adapter = OpcUaAdapter(_probe(endpoint, unit="°F", min=-40, max=60), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: bool(sink.readings("P1")), what="reading at 41 °F")
            await _write(server, "P1.Temp", 0.5, ua.VariantType.Double)
            await wait_for(lambda: sink.readings("P1")[-1].celsius != 5.0, what="0.5 °F")
        celsius = [r.celsius for r in sink.readings("P1")]
        assert celsius[0] == 5.0
        assert celsius[-1] == -17.5
        assert not sink.rejected()
