"""Modbus tags with ``unit`` against a real pymodbus server (the project's ModbusSimulator).

A checkweigher whose registers hold kilograms as float32 and a probe reporting °F are stored
in grams and degrees Celsius (docs/devices.md, "Units and scale"). Register words are
literal hex (IEEE 754 worked out by hand), never produced by the codec under test.
"""

from __future__ import annotations

from adapters.modbus import ModbusAdapter
from gateway.core.clock import SystemClock
from gateway.core.codecs.registers import Table
from tests.support.collector import Collector, running
from tests.support.modbus_harness import CountingSimulator, device
from tests.support.waiting import wait_for


async def test_a_float32_in_kg_is_stored_in_grams() -> None:
    tags = [
        {"name": "net_weight", "address": 200, "type": "float32", "unit": "kg", "max": 1000},
        {"name": "pack_counter", "address": 202, "type": "uint32"},
    ]
    async with CountingSimulator() as sim:
        # net 0.4005 kg = 0x3ECD0E56, counter 10.
        sim.set_registers(Table.HOLDING, 200, [0x3ECD, 0x0E56, 0x0000, 0x000A])
        sink = Collector()
        adapter = ModbusAdapter(device(sim.port, tags, role="checkweigher"), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: bool(sink.events("pack_counter_baseline")), what="baseline")
            # Pack 11: net 0.40125 kg = 0x3ECD70A4 (max = 1000 is in grams: 401.25 passes).
            sim.set_registers(Table.HOLDING, 200, [0x3ECD, 0x70A4, 0x0000, 0x000B])
            await wait_for(lambda: len(sink.packs()) == 1, what="pack 11")
        [pack] = sink.packs()
        assert (pack.pack_counter, pack.net_g) == (11, 401.25)
        assert sink.rejected() == []


async def test_a_fahrenheit_probe_is_stored_in_celsius() -> None:
    tags = [
        # int16 tenths of °F: 383 = 0x017F is 38.3 °F, 3.5 °C.
        {
            "name": "P1",
            "table": "input",
            "address": 0,
            "type": "int16",
            "scale": 0.1,
            "unit": "°F",
            "min": -10,
            "max": 10,
        },
        # float32 41.0 °F = 0x42240000 is 5.0 °C.
        {"name": "P2", "table": "input", "address": 1, "type": "float32", "unit": "degF"},
    ]
    async with CountingSimulator() as sim:
        sim.set_registers(Table.INPUT, 0, [0x017F, 0x4224, 0x0000])
        sink = Collector()
        adapter = ModbusAdapter(device(sim.port, tags), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sink.readings("P2")) >= 2, what="two P2 readings")
        assert {r.celsius for r in sink.readings("P1")} == {3.5}
        assert {r.celsius for r in sink.readings("P2")} == {5.0}
        assert sink.rejected() == []
