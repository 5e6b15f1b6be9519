"""A Modbus checkweigher's status word, program register and reject counter, end to end.

Against a real pymodbus server (the project's simulator with the test's own registers mapped)
and the real SQLite store: the packs stored carry the program, catch-weight mode and
accepted/rejected state the device wrote, and the changeover bit gives changeover events.
Register words are literal hex (IEEE 754 float32 worked out by hand).

The device's map (holding registers, 0-based)::

    200-201 float32 net weight        206 status word: bit 0 stable, bit 1 accepted,
    202-203 float32 gross weight                       bit 2 catch-weight mode, bit 3 changeover
    204-205 uint32 pack counter       207 uint16 program number
                                      208-209 uint32 reject counter
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from adapters.modbus import ModbusAdapter
from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.core.codecs.registers import Table
from gateway.core.records import RecordFlag
from gateway.store import Store
from tests.support.collector import running
from tests.support.modbus_harness import CountingSimulator, device
from tests.support.waiting import wait_for

STABLE, ACCEPTED, CATCH_WEIGHT, CHANGEOVER = 0x0001, 0x0002, 0x0004, 0x0008
FC_HOLDING = 3

# float32 big-endian words (ABCD)
G250_0 = [0x437A, 0x0000]
G251_5 = [0x437B, 0x8000]
G180_0 = [0x4334, 0x0000]
G412_25 = [0x43CE, 0x2000]
G252_0 = [0x437C, 0x0000]
G270_0 = [0x4387, 0x0000]

WEIGHTS = [
    {"name": "net_weight", "address": 200, "type": "float32"},
    {"name": "gross_weight", "address": 202, "type": "float32"},
    {"name": "pack_counter", "address": 204, "type": "uint32"},
]
STATUS_BITS = [
    {"name": "catch_weight_mode", "address": 206, "bit": 2},
    {"name": "changeover", "address": 206, "bit": 3},
]
ACCEPTED_BIT = {"name": "accepted", "address": 206, "bit": 1}
PROGRAM = {"name": "program", "address": 207}
REJECTS = {"name": "reject_counter", "address": 208, "type": "uint32"}


def words(net: list[int], counter: int, status: int, program: int, rejects: int) -> list[int]:
    """Registers 200-209 as the device writes them for one pack (in one image)."""
    gross = [net[0], net[1]]  # the test's gross equals its net: no tare in play here
    return [*net, *gross, counter >> 16, counter & 0xFFFF, status, program, 0, rejects]


@contextlib.asynccontextmanager
async def checkweigher(
    tmp_path: Path, tags: list[dict[str, Any]]
) -> AsyncIterator[tuple[CountingSimulator, ModbusAdapter, Store]]:
    clock = SystemClock()
    config = StoreSection(path=tmp_path / "s.db", commit_interval_ms=20, commit_max_rows=1)
    async with CountingSimulator() as sim, Store(config, clock) as store:
        sim.map_registers(Table.HOLDING, 207, 3)
        committer = asyncio.create_task(store.run_committer())
        cw = ModbusAdapter(
            device(sim.port, tags, role="checkweigher", id="cw1", programs={"12": "41240"}),
            store,
            clock,
        )
        try:
            yield sim, cw, store
        finally:
            await store.stop_committer()
            await committer


async def count(store: Store, sql: str) -> int:
    return int((await store.fetchall(sql))[0][0])


def _at_least(store: Store, sql: str, n: int):
    async def check() -> bool:
        return await count(store, sql) >= n

    return check


async def write_and_wait(store: Store, sim: CountingSimulator, registers: list[int], sql: str):
    before = await count(store, sql)
    sim.set_registers(Table.HOLDING, 200, registers)

    async def moved() -> bool:
        return await count(store, sql) > before

    await wait_for(moved, timeout=5, what=sql)


PACKS = "SELECT count(*) FROM packs"
CHANGEOVERS = "SELECT count(*) FROM device_events WHERE kind = 'changeover'"
BASELINE = "SELECT count(*) FROM device_events WHERE kind = 'pack_counter_baseline'"


async def test_status_word_program_and_changeover_reach_the_stored_packs(tmp_path: Path) -> None:
    tags = [*WEIGHTS, ACCEPTED_BIT, *STATUS_BITS, PROGRAM, REJECTS]
    async with checkweigher(tmp_path, tags) as (sim, cw, store):
        # Every tag, the three bits of the status word included, in one request.
        assert cw.blocks == [("holding", 200, 10)]
        sim.set_registers(Table.HOLDING, 200, words(G250_0, 10, STABLE | ACCEPTED, 12, 3))
        async with running(cw):
            await wait_for(_at_least(store, BASELINE, 1), timeout=5, what="baseline")
            ok, fixed_cw = STABLE | ACCEPTED, STABLE | ACCEPTED | CATCH_WEIGHT
            await write_and_wait(store, sim, words(G251_5, 11, ok, 12, 3), PACKS)
            await write_and_wait(store, sim, words(G180_0, 12, STABLE, 12, 4), PACKS)
            await write_and_wait(store, sim, words(G412_25, 13, fixed_cw, 7, 4), PACKS)
            # Changeover on: no pack, one event; a pack during it; changeover off.
            await write_and_wait(
                store, sim, words(G412_25, 13, fixed_cw | CHANGEOVER, 7, 4), CHANGEOVERS
            )
            await write_and_wait(store, sim, words(G252_0, 14, ok | CHANGEOVER, 12, 4), PACKS)
            await write_and_wait(store, sim, words(G252_0, 14, ok, 12, 4), CHANGEOVERS)
        shapes = sim.shapes()
        assert set(shapes) == {(FC_HOLDING, 200, 10)}, "the status word is read once per cycle"
        packs = await store.fetchall(
            "SELECT pack_counter, net_g, accepted, program, catch_weight, flags "
            "FROM packs ORDER BY seq"
        )
        events = await store.fetchall(
            "SELECT device, line, detail FROM device_events WHERE kind = 'changeover' ORDER BY seq"
        )
    assert [tuple(p) for p in packs] == [
        (11, 251.5, 1, "12", 0, 0),
        (12, 180.0, 0, "12", 0, 0),
        (13, 412.25, 1, "7", 1, 0),
        (14, 252.0, 1, "12", 0, 0),
    ]
    assert [(d, line, json.loads(detail)) for d, line, detail in events] == [
        ("cw1", "L1", {"source": "device", "active": True}),
        ("cw1", "L1", {"source": "device", "active": False}),
    ]


async def test_reject_counter_alone_tells_rejects_and_flags_what_it_cannot_pair(
    tmp_path: Path,
) -> None:
    tags = [*WEIGHTS, *STATUS_BITS, PROGRAM, REJECTS]
    async with checkweigher(tmp_path, tags) as (sim, cw, store):
        sim.set_registers(Table.HOLDING, 200, words(G250_0, 10, STABLE, 12, 3))
        async with running(cw):
            await wait_for(_at_least(store, BASELINE, 1), timeout=5, what="baseline")
            await write_and_wait(store, sim, words(G251_5, 11, STABLE, 12, 3), PACKS)
            await write_and_wait(store, sim, words(G180_0, 12, STABLE, 12, 4), PACKS)
            # Three packs in one poll (two missed), one reject among them: which one?
            await write_and_wait(store, sim, words(G270_0, 15, STABLE, 12, 5), PACKS)
            await write_and_wait(store, sim, words(G180_0, 16, STABLE, 12, 6), PACKS)
        packs = await store.fetchall(
            "SELECT pack_counter, net_g, accepted, flags FROM packs ORDER BY seq"
        )
        reasons = await store.fetchall(
            "SELECT detail FROM device_events WHERE kind = 'pack_values_uncertain'"
        )
    uncertain = int(RecordFlag.VALUES_UNCERTAIN)
    assert [tuple(p) for p in packs] == [
        (11, 251.5, 1, 0),
        (12, 180.0, 0, 0),
        (15, 270.0, None, uncertain),
        (16, 180.0, 0, 0),
    ]
    [(detail,)] = reasons
    assert "1 of the last 3 packs were rejected" in json.loads(detail)["reasons"][0]
    assert cw.uncertain_packs == 1
