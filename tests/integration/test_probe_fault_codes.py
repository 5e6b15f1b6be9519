"""A temperature transmitter sending its documented fault code (raw 32767) for 30 s.

A real pymodbus server, the Modbus adapter, the gateway's Pipeline, RulesEngine and SQLite
store; time is a manual clock advanced one second per poll, so the 30 s take a second or
two and nothing depends on the machine's speed. The code must give exactly one
``haccp_sensor_fault`` (no breach for 3276.7 °C, no out-of-range rejections, no "no data"
on top) that clears when a real temperature comes back, survive a restart's replay, and the
temperatures stored must be at their physical precision (6.8, not 6.800000000000001).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from adapters.modbus import ModbusAdapter
from gateway.config import ProbeRules, RulesSection, StoreSection
from gateway.core.clock import ManualClock
from gateway.core.codecs.registers import Table
from gateway.pipeline import Pipeline
from gateway.rules_engine import RulesEngine
from gateway.rules_replay import rebuild_rules
from gateway.runs import RunIndex
from gateway.store import Store
from tests.support.collector import running
from tests.support.modbus_harness import CountingSimulator, device
from tests.support.waiting import wait_for

FAULT_S = 30
"""How long the transmitter sends its fault code (manual seconds)."""
FC_INPUT = 4

T1 = {
    "name": "T1",
    "table": "input",
    "address": 0,
    "type": "int16",
    "scale": 0.1,
    "min": -40,
    "max": 60,
    "fault_codes": [32767, -32768],
    "location": "product core",
}
RULES = RulesSection(
    probes=(ProbeRules(device="tt1", probe="T1", upper_c=8.0, debounce_s=10, no_data_s=10),)
)


class Gateway:
    """What run_gateway wires for one probe: adapter -> pipeline -> store, with the rules."""

    def __init__(self, sim: CountingSimulator, store: Store, clock: ManualClock) -> None:
        self.sim, self.store, self.clock = sim, store, clock
        self.engine = RulesEngine(RULES, RunIndex(), clock)
        self.pipeline = Pipeline(store, RunIndex(), rules=self.engine)
        # A wall-clock timeout far above any loopback reply: the test counts one stored row
        # per streak of the fault code, and a link drop (a poll slower than the harness's
        # 0.2 s on a loaded CI machine) rightly starts a new streak after the reconnect.
        self.adapter = ModbusAdapter(
            device(sim.port, [T1], id="tt1", timeout_s=5.0), self.pipeline, clock
        )

    async def seconds(self, n: int) -> None:
        """Let ``n`` manual seconds pass, one poll (and one rules tick) each."""
        for _ in range(n):
            self.clock.advance(1.0)
            polled = len(self.sim.requests(FC_INPUT))

            def read_after_the_step(before: int = polled) -> bool:
                # Two requests: the cycle running at the step may have read before it.
                return len(self.sim.requests(FC_INPUT)) >= before + 2

            await wait_for(read_after_the_step, 5, "a poll after the clock step")
            self.pipeline.submit_all(self.engine.tick())

    async def rows(self, sql: str) -> list[tuple[object, ...]]:
        return [tuple(r) for r in await self.store.fetchall(sql)]

    async def any(self, sql: str) -> bool:
        return bool(await self.rows(sql))


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    clock = ManualClock()
    config = StoreSection(path=tmp_path / "s.db", commit_interval_ms=20, commit_max_rows=1)
    async with CountingSimulator() as sim, Store(config, clock) as store:
        committer = asyncio.create_task(store.run_committer())
        try:
            yield Gateway(sim, store, clock)
        finally:
            await store.stop_committer()
            await committer


ALERTS = "SELECT rule, state FROM alerts ORDER BY seq"


async def test_a_fault_code_for_30_s_is_one_sensor_fault_cleared_by_a_valid_value(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path) as gw:
        gw.sim.set_registers(Table.INPUT, 0, [0x0044])  # 68 = 6.8 °C
        async with running(gw.adapter):
            await wait_for(lambda: gw.any("SELECT celsius FROM temperatures"), 5, "a reading")
            gw.sim.set_registers(Table.INPUT, 0, [0x7FFF])  # 32767: the sensor-break code
            await gw.seconds(FAULT_S)
            await wait_for(lambda: gw.any(ALERTS), 5, "the fault raised")

            # A restart now rebuilds the fault from the stored rejected input.
            restarted = RulesEngine(RULES, RunIndex(), gw.clock)
            await rebuild_rules(gw.store, restarted, RunIndex(), RULES, gw.clock)
            assert restarted.probes[("tt1", "T1")][1].faults == {"device_fault"}

            gw.sim.set_registers(Table.INPUT, 0, [0x0046])  # 70 = 7.0 °C
            await gw.seconds(2)

            async def cleared() -> bool:
                return ("haccp_sensor_fault", "cleared") in await gw.rows(ALERTS)

            await wait_for(cleared, 5, "the fault cleared")
        alerts = await gw.rows(ALERTS)
        rejected = await gw.rows("SELECT raw, reason FROM rejected_inputs ORDER BY seq")
        celsius = await gw.rows("SELECT DISTINCT celsius FROM temperatures ORDER BY seq")
        [(detail,)] = await gw.rows(
            "SELECT detail FROM alerts WHERE state = 'raised' AND rule = 'haccp_sensor_fault'"
        )
    assert alerts == [("haccp_sensor_fault", "raised"), ("haccp_sensor_fault", "cleared")]
    raised = json.loads(str(detail))
    assert (raised["faults"], raised["fault_code"]) == (["device_fault"], "32767")
    # One stored row for the whole streak (repeats are counted, not stored), never
    # out_of_range, although 3276.7 °C is far above the tag's max of 60.
    assert rejected == [("32767", "sensor_fault_code")]
    assert gw.adapter.rejected["sensor_fault_code"] >= FAULT_S
    assert [repr(c) for (c,) in celsius] == ["6.8", "7.0"]
