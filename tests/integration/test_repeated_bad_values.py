"""A bad value re-reported at every sampling (NaN never equals itself, so a server reports
each write of it as a change) is stored once with a count, not once per sample: against a
real asyncua server."""

from __future__ import annotations

import asyncio
import math

from adapters.opcua.client import OpcUaAdapter
from gateway.core.clock import SystemClock
from tests.support.collector import Collector, running
from tests.support.opcua_harness import Simulator, probes
from tests.support.waiting import wait_for

REPORTS = 10


async def test_a_nan_reported_ten_times_is_one_rejection_with_a_count() -> None:
    async with Simulator() as sim:
        sink = Collector()
        adapter = OpcUaAdapter(probes(sim.endpoint), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sink.readings("P1")) == 1, what="initial reading")
            for _ in range(REPORTS):
                await sim.set_value("P1.Temperature", math.nan)
                await asyncio.sleep(0.1)  # each write its own notification
            await wait_for(
                lambda: adapter.repeated_rejections.suppressed == REPORTS - 1,
                what="every report of the NaN seen",
            )
            await sim.set_value("P1.Temperature", math.inf)  # another bad value ends the streak
            await wait_for(lambda: len(sink.rejected("P1")) == 3, what="summary and inf")
            await sim.set_value("P1.Temperature", 2.0)
            await wait_for(lambda: sink.readings("P1")[-1].celsius == 2.0, what="good again")
    first, summary, other = sink.rejected("P1")
    assert (first.raw, first.reason, first.detail) == ("nan", "non_finite", "")
    assert (summary.raw, summary.reason) == ("nan", "non_finite")
    assert summary.detail.startswith(f"repeated {REPORTS - 1} more time(s)")
    assert (other.raw, other.reason) == ("inf", "non_finite")
    assert adapter.interpreter.rejected["non_finite"] == REPORTS + 1, "every sample counted"
