"""OPC UA node ids in the ``nsu=`` form, and what a wrong one says (docs/devices.md).

Against the project's simulator: an ``nsu=`` id finds its namespace on the server; a node
the server does not have is reported with both forms of a node id, so the engineer learns
the stable one; a namespace the server lacks is a config error naming it.
"""

from __future__ import annotations

import logging

import pytest

from adapters.opcua.client import OpcUaAdapter
from adapters.simulators.opcua_server import NAMESPACE_URI
from gateway.config import OpcUaDevice
from gateway.core.clock import SystemClock
from tests.support.collector import Collector, running
from tests.support.opcua_harness import Simulator, device
from tests.support.waiting import wait_for


def _probes(endpoint: str, *nodes: str) -> OpcUaDevice:
    tags = [{"name": f"P{i}", "node": node} for i, node in enumerate(nodes, start=1)]
    group = {"name": "t", "publishing_interval_ms": 50, "sampling_interval_ms": 0, "tags": tags}
    return device(endpoint, "temperature_probe", [group], id="PT")


async def test_an_unknown_node_is_reported_with_the_nsu_form(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="adapters.opcua.client")
    async with Simulator() as sim:
        await sim.set_value("P1.Temperature", 4.5)
        config = _probes(
            sim.endpoint, f"nsu={NAMESPACE_URI};s=P1.Temperature", f"nsu={NAMESPACE_URI};s=Nope"
        )
        sink = Collector()
        async with running(OpcUaAdapter(config, sink, SystemClock())):
            await wait_for(lambda: bool(sink.readings("P1")), what="a reading through nsu=")
            await wait_for(lambda: bool(sink.events("config_error")), what="the refused node")
    assert sink.readings("P1")[0].celsius == 4.5
    (refused,) = [r for r in caplog.records if "refused monitoring tag P2" in r.getMessage()]
    assert "nsu=<namespace URI>;s=<name>" in refused.getMessage()


async def test_a_namespace_the_server_lacks_is_named() -> None:
    async with Simulator() as sim:
        config = _probes(sim.endpoint, "nsu=urn:not-here;s=P1.Temperature")
        sink = Collector()
        async with running(OpcUaAdapter(config, sink, SystemClock())):
            await wait_for(lambda: bool(sink.events("link_down")), what="the refusal")
    (down,) = sink.events("link_down")
    assert down.detail["cause"] == "config"
    assert "the server has no namespace 'urn:not-here'" in str(down.detail["error"])
