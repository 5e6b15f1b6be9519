"""OPC UA: bits of an integer status variable, a program number and the changeover level.

Against the project's asyncua simulator. Its checkweigher has no status word, so the test
maps one onto ``CW1.LabelSequence`` (a UInt32 it writes freely): bit 0 rejected, bit 2
catch-weight mode, bit 3 changeover. ``CW1.NominalWeight`` (a Double) stands in for the
program number. Both modes: subscriptions (changeover by its own notifications) and polling
(changeover with every poll).
"""

from __future__ import annotations

import pytest

from adapters.opcua.client import OpcUaAdapter
from gateway.core.clock import SystemClock
from tests.support.collector import Collector, running
from tests.support.opcua_harness import Simulator, device
from tests.support.waiting import wait_for

REJECTED, CATCH_WEIGHT, CHANGEOVER = 0b0001, 0b0100, 0b1000
STATUS = "ns=2;s=CW1.LabelSequence"


def checkweigher(endpoint: str, mode: str):
    tags = [
        {"name": "pack_counter", "node": "ns=2;s=CW1.PackCounter"},
        {"name": "net_weight", "node": "ns=2;s=CW1.LastNetWeight"},
        {"name": "program", "node": "ns=2;s=CW1.NominalWeight"},
        {"name": "rejected", "node": STATUS, "bit": 0},
        {"name": "catch_weight_mode", "node": STATUS, "bit": 2},
        {"name": "changeover", "node": STATUS, "bit": 3},
    ]
    group = {"name": "cw", "mode": mode, "publishing_interval_ms": 50, "tags": tags}
    group |= {"sampling_interval_ms": 0, "poll_interval_ms": 50}
    return device(endpoint, "checkweigher", [group], id="CW1")


async def write_pack(sim: Simulator, counter: int, net: float, status: int, program: int):
    await sim.set_value("CW1.LastNetWeight", net)
    await sim.set_value("CW1.NominalWeight", float(program))
    await sim.set_value("CW1.LabelSequence", status)
    await sim.set_value("CW1.PackCounter", counter)


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
async def test_status_bits_program_and_changeover(mode: str) -> None:
    async with Simulator() as sim:
        await sim.set_value("CW1.LabelSequence", 0)
        sink = Collector()
        adapter = OpcUaAdapter(checkweigher(sim.endpoint, mode), sink, SystemClock())

        def changeovers() -> list[object]:
            return [e.detail["active"] for e in sink.events("changeover")]

        async with running(adapter):
            await wait_for(lambda: bool(sink.events("pack_counter_baseline")), what="baseline")
            await write_pack(sim, 1, 180.0, REJECTED | CATCH_WEIGHT, 12)
            await wait_for(lambda: len(sink.packs()) == 1, what="pack 1")
            await sim.set_value("CW1.LabelSequence", CHANGEOVER)
            await wait_for(lambda: changeovers() == [True], what="changeover on")
            await write_pack(sim, 2, 251.5, CHANGEOVER, 13)
            await wait_for(lambda: len(sink.packs()) == 2, what="pack 2")
            await sim.set_value("CW1.LabelSequence", 0)
            await wait_for(lambda: changeovers() == [True, False], what="changeover off")
        packs = [
            (p.pack_counter, p.net_g, p.accepted, p.catch_weight, p.program) for p in sink.packs()
        ]
        assert packs == [(1, 180.0, False, True, "12"), (2, 251.5, True, False, "13")]
        assert changeovers() == [True, False]
        assert all(e.detail["source"] == "device" for e in sink.events("changeover"))
        assert not sink.rejected()
