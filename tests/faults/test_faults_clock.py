"""The wall clock stepped backwards and forwards (docs/reference/reliability.md §7 row 14).

``faketime`` is not a dependency: the clock is the gateway's own seam (:mod:`gateway.core.clock`).
The stepping clock below keeps the real monotonic clock and adds an offset to the real wall
clock that the test moves, as an NTP step does; the event loop's timers are untouched, as
they are by a real step.

Expected: the step is noticed and recorded (a ``clock_step`` event), records stamped around
it are flagged ``TIME_UNCERTAIN``, and nothing else changes: no reconnects or retries (no
retry storm), no record dropped from the store or the outbox (no purge), every record still
reaches the warehouse exactly once.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.simulators.scenario import ScenarioName
from gateway.clockwatch import ClockStep, ClockWatch
from gateway.config import load_config
from gateway.core.clock import ManualClock
from gateway.core.records import RecordFlag
from gateway.service import run_gateway
from gateway.status import GatewayStatus
from sync.ingest import IngestService
from sync.mqtt_uplink import MqttUplink
from tests.support.mosquitto import Mosquitto
from tests.support.sim_site import simulated_site
from tests.support.sync_harness import (
    check_conservation,
    drain_in_process,
    ingest_settings,
    start_ingest,
    stop_task,
)
from tests.support.waiting import wait_for

UNCERTAIN = int(RecordFlag.TIME_UNCERTAIN)
HOUR_S = 3600
DAY_S = 24 * HOUR_S


# ----------------------------------------------------------------------------- unit


def test_steps_are_told_from_slews_and_flag_a_window() -> None:
    manual = ManualClock()
    steps: list[ClockStep] = []
    watch = ClockWatch(manual, threshold_s=2.0, uncertain_s=60.0, on_step=steps.append)
    watch.wall_us()
    for _ in range(100):  # NTP slewing: a little off every second, never a step
        manual.advance(1.0)
        manual.step_wall(0.0005)
        watch.wall_us()
    manual.step_wall(1.5)  # below the threshold
    watch.wall_us()
    assert steps == []
    assert not watch.time_uncertain()

    before = manual.wall_us()
    manual.step_wall(-HOUR_S)
    assert watch.wall_us() == before - HOUR_S * 1_000_000
    (back,) = steps
    assert back.step_s == -HOUR_S
    assert back.before_us == before
    assert back.after_us == before - HOUR_S * 1_000_000
    # Backwards: the repeated hour of timestamps is uncertain, not just one minute.
    assert back.uncertain_s == HOUR_S
    manual.advance(HOUR_S - 1)
    assert watch.time_uncertain()
    manual.advance(2)
    assert not watch.time_uncertain()

    manual.step_wall(DAY_S)
    watch.wall_us()
    assert steps[-1].step_s == DAY_S
    assert steps[-1].uncertain_s == 60.0
    assert watch.time_uncertain()
    manual.advance(61)
    watch.wall_us()
    assert not watch.time_uncertain()
    assert len(steps) == 2
    assert watch.monotonic() == manual.monotonic()


def test_a_step_is_noticed_once_however_often_the_clock_is_read() -> None:
    manual = ManualClock()
    watch = ClockWatch(manual)
    watch.wall_us()
    manual.step_wall(-30)
    for _ in range(50):
        watch.wall_us()
        manual.advance(0.01)
    assert [s.step_s for s in watch.steps] == [-30]


# ----------------------------------------------------------------------------- the site


class SteppingClock:
    """The real clocks, with a wall-clock offset the test steps."""

    def __init__(self) -> None:
        self.offset_us = 0

    def wall_us(self) -> int:
        return time.time_ns() // 1000 + self.offset_us

    def monotonic(self) -> float:
        return time.monotonic()

    def step(self, seconds: float) -> None:
        self.offset_us += round(seconds * 1_000_000)


def committed(db_path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def count(db_path: Path, sql: str, *args: object) -> int:
    return int(committed(db_path, sql, *args)[0][0])


@pytest.mark.slow
async def test_clock_steps_back_and_forward_flag_records_and_change_nothing_else(
    tmp_path: Path, broker: Mosquitto
) -> None:
    warehouse_path = tmp_path / "warehouse.db"
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    ingest_task = await start_ingest(ingest)
    clock = SteppingClock()
    mqtt = f'\n[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
    try:
        async with simulated_site(
            tmp_path, speed=4, scenario=ScenarioName.NORMAL, extra_config=mqtt, start_gateway=False
        ) as handle:
            ready: asyncio.Future[GatewayStatus] = asyncio.get_running_loop().create_future()
            handle.task = asyncio.create_task(
                run_gateway(
                    load_config(handle.config_path),
                    clock=clock,
                    stop=handle.stop,
                    on_status=ready.set_result,
                )
            )
            status = await asyncio.wait_for(ready, 30)
            db = handle.db_path
            uplink = status.uplink
            assert isinstance(uplink, MqttUplink)

            def packs() -> int:
                return count(db, "SELECT count(*) FROM packs")

            await wait_for(lambda: packs() >= 10 and uplink.stats.records_acked >= 10, 30)
            connects, attempts = uplink.stats.connects, uplink.stats.connect_attempts
            baseline = packs()

            clock.step(-HOUR_S)  # NTP steps the clock back an hour
            await wait_for(lambda: packs() >= baseline + 8, 30)
            after_back = packs()
            clock.step(DAY_S + HOUR_S)  # ... and then a day ahead of where it was
            await wait_for(lambda: packs() >= after_back + 8, 30)
            acked = uplink.stats.records_acked
            await wait_for(lambda: uplink.stats.records_acked > acked + 20, 30)

            # No retry storm: not one reconnect of the uplink or of any device.
            assert uplink.stats.connects == connects
            assert uplink.stats.connect_attempts == attempts
            assert uplink.stats.batches_resent == 0
            downs = count(db, "SELECT count(*) FROM device_events WHERE kind = 'link_down'")
            assert downs == 0
        # Stopped: deliver what it recorded on the way out.
        await drain_in_process(db, broker, "demo-site", "demo-gw1")
    finally:
        await stop_task(ingest_task)

    steps = committed(
        db, "SELECT detail, flags FROM device_events WHERE kind = 'clock_step' ORDER BY seq"
    )
    assert len(steps) == 2, steps
    sizes = [json.loads(str(detail))["step_s"] for detail, _ in steps]
    assert abs(sizes[0] + HOUR_S) < 5
    assert abs(sizes[1] - (DAY_S + HOUR_S)) < 5
    assert all(int(str(flags)) & UNCERTAIN for _, flags in steps)

    # Records in order of their sequence number: clean before the first step, flagged
    # after it (the hour back keeps them flagged), nothing reordered or re-stamped.
    first, second = (
        int(str(seq))
        for (seq,) in committed(
            db, "SELECT seq FROM device_events WHERE kind = 'clock_step' ORDER BY seq"
        )
    )
    rows = [
        (int(str(seq)), int(str(ts)), int(str(flags)))
        for seq, ts, flags in committed(db, "SELECT seq, ts_us, flags FROM packs ORDER BY seq")
    ]
    before = [r for r in rows if r[0] < first]
    between = [r for r in rows if first < r[0] < second]
    after = [r for r in rows if r[0] > second]
    assert before, "packs before the first step"
    assert between, "packs between the steps"
    assert after, "packs after the second step"
    assert not any(flags & UNCERTAIN for _, _, flags in before)
    assert all(flags & UNCERTAIN for _, _, flags in between + after)
    # Stamped with the wall time as it was: the hour back is kept, so is the day ahead.
    last_before = max(ts for _, ts, _ in before)
    assert max(ts for _, ts, _ in between) < last_before - (HOUR_S - 120) * 1_000_000
    assert min(ts for _, ts, _ in after) > last_before + (DAY_S - 120) * 1_000_000

    # The probes' timers follow the steps: no "no data" fault from a day of false silence.
    faults = committed(db, "SELECT alert_id FROM alerts WHERE rule = 'haccp_sensor_fault'")
    assert faults == [], faults

    # No purge: every committed record reached the warehouse exactly once.
    total = check_conservation(db, "demo-gw1", warehouse_path)
    assert total > len(rows)
    assert ingest.warehouse.stats.inserted == total
