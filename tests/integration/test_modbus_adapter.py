"""The Modbus adapter against a real pymodbus server (the project's ModbusSimulator).

Every test talks Modbus TCP over 127.0.0.1 on an ephemeral port; nothing in pymodbus is mocked.
The sink is a small in-memory collector (``RecordSink`` is our own seam), except for one test
that writes through the real SQLite store. Register words are literal hex (IEEE 754 / two's
complement worked out by hand), never produced by the codec under test.
Exception codes: MODBUS Application Protocol Specification V1.1b3 §7.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.modbus import ModbusAdapter, classify_exception
from gateway.config import ModbusRtuDevice, StoreSection
from gateway.core.backoff import Backoff
from gateway.core.clock import SystemClock
from gateway.core.codecs.registers import Table
from gateway.core.errors import (
    DeviceBusy,
    DeviceConfigError,
    DeviceFailure,
    DeviceUnreachable,
)
from gateway.core.link import LinkState
from gateway.core.records import (
    DeviceEvent,
    Record,
    TemperatureReading,
)
from gateway.store import Store
from tests.support.collector import Collector, HeldSink, running
from tests.support.modbus_harness import P3, TT, CountingSimulator, device, max_attempts, socket_fds
from tests.support.waiting import wait_for

FC_HOLDING, FC_INPUT = 3, 4  # MBAP v1.1b3 §6.3 / §6.4


# ----------------------------------------------------------------------------- decoding


def test_contiguous_tags_share_one_request_and_max_gap_merges() -> None:
    tags = [*TT, P3]
    adapter = ModbusAdapter(device(1502, tags), Collector(), SystemClock())
    assert adapter.blocks == [("holding", 100, 2), ("input", 0, 4)]
    spread = [TT[0], {**TT[2], "address": 3}]  # input 0 and 3: two unused registers between
    assert ModbusAdapter(device(1502, spread), Collector(), SystemClock()).blocks == [
        ("input", 0, 1),
        ("input", 3, 1),
    ]
    merged = ModbusAdapter(device(1502, spread, max_gap=2), Collector(), SystemClock())
    assert merged.blocks == [("input", 0, 4)]


def test_exception_codes_map_to_the_error_tree() -> None:
    expected = {
        0x01: DeviceConfigError,
        0x02: DeviceConfigError,
        0x03: DeviceConfigError,
        0x04: DeviceFailure,
        0x05: DeviceBusy,
        0x06: DeviceBusy,
        0x07: DeviceFailure,
        0x08: DeviceFailure,
        0x0A: DeviceUnreachable,
        0x0B: DeviceUnreachable,
        0x42: DeviceFailure,  # not defined by the spec
    }
    for code, cls in expected.items():
        error = classify_exception("d", code, "holding 0..1")
        assert type(error) is cls, code
        assert f"0x{code:02X}" in str(error)


async def test_temperatures_decode_end_to_end_one_request_per_block() -> None:
    async with CountingSimulator() as sim:
        # int16 tenths: -123 = 0xFF85 (-12.3 °C), 200 = 0x00C8, -210 = 0xFF2E, 0.
        sim.set_registers(Table.INPUT, 0, [0xFF85, 0x00C8, 0xFF2E, 0x0000])
        # float32 2.5 = 0x40200000; CDAB puts the low word first.
        sim.set_registers(Table.HOLDING, 100, [0x0000, 0x4020])
        sink = Collector()
        adapter = ModbusAdapter(device(sim.port, [*TT, P3]), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sink.readings("P3")) >= 5, what="five P3 readings")
            assert adapter.state is LinkState.UP
            assert adapter.last_error == ""
        assert {round(r.celsius, 6) for r in sink.readings("TT1")} == {-12.3}
        assert {round(r.celsius, 6) for r in sink.readings("TT2")} == {20.0}
        assert {round(r.celsius, 6) for r in sink.readings("TT3")} == {-21.0}
        assert {r.celsius for r in sink.readings("P3")} == {2.5}
        assert sink.readings("P3")[0].location == "line 2 product core"
        assert sink.readings("P3")[0].device == "dev1"
        assert sink.readings("P3")[0].line == "L1"
        # One request per block per cycle: all four probes in one FC04, P3 in one FC03.
        shapes = sim.shapes()
        assert set(shapes) == {(FC_HOLDING, 100, 2), (FC_INPUT, 0, 4)}
        assert abs(shapes[(FC_HOLDING, 100, 2)] - shapes[(FC_INPUT, 0, 4)]) <= 1
        # All tags of a cycle share the cycle's timestamp.
        cycle = {r.ts_us for r in sink.records if isinstance(r, TemperatureReading)}
        assert len(cycle) * 5 == len([r for r in sink.records if isinstance(r, TemperatureReading)])


async def test_polls_on_a_fixed_grid() -> None:
    async with CountingSimulator() as sim:
        sink = Collector()
        adapter = ModbusAdapter(device(sim.port, TT, poll_interval_ms=50), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sim.requests()) >= 12, what="a dozen polls")
        times = sim.requests()
        span = times[-1] - times[0]
        # 11 intervals of 50 ms: no drift accumulated from the time each cycle takes.
        assert span == pytest.approx(11 * 0.05, abs=0.03)


async def test_checkweigher_counter_gives_one_pack_per_increment_and_missed_packs() -> None:
    tags = [
        {"name": "net_weight", "address": 200, "type": "float32"},
        {"name": "gross_weight", "address": 202, "type": "float32"},
        {"name": "pack_counter", "address": 204, "type": "uint32"},
    ]
    async with CountingSimulator() as sim:
        # net 400.5 g = 0x43C84000, gross 420.0 g = 0x43D20000, counter 10.
        sim.set_registers(Table.HOLDING, 200, [0x43C8, 0x4000, 0x43D2, 0x0000, 0x0000, 0x000A])
        sink = Collector()
        adapter = ModbusAdapter(device(sim.port, tags, role="checkweigher"), sink, SystemClock())
        assert adapter.blocks == [("holding", 200, 6)]  # weights and counter read together
        async with running(adapter):
            await wait_for(lambda: bool(sink.events("pack_counter_baseline")), what="baseline")
            assert sink.events("pack_counter_baseline")[0].detail == {"counter": 10}
            assert sink.packs() == []
            # Pack 11: net 401.25 g = 0x43C8A000, gross 421.0 g = 0x43D28000.
            sim.set_registers(Table.HOLDING, 200, [0x43C8, 0xA000, 0x43D2, 0x8000, 0x0000, 0x000B])
            await wait_for(lambda: len(sink.packs()) == 1, what="pack 11")
            # Counter jumps 11 -> 14: packs 12 and 13 were missed.
            sim.set_registers(Table.HOLDING, 200, [0x43C8, 0x4000, 0x43D2, 0x0000, 0x0000, 0x000E])
            await wait_for(lambda: len(sink.packs()) == 2, what="pack 14")
            await asyncio.sleep(0.1)  # a few more cycles with the counter unchanged
        first, second = sink.packs()
        assert (first.pack_counter, first.net_g, first.gross_g) == (11, 401.25, 421.0)
        assert (second.pack_counter, second.net_g, second.gross_g) == (14, 400.5, 420.0)
        assert first.device == "dev1"
        assert first.line == "L1"
        missed = sink.events("missed_packs")
        assert [e.detail for e in missed] == [{"missed": 2, "previous": 11, "counter": 14}]
        assert len(sink.packs()) == 2  # an unchanged counter is not a pack


# ----------------------------------------------------------------------------- exception codes


@pytest.mark.parametrize("code", [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0A, 0x0B])
async def test_exception_code_handling(code: int) -> None:
    # Block order is holding (P3) then input (TT1): the faulty block is read first.
    async with CountingSimulator() as sim:
        sim.set_registers(Table.INPUT, 0, [0x0032])  # 5.0 °C
        sim.set_registers(Table.HOLDING, 100, [0x0000, 0x4020])  # 2.5 °C
        sink = Collector()
        dev = device(sim.port, [TT[0], P3], reconnect_min_s=0.2, reconnect_max_s=0.8)
        seed = 1000 + code
        adapter = ModbusAdapter(
            dev, sink, SystemClock(), config_retry_s=0.6, rng=random.Random(seed)
        )
        async with running(adapter):
            await wait_for(lambda: adapter.state is LinkState.UP and bool(sink.readings("P3")))
            sim.set_fault(100, 101, code)
            t0 = time.monotonic()
            mark = len(sink.records)

            def after() -> list[Record]:
                return sink.records[mark:]

            if code in (0x01, 0x02, 0x03):
                await wait_for(lambda: len(sim.requests(FC_INPUT, t0)) >= 10, what="10 cycles")
                # Refused as configured: asked once, not again every cycle.
                assert len(sim.requests(FC_HOLDING, t0)) == 1
                assert adapter.state is LinkState.DEGRADED
                assert "ILLEGAL" in adapter.last_error
                [event] = sink.events("config_error")
                assert event.detail["code"] == code
                assert event.detail["table"] == "holding"
                assert (event.detail["address"], event.detail["count"]) == (100, 2)
                assert event.detail["tags"] == ["P3"]
                # The other block goes on; P3 is reported bad once.
                assert len([r for r in after() if isinstance(r, TemperatureReading)]) >= 9
                assert [r.reason for r in sink.rejected("P3")] == ["quality_bad"]
                assert not any(
                    isinstance(r, TemperatureReading) and r.probe == "P3" for r in after()
                )
                # Retried only after config_retry_s (0.6 s here, 10 minutes by default):
                # still refused -> no second event, no second bad sample.
                await wait_for(lambda: len(sim.requests(FC_HOLDING, t0)) >= 2, what="rare retry")
                retry = sim.requests(FC_HOLDING, t0)
                assert retry[1] - retry[0] >= 0.6 - 0.02
                assert len(sink.events("config_error")) == 1
                assert len(sink.rejected("P3")) == 1
            elif code == 0x04:
                await wait_for(lambda: len(sim.requests(FC_HOLDING, t0)) >= 5, what="5 retries")
                times = sim.requests(FC_HOLDING, t0)
                gaps = [b - a for a, b in itertools.pairwise(times)]
                twin = Backoff(initial=0.2, maximum=0.8, rng=random.Random(seed))
                expected = [twin.next_delay() for _ in gaps]
                # Backed off with the device's Backoff, not polled every 20 ms.
                for gap, delay in zip(gaps, expected, strict=True):
                    assert gap >= delay - 0.015
                assert sum(gaps) > 0.2
                assert adapter.state is LinkState.DEGRADED
                assert "SERVER DEVICE FAILURE" in adapter.last_error
                # The rest of the cycle is not read while the device reports a failure.
                assert sim.requests(FC_INPUT, t0 + 0.05) == []
                assert sink.events("config_error") == []
                assert sink.events("link_down") == []
                assert [r.reason for r in sink.rejected("P3")] == ["quality_bad"]
                assert [r.reason for r in sink.rejected("TT1")] == ["quality_bad"]
            elif code in (0x05, 0x06):
                await wait_for(lambda: len(sim.requests(FC_INPUT, t0)) >= 10, what="10 cycles")
                # Busy: the block is asked again the next cycle, the others go on.
                holding, inputs = sim.requests(FC_HOLDING, t0), sim.requests(FC_INPUT, t0)
                assert len(holding) >= len(inputs) - 1
                assert adapter.state is LinkState.DEGRADED
                assert "BUSY" in adapter.last_error or "ACKNOWLEDGE" in adapter.last_error
                assert sink.events("config_error") == []
                assert sink.events("link_down") == []
                assert len(sink.readings("TT1")) >= 10
                # Bad once per episode, not one rejected input per cycle.
                assert [r.reason for r in sink.rejected("P3")] == ["quality_bad"]
            else:  # 0x0A, 0x0B: device offline behind a gateway
                await wait_for(lambda: adapter.state is LinkState.DOWN, what="DOWN")
                await wait_for(lambda: len(sim.requests(FC_HOLDING, t0)) >= 3, what="3 tries")
                times = sim.requests(FC_HOLDING, t0)
                # Skipped for recovery_time_s (0.3 s) between tries.
                assert all(b - a >= 0.3 - 0.02 for a, b in itertools.pairwise(times))
                [down] = sink.events("link_down")
                assert f"0x{code:02X}" in down.detail["error"]
                assert adapter.state is LinkState.DOWN
                assert sim.requests(FC_INPUT, t0 + 0.05) == []
                assert sink.events("link_up") == []

            sim.clear_faults()
            await wait_for(
                lambda: any(isinstance(r, TemperatureReading) and r.probe == "P3" for r in after()),
                what="P3 readings to resume",
            )
            await wait_for(lambda: adapter.state is LinkState.UP, what="UP again")
            if code in (0x0A, 0x0B):
                [up] = sink.events("link_up")
                assert up.detail["down_for_s"] >= 0.3
                assert adapter.reconnects == 1
                assert len(sink.events("link_down")) == 1
            else:
                assert sink.events("link_down") == []
                assert sink.events("link_up") == []


# ----------------------------------------------------------------------------- bad values


async def test_nan_inf_and_out_of_range_become_rejected_inputs_not_readings() -> None:
    tags = [
        {"name": "P8", "address": 200, "type": "float32"},
        {"name": "P9", "address": 202, "type": "float32"},
        {"name": "TT1", "table": "input", "address": 0, "type": "int16", "scale": 0.1,
         "min": -30, "max": 50},
        {"name": "TT2", "table": "input", "address": 1, "type": "int16", "scale": 0.1,
         "min": -30, "max": 50},
        {"name": "TT3", "table": "input", "address": 2, "type": "int16", "scale": 0.1,
         "min": -30, "max": 50},
    ]  # fmt: skip
    async with CountingSimulator() as sim:
        # float32 NaN = 0x7FC00000 and +inf = 0x7F800000 (ABCD).
        sim.set_registers(Table.HOLDING, 200, [0x7FC0, 0x0000, 0x7F80, 0x0000])
        # 100.0 °C (0x03E8) above max, -3276.8 °C (0x8000) below min, 5.0 °C (0x0032) fine.
        sim.set_registers(Table.INPUT, 0, [0x03E8, 0x8000, 0x0032])
        sink = Collector()
        adapter = ModbusAdapter(device(sim.port, tags), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sink.readings("TT3")) >= 3, what="three good cycles")
        readings = {r.probe for r in sink.records if isinstance(r, TemperatureReading)}
        assert readings == {"TT3"}
        assert {r.reason for r in sink.rejected("P8")} == {"non_finite"}
        assert {r.reason for r in sink.rejected("P9")} == {"non_finite"}
        assert sink.rejected("P8")[0].raw == "nan"
        assert sink.rejected("P9")[0].raw == "inf"
        assert {r.reason for r in sink.rejected("TT1")} == {"out_of_range"}
        assert {r.reason for r in sink.rejected("TT2")} == {"out_of_range"}
        assert "above max 50" in sink.rejected("TT1")[0].detail
        assert "below min -30" in sink.rejected("TT2")[0].detail
        assert adapter.rejected["non_finite"] >= 6
        assert adapter.rejected["out_of_range"] >= 6


async def test_undecodable_tag_is_bad_once_and_degrades_the_device() -> None:
    tags = [TT[0], {"name": "S1", "address": 200, "type": "string", "length": 2}]
    async with CountingSimulator() as sim:
        sim.set_registers(Table.INPUT, 0, [0x0032])
        sim.set_registers(Table.HOLDING, 200, [0xFFFF])  # not ASCII
        sink = Collector()
        adapter = ModbusAdapter(device(sim.port, tags), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sink.readings("TT1")) >= 5, what="cycles")
            assert adapter.state is LinkState.DEGRADED
            assert "non-ASCII" in adapter.last_error
        [rejected] = sink.rejected("S1")
        assert rejected.reason == "quality_bad"
        assert "non-ASCII" in rejected.detail


async def test_tick_reports_a_stuck_value_once() -> None:
    tags = [{**TT[0], "stuck_after_s": 0.1}]
    async with CountingSimulator() as sim:
        sim.set_registers(Table.INPUT, 0, [0x0032])
        sink = Collector()
        adapter = ModbusAdapter(device(sim.port, tags), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: bool(sink.events("stuck_value")), what="stuck_value")
            await asyncio.sleep(0.1)
        [stuck] = sink.events("stuck_value")
        assert stuck.detail == {"tag": "TT1", "value": 5.0}
        assert {r.reason for r in sink.rejected("TT1")} == {"stuck"}


# ----------------------------------------------------------------------------- outages


async def test_server_restart_recovers_with_bounded_reconnects() -> None:
    async with CountingSimulator() as sim:
        sim.set_registers(Table.INPUT, 0, [0x0032])
        sink = Collector()
        adapter = ModbusAdapter(device(sim.port, [TT[0]]), sink, SystemClock())
        async with running(adapter):
            await wait_for(lambda: len(sink.readings("TT1")) >= 3, what="readings")
            attempts_before = adapter.connect_attempts
            await sim.stop()
            t0 = time.monotonic()
            await wait_for(lambda: adapter.state is LinkState.DOWN, what="DOWN")
            # Let it retry a few times against the closed port.
            await wait_for(lambda: adapter.connect_attempts >= attempts_before + 4, what="retries")
            readings_during = len(sink.readings("TT1"))
            elapsed = time.monotonic() - t0
            attempts = adapter.connect_attempts - attempts_before
            # Never a busy loop: no more attempts than the backoff's smallest delays allow.
            assert attempts <= max_attempts(elapsed, 0.05, 0.4) + 1, (attempts, elapsed)
            [down] = sink.events("link_down")
            assert "cannot connect" in down.detail["error"] or "lost" in down.detail["error"]
            assert adapter.last_error
            sim.set_registers(Table.INPUT, 0, [0x0064])  # 10.0 °C after the restart
            await sim.start()
            await wait_for(lambda: bool(sink.events("link_up")), what="link_up")
            await wait_for(
                lambda: any(r.celsius == 10.0 for r in sink.readings("TT1")), what="new readings"
            )
            assert adapter.state is LinkState.UP
        [up] = sink.events("link_up")
        assert up.detail["down_for_s"] > 0
        assert len(sink.events("link_down")) == 1
        assert adapter.reconnects == 1
        assert len(sink.readings("TT1")) > readings_during
        kinds = [r.kind for r in sink.records if isinstance(r, DeviceEvent)]
        assert kinds.count("link_up") == 2, "the first connection and the recovery"
        assert (
            kinds.index("link_up")
            < kinds.index("link_down")
            < len(kinds) - 1 - kinds[::-1].index("link_up")
        )


async def test_silent_server_goes_down_without_stalling_and_cancels_cleanly() -> None:
    tasks_before = asyncio.all_tasks()
    sockets_before = socket_fds()
    async with CountingSimulator() as slow, CountingSimulator() as healthy:
        for sim in (slow, healthy):
            sim.set_registers(Table.INPUT, 0, [0x0032])
            sim.set_registers(Table.HOLDING, 100, [0x0000, 0x4020])
        slow_sink, healthy_sink = Collector(), Collector()
        slow_adapter = ModbusAdapter(
            device(slow.port, [TT[0], P3], id="slow", recovery_time_s=0.4), slow_sink, SystemClock()
        )
        healthy_adapter = ModbusAdapter(
            device(healthy.port, [TT[0], P3], id="healthy"), healthy_sink, SystemClock()
        )
        async with running(slow_adapter) as slow_task, running(healthy_adapter) as healthy_task:
            await wait_for(lambda: bool(slow_sink.readings("P3") and healthy_sink.readings("P3")))
            slow.silent = True
            t0 = time.monotonic()
            attempts0 = slow_adapter.connect_attempts
            healthy0 = len(healthy_sink.readings("TT1"))
            await wait_for(lambda: slow_adapter.state is LinkState.DOWN, what="DOWN")
            await wait_for(lambda: slow_adapter.connect_attempts >= attempts0 + 2, what="2 retries")
            # Wait for the next request to arrive, so the cancel below hits a pending request.
            seen = len(slow.requests(since=t0))
            await wait_for(lambda: len(slow.requests(since=t0)) > seen, what="another request")
            elapsed = time.monotonic() - t0

            # One timeout per try: the block after the silent one is not asked (no stall).
            silent_requests = slow.requests(since=t0)
            attempts = slow_adapter.connect_attempts - attempts0
            assert len(silent_requests) <= attempts + 1
            assert slow.requests(FC_INPUT, t0) == []
            # Skipped for recovery_time_s (0.4 s) between tries (plus the 0.2 s timeout).
            gaps = [b - a for a, b in itertools.pairwise(silent_requests)]
            assert gaps
            assert all(gap >= 0.4 + 0.2 - 0.03 for gap in gaps), gaps
            [down] = slow_sink.events("link_down")
            assert "no valid reply" in down.detail["error"]
            assert slow_adapter.state is LinkState.DOWN
            assert slow_sink.events("link_up") == []
            # The other device kept its 20 ms polls meanwhile.
            assert len(healthy_sink.readings("TT1")) - healthy0 >= elapsed / 0.02 * 0.5
            assert healthy_adapter.state is LinkState.UP

            # Cancelling returns promptly even with a request outstanding.
            started = time.monotonic()
            slow_task.cancel()
            healthy_task.cancel()
            results = await asyncio.gather(slow_task, healthy_task, return_exceptions=True)
            # Promptly: far sooner than the device would have answered (it never does), and
            # loose enough for a busy CI machine.
            assert time.monotonic() - started < 1.0
            assert all(isinstance(r, asyncio.CancelledError) for r in results)

    def strays() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() - tasks_before if not t.done()}

    await wait_for(lambda: not strays(), timeout=2.0, what="no tasks left behind")
    await wait_for(lambda: socket_fds() <= sockets_before, timeout=2.0, what="sockets closed")


async def test_cancellation_at_any_moment_stops_run() -> None:
    # pymodbus waits with asyncio.wait_for, which on Python 3.11 can swallow a cancellation
    # that arrives together with the reply; run() must stop anyway, every time.
    async with CountingSimulator() as sim:
        sim.set_registers(Table.INPUT, 0, [0x0032])
        rng = random.Random(5)
        for _ in range(30):
            adapter = ModbusAdapter(
                device(sim.port, TT, poll_interval_ms=10), Collector(), SystemClock()
            )
            task = asyncio.create_task(adapter.run())
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=1.0)
            assert done == {task}, "run() ignored its cancellation"
            assert task.cancelled()


async def test_disabled_device_stays_disabled_until_cancelled() -> None:
    adapter = ModbusAdapter(device(1502, [TT[0]], enabled=False), Collector(), SystemClock())
    assert adapter.state is LinkState.DISABLED
    async with running(adapter) as task:
        await asyncio.sleep(0.05)
        assert not task.done()
        assert adapter.state is LinkState.DISABLED
        assert adapter.connect_attempts == 0


async def test_rtu_device_without_serial_port_is_reported() -> None:
    rtu = ModbusRtuDevice.model_validate(
        {
            "kind": "modbus_rtu",
            "id": "rtu1",
            "line": "L1",
            "role": "temperature_probe",
            "serial_port": "/dev/ttyLINESIDE-NONE",
            "timeout_s": 0.2,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.2,
            "tags": [TT[0]],
        }
    )
    sink = Collector()
    adapter = ModbusAdapter(rtu, sink, SystemClock())
    async with running(adapter):
        await wait_for(lambda: adapter.state is LinkState.DOWN, what="DOWN")
    assert len(sink.events("link_down")) == 1


# ----------------------------------------------------------------------------- real store


async def test_packs_and_temperatures_land_in_sqlite(tmp_path: Path) -> None:
    cw_tags = [
        {"name": "net_weight", "address": 200, "type": "float32"},
        {"name": "gross_weight", "address": 202, "type": "float32"},
        {"name": "pack_counter", "address": 204, "type": "uint32"},
    ]
    clock = SystemClock()
    # commit_max_rows=1: Store.submit() only wakes an idle committer once commit_max_rows
    # records are pending, so with the default a quiet committer would never commit.
    config = StoreSection(path=tmp_path / "s.db", commit_interval_ms=20, commit_max_rows=1)
    async with CountingSimulator() as sim, Store(config, clock) as store:
        committer = asyncio.create_task(store.run_committer())
        sim.set_registers(Table.HOLDING, 200, [0x43C8, 0x4000, 0x43D2, 0x0000, 0x0000, 0x0001])
        sim.set_registers(Table.INPUT, 0, [0xFF85])  # -12.3 °C
        sim.set_registers(Table.HOLDING, 100, [0x0000, 0x7FC0])  # NaN, CDAB
        slow: dict[str, Any] = {"poll_interval_ms": 100}
        cw = ModbusAdapter(
            device(sim.port, cw_tags, role="checkweigher", id="cw2", **slow), store, clock
        )
        probes = ModbusAdapter(device(sim.port, [TT[0], P3], id="tt", **slow), store, clock)

        async def count(sql: str) -> int:
            return int((await store.fetchall(sql))[0][0])

        async def at_least(sql: str, n: int) -> bool:
            return await count(sql) >= n

        baseline = "SELECT count(*) FROM device_events WHERE kind = 'pack_counter_baseline'"
        async with running(cw), running(probes):
            await wait_for(lambda: at_least(baseline, 1), timeout=5)
            # Two packs: counter 1 -> 2 (401.25 g / 421.0 g), then 2 -> 3 (400.5 g / 420.0 g).
            sim.set_registers(Table.HOLDING, 200, [0x43C8, 0xA000, 0x43D2, 0x8000, 0x0000, 0x0002])
            await wait_for(lambda: at_least("SELECT count(*) FROM packs", 1), timeout=5)
            sim.set_registers(Table.HOLDING, 200, [0x43C8, 0x4000, 0x43D2, 0x0000, 0x0000, 0x0003])
            await wait_for(lambda: at_least("SELECT count(*) FROM packs", 2), timeout=5)
            await wait_for(lambda: at_least("SELECT count(*) FROM temperatures", 3), timeout=5)
        await store.stop_committer()
        await committer
        rows = await store.fetchall(
            "SELECT device, line, pack_counter, net_g, gross_g FROM packs ORDER BY seq"
        )
        assert rows == [("cw2", "L1", 2, 401.25, 421.0), ("cw2", "L1", 3, 400.5, 420.0)]
        temps = await store.fetchall("SELECT DISTINCT device, probe, celsius FROM temperatures")
        assert [(d, p, round(c, 3)) for d, p, c in temps] == [("tt", "TT1", -12.3)]
        # The NaN probe is in rejected_inputs, never a NULL or NaN temperature.
        rejected = await store.fetchall(
            "SELECT DISTINCT source, tag, raw, reason FROM rejected_inputs WHERE tag = 'P3'"
        )
        assert rejected == [("tt", "P3", "nan", "non_finite")]
        assert await count("SELECT count(*) FROM temperatures WHERE probe = 'P3'") == 0
        outbox = await count("SELECT count(*) FROM outbox")
        assert outbox >= await count("SELECT count(*) FROM packs") + 3


async def test_no_poll_while_the_sink_has_no_room() -> None:
    """Backpressure: a cycle starts only when the store has room, so fast polls of many tags
    cannot fill the gateway's memory while it is behind."""
    async with CountingSimulator() as sim:
        sink = HeldSink()
        adapter = ModbusAdapter(device(sim.port, TT), sink, SystemClock())
        async with running(adapter):
            await asyncio.wait_for(sink.asked.wait(), 10)
            assert sim.requests() == [], "held before its first poll"
            sink.room.set()
            await wait_for(lambda: len(sink.readings()) >= 3 * len(TT), what="three polls")
        assert sink.waits >= 3, "room is asked before every poll"
