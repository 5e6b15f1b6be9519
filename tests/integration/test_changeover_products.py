"""Issue 16: a run of two products with a changeover, every pack judged as the product it is.

A real gateway (``run_gateway`` in this process, its ERP the project's simulated ERP) reads a
Modbus TCP checkweigher on a real pymodbus server (the project's simulator with the test's
own registers) on line L3. The run packs 200 packs of a 400 g fixed-weight product, then
changes over and packs 200 packs of a catch-weight product, whose labels carry an indicator-9
GTIN. The changeover is told three ways, one per test:

* the device's status word: a changeover bit, its nominal register going to 0 and its
  catch-weight mode bit;
* only its program number (mapped to the PLUs in the device's ``programs``);
* nothing on the device at all: the product comes from each pack's label (a TCP scanner).

In every case the catch-weight packs have no ℮ record and no giveaway finding, the
fixed-weight packer's record covers exactly the fixed-weight packs, and the run report has
one line per product with the right figures.

Registers (holding, 0-based)::

    300-301 float32 net weight       304 status: bit 1 accepted, bit 2 catch-weight mode,
    302-303 uint32 pack counter                  bit 3 changeover
    305 uint16 program number        306 uint16 nominal (g)    307 uint16 label number
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.erp.simulator import ErpSimulator
from adapters.simulators import ScannerSimulator
from gateway.config import load_config
from gateway.control import send_command
from gateway.core.codecs.gs1 import encode_element_string, gtin_check_digit
from gateway.core.codecs.registers import Table
from gateway.report import build_report
from tests.support.modbus_harness import CountingSimulator
from tests.support.running_gateway import gateway_in_process
from tests.support.waiting import wait_for_value

pytestmark = pytest.mark.slow

FIXED_PACKS = 200
CATCH_PACKS = 200
ACCEPTED, CATCH_WEIGHT, CHANGEOVER = 0x0002, 0x0004, 0x0008
RUN_NUMBER = "R-L3-CHANGEOVER"
BATCH = "NO-SAL-L3-B01"


def gtin(body: str) -> str:
    return body + str(gtin_check_digit(body))


FIXED_GTIN = gtin("0501234500042")
CATCH_GTIN = gtin("9501234500049")  # indicator 9: a variable-measure trade item


def fixed_weight(i: int) -> float:
    return 401.0 + (i % 7) * 0.5  # 401.0 .. 404.0 g, mean 402.5 g


def catch_weight(i: int) -> float:
    return 520.0 + (i % 40) * 4.25  # 520 .. 685.75 g


def float32_words(value: float) -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


def erp_run(now: datetime) -> dict[str, object]:
    return {
        "RunNumber": RUN_NUMBER,
        "Line": "L3",
        "BatchCodes": [BATCH],
        "Description": "SALMON FILLETS AND FAMILY PACKS",
        "Products": [
            {
                "PLU": "42400",
                "Description": "GG SALMON FILLETS 400G",
                "NominalWeight": 400,
                "Tier": "GG",
                "CatchWeight": 0,
                "GTIN": FIXED_GTIN,
            },
            {
                "PLU": "49001",
                "Description": "SALMON FAMILY PACK",
                "NominalWeight": None,
                "Tier": "GG",
                "CatchWeight": 1,
                "GTIN": CATCH_GTIN,
            },
        ],
        "RawMaterialKg": 400.0,
        "PackDate": now.astimezone(ZoneInfo("Europe/London")).date().isoformat(),
        "ShelfLifeAdjust": 0,
        "PlannedStart": now - timedelta(minutes=30),
        "PlannedEnd": now + timedelta(hours=4),
        "ActualStart": now - timedelta(minutes=20),
        "ActualEnd": None,
        "Status": "Running",
        "Updated": now - timedelta(minutes=20),
    }


@dataclass(frozen=True)
class Way:
    """How the device tells the product (the tags it has, the values it writes)."""

    name: str
    tags: tuple[str, ...]
    programs: dict[str, str]
    scanner: bool = False


DEVICE_BITS = Way("status word", ("accepted", "catch_weight_mode", "changeover", "nominal"), {})
PROGRAM = Way("program number", ("accepted", "program"), {"1": "42400", "2": "49001"})
LABEL = Way("label only", ("accepted", "label_sequence"), {}, scanner=True)

TAG_LINES = {
    "accepted": '{ name = "accepted", table = "holding", address = 304, bit = 1 }',
    "catch_weight_mode": (
        '{ name = "catch_weight_mode", table = "holding", address = 304, bit = 2 }'
    ),
    "changeover": '{ name = "changeover", table = "holding", address = 304, bit = 3 }',
    "program": '{ name = "program", table = "holding", address = 305, type = "uint16" }',
    "nominal": '{ name = "nominal_weight", table = "holding", address = 306, type = "uint16" }',
    "label_sequence": (
        '{ name = "label_sequence", table = "holding", address = 307, type = "uint16" }'
    ),
}


def config_text(db: Path, erp: str, modbus_port: int, scanner_port: int | None, way: Way) -> str:
    tags = ",\n  ".join(
        [
            '{ name = "net_weight", table = "holding", address = 300, type = "float32", '
            "min = 0, max = 5000 }",
            '{ name = "pack_counter", table = "holding", address = 302, type = "uint32" }',
            *(TAG_LINES[t] for t in way.tags),
        ]
    )
    programs = "".join(f'"{k}" = "{v}", ' for k, v in way.programs.items()).rstrip(", ")
    text = f"""
[gateway]
id = "gw-l3"
site = "test"
log_format = "plain"
log_level = "warning"

[store]
path = "{db}"
commit_interval_ms = 20

[[lines]]
id = "L3"

[erp]
kind = "http"
url = "{erp}"
poll_interval_s = 1

[[devices]]
id = "cw3"
kind = "modbus_tcp"
line = "L3"
role = "checkweigher"
host = "127.0.0.1"
port = {modbus_port}
unit_id = 1
poll_interval_ms = 20
{f"programs = {{ {programs} }}" if programs else ""}
tags = [
  {tags},
]
"""
    if scanner_port is not None:
        text += f"""
[[devices]]
id = "scan3"
kind = "scanner_tcp"
line = "L3"
role = "label_scanner"
host = "127.0.0.1"
port = {scanner_port}
"""
    return text


def label(n: int, product_gtin: str, grams: int, pack_date: date) -> bytes:
    return encode_element_string(
        [
            ("01", product_gtin),
            ("10", BATCH),
            ("13", pack_date.strftime("%y%m%d")),
            ("17", (pack_date + timedelta(days=9)).strftime("%y%m%d")),
            ("21", str(n)),
            ("3103", f"{grams:06d}"),
        ]
    ).encode()


def query(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn, conn:
        return conn.execute(sql, args).fetchall()


async def stored(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    return await asyncio.to_thread(query, db, sql, *args)


DECIDED_BY_LABEL = (
    "SELECT (SELECT count(*) FROM packs WHERE product_source = 'label') + "
    "(SELECT count(*) FROM device_events WHERE kind = 'pack_product' "
    "AND json_extract(detail, '$.source') = 'label')"
)


def at_least(n: int) -> Callable[[list[tuple[Any, ...]]], bool]:
    return lambda rows: int(rows[0][0]) >= n


class Checkweigher:
    """The test's side of the device: writes one pack's registers, counter with them."""

    def __init__(self, sim: CountingSimulator, way: Way) -> None:
        self.sim = sim
        self.way = way
        self.counter = 0

    def write(self, net: float, *, catch: bool, changeover: bool = False) -> None:
        self.counter += 1
        status = ACCEPTED
        if catch and "catch_weight_mode" in self.way.tags:
            status |= CATCH_WEIGHT
        if changeover:
            status |= CHANGEOVER
        program = (2 if catch else 1) if "program" in self.way.tags else 0
        nominal = 0 if catch or "nominal" not in self.way.tags else 400
        self.sim.set_registers(
            Table.HOLDING,
            300,
            [
                *float32_words(net),
                self.counter >> 16,
                self.counter & 0xFFFF,
                status,
                program,
                nominal,
                self.counter,
            ],
        )


async def run_line(tmp_path: Path, way: Way) -> tuple[Path, int]:
    db = tmp_path / "lineside.db"
    config = tmp_path / "lineside.toml"
    now = datetime.now(UTC)
    pack_date = now.astimezone(ZoneInfo("Europe/London")).date()  # the ERP's zone
    async with (
        ErpSimulator() as erp,
        CountingSimulator() as sim,
        ScannerSimulator(drive=False) as scanner,
    ):
        sim.map_registers(Table.HOLDING, 300, 8)
        erp.add_run(erp_run(now))
        config.write_text(
            config_text(db, erp.url, sim.port, scanner.port if way.scanner else None, way)
        )
        device = Checkweigher(sim, way)
        device.write(0.0, catch=False)  # the counter's baseline
        async with gateway_in_process(config):
            if way.scanner:
                await scanner.wait_for_clients(1)
            await wait_for_value(
                lambda: stored(db, "SELECT count(*) FROM runs WHERE run_number = ?", RUN_NUMBER),
                lambda rows: rows[0][0] == 1,
                what="the run from the ERP",
            )
            await asyncio.sleep(0.3)  # the first polls: the baseline pack counter
            for i in range(FIXED_PACKS + CATCH_PACKS):
                catch = i >= FIXED_PACKS
                if i == FIXED_PACKS and "changeover" in way.tags:
                    device.sim.set_registers(Table.HOLDING, 304, [ACCEPTED | CHANGEOVER])
                    await wait_for_value(
                        lambda: stored(
                            db, "SELECT count(*) FROM device_events WHERE kind = 'changeover'"
                        ),
                        lambda rows: rows[0][0] >= 1,
                        what="the device's changeover",
                    )
                net = catch_weight(i) if catch else fixed_weight(i)
                device.write(net, catch=catch)
                if way.scanner:
                    grams = round(net) if catch else 400
                    gtin_now = CATCH_GTIN if catch else FIXED_GTIN
                    await scanner.send_read(label(device.counter, gtin_now, grams, pack_date))
                await wait_for_value(
                    lambda: stored(db, "SELECT count(*) FROM packs"),
                    at_least(i + 1),
                    what=f"pack {i + 1}",
                )
            if way.scanner:
                # A label read before its pack decides it as it is stored; one read after
                # decides it by a pack_product event.
                await wait_for_value(
                    lambda: stored(db, DECIDED_BY_LABEL),
                    lambda rows: rows[0][0] == FIXED_PACKS + CATCH_PACKS,
                    what="every pack decided by its label",
                )
            # The operator closes the line: the open batch is recorded.
            answer = await send_command(
                load_config(config).control_socket_path,
                {"command": "line_mode", "line": "L3", "mode": "changeover", "operator": "Ann"},
            )
            assert answer["ok"], answer
    return db, device.counter


@pytest.mark.parametrize("way", [DEVICE_BITS, PROGRAM, LABEL], ids=lambda w: w.name)
async def test_each_pack_is_judged_as_the_product_it_is(tmp_path: Path, way: Way) -> None:
    db, _ = await run_line(tmp_path, way)

    batches = query(db, "SELECT plu, n, mean_g, below_t1 FROM emark_batches ORDER BY seq")
    assert [(plu, n) for plu, n, _mean, _t1 in batches] == [("42400", FIXED_PACKS)]
    fixed = [fixed_weight(i) for i in range(FIXED_PACKS)]
    assert float(batches[0][2]) == pytest.approx(sum(fixed) / len(fixed), abs=0.01)

    giveaway = query(db, "SELECT subject FROM alerts WHERE rule = 'giveaway'")
    assert all("49001" not in subject for (subject,) in giveaway)
    wrong = query(db, "SELECT rule, message FROM alerts WHERE rule LIKE 'label_product%'")
    assert wrong == []
    unknown = query(db, "SELECT count(*) FROM packs WHERE flags & 8 != 0")
    assert unknown == [(0,)]

    report = build_report(db, RUN_NUMBER)
    lines = {p.plu: p for p in report.products}
    assert lines["42400"].packs == FIXED_PACKS
    assert lines["42400"].mean_g == pytest.approx(sum(fixed) / len(fixed))
    assert not lines["42400"].catch_weight
    catch = [catch_weight(i) for i in range(FIXED_PACKS, FIXED_PACKS + CATCH_PACKS)]
    assert lines["49001"].catch_weight
    assert lines["49001"].packs == CATCH_PACKS
    assert lines["49001"].kg == pytest.approx(sum(catch) / 1000)
    assert (lines["49001"].min_g, lines["49001"].max_g) == (min(catch), max(catch))
    assert lines["49001"].giveaway_g is None
    assert report.packs_without_product == 0
