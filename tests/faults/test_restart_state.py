"""Issue 15: a crash or a planned restart in the middle of an ℮ batch changes nothing.

``lineside run`` (a child process) reads a checkweigher on a real OPC UA server (the
project's asyncua simulator, written to by the test as a checkweigher writes a pack: values
first, counter last) and joins its packs to a run from the simulated ERP. Half-way through
an ℮ batch the gateway is SIGKILLed (or SIGTERMed), and started again as systemd would.
After the second half the batch is closed (line mode changeover), and:

* the packer's record in the store equals the one a gateway that never stopped computes
  from the same stored packs (one batch of every pack, not a batch of the packs after the
  restart);
* the ℮ and giveaway alert transitions in the store are exactly those of that gateway: the
  restart clears nothing and raises nothing of its own (the packs right after the restart
  are light, so a batch rebuilt from them alone would raise a false running-mean warning,
  and one pack below T1 in 20 a false rule-2 alert).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from adapters.erp.simulator import ErpSimulator
from gateway.config import load_config
from gateway.control import send_command
from gateway.core.clock import ManualClock
from gateway.core.records import AlertRecord, EmarkBatchRecord, Record
from gateway.core.runs import run_from_json
from gateway.report import build_report
from gateway.rules_engine import RulesEngine
from gateway.rules_replay import _event, _pack
from gateway.runs import RunIndex
from tests.support.opcua_harness import Simulator
from tests.support.sync_harness import GatewayProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

QN = 240.0
T1 = 231.0
FIRST_HALF = 40
PACKS = 80
PACK_RULES = ("emark_", "giveaway")


def weight(counter: int) -> float:
    """Heavy packs first, light ones right after the restart, one pack below T1 per half."""
    if counter in (17, 52):
        return 229.5  # below T1 (231 g), above T2 (222 g)
    if FIRST_HALF < counter <= FIRST_HALF + 15:
        return 238.0 + (counter % 3) * 0.5  # below Qn
    return 244.0 + (counter % 5) * 0.25


def config_text(db: Path, opcua: str, erp: str) -> str:
    return f"""
[gateway]
id = "gw-restart"
site = "test"
log_format = "plain"
log_level = "warning"

[store]
path = "{db}"
commit_interval_ms = 20

[[lines]]
id = "L1"

[erp]
kind = "http"
url = "{erp}"
poll_interval_s = 1

[[devices]]
id = "cw1"
kind = "opcua"
line = "L1"
role = "checkweigher"
endpoint = "{opcua}"

[[devices.groups]]
name = "weighing"
mode = "subscribe"
publishing_interval_ms = 50
sampling_interval_ms = 0
tags = [
  {{ name = "pack_counter", node = "ns=2;s=CW1.PackCounter" }},
  {{ name = "nominal_weight", node = "ns=2;s=CW1.NominalWeight", min = 5, max = 25000 }},
  {{ name = "net_weight", node = "ns=2;s=CW1.LastNetWeight", min = 0, max = 5000 }},
  {{ name = "accepted", node = "ns=2;s=CW1.Accepted" }},
  {{ name = "label_sequence", node = "ns=2;s=CW1.LabelSequence" }},
]

[rules]
emark_batch_minutes = 60
emark_min_packs = 10
"""


async def write_pack(sim: Simulator, counter: int) -> None:
    """Values first, the counter last, as a checkweigher does."""
    await sim.set_value("CW1.NominalWeight", QN)
    await sim.set_value("CW1.LastNetWeight", weight(counter))
    await sim.set_value("CW1.Accepted", True)
    await sim.set_value("CW1.LabelSequence", 9000 + counter)
    await sim.set_value("CW1.PackCounter", counter)


async def stored_events(db: Path, kind: str, at_least: int) -> None:
    def there() -> bool:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn, conn:
            (n,) = conn.execute(
                "SELECT count(*) FROM device_events WHERE kind = ?", (kind,)
            ).fetchone()
        return int(n) >= at_least

    await wait_for(there, 20, f"{at_least} {kind} event(s)")


def stored_packs(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn, conn:
        return int(conn.execute("SELECT count(*) FROM packs").fetchone()[0])


async def pack_until(sim: Simulator, db: Path, first: int, last: int) -> None:
    for counter in range(first, last + 1):
        await write_pack(sim, counter)
        await asyncio.sleep(0.06)
    await wait_for(lambda: stored_packs(db) == last, 30, f"{last} packs stored")


def uninterrupted(db: Path, config_path: Path) -> list[Record]:
    """What a gateway that never stopped makes of the stored packs and line-mode change."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn, conn:
        runs = [run_from_json(json.loads(p)) for (p,) in conn.execute("SELECT payload FROM runs")]
        packs = conn.execute(
            "SELECT seq, ts_us, line, device, net_g, pack_counter, gross_g, tare_g, accepted, "
            "label_seq, run_number, flags, nominal_g, program, catch_weight, plu, "
            "product_source FROM packs ORDER BY seq"
        ).fetchall()
        (mode,) = conn.execute(
            "SELECT seq, ts_us, device, kind, line, detail, flags FROM device_events "
            "WHERE kind = 'line_mode'"
        ).fetchall()
    clock = ManualClock(wall_us=packs[0][1])
    engine = RulesEngine(load_config(config_path).rules, RunIndex(runs), clock)
    out: list[Record] = []
    for row in packs:
        clock.step_wall((row[1] - clock.wall_us()) / 1e6)
        out += engine.evaluate(_pack(row))
    event = _event(mode)
    clock.step_wall((event.ts_us - clock.wall_us()) / 1e6)
    out += engine.set_line_mode("L1", str(event.detail["mode"]), ts_us=event.ts_us)
    return out


def stored_alerts(db: Path) -> list[tuple[str, str, str, str]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn, conn:
        rows = conn.execute("SELECT rule, subject, state, message FROM alerts ORDER BY seq")
        return [tuple(r) for r in rows if str(r[0]).startswith(PACK_RULES)]


def stored_batches(db: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn, conn:
        return conn.execute(
            "SELECT line, run_number, plu, start_us, end_us, n, mean_g, sd_g, below_t1, "
            "below_t2, verdict, reasons FROM emark_batches ORDER BY seq"
        ).fetchall()


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_a_restart_mid_batch_gives_the_uninterrupted_record_and_alerts(
    tmp_path: Path, stop: signal.Signals
) -> None:
    db = tmp_path / "lineside.db"
    config_path = tmp_path / "lineside.toml"
    log = tmp_path / "gateway.log"
    async with Simulator() as sim, ErpSimulator() as erp:
        config_path.write_text(config_text(db, sim.endpoint, erp.url))
        first = GatewayProcess(config_path, log, 1)
        try:
            await first.ready()
            # The subscription's first notification gives the counter it counts from.
            await stored_events(db, "pack_counter_baseline", 1)
            await pack_until(sim, db, 1, FIRST_HALF)
            first.proc.send_signal(stop)
            code = await first.wait(20)
            assert code == (-signal.SIGKILL if stop is signal.SIGKILL else 0), first.tail()
        finally:
            first.close()
        second = GatewayProcess(config_path, log, 2)
        try:
            await second.ready()
            # Connected again; the counter carries over from the store, so a pack written
            # before the subscription's first notification still counts.
            await stored_events(db, "link_up", 2)
            await pack_until(sim, db, FIRST_HALF + 1, PACKS)
            socket_path = load_config(config_path).control_socket_path
            answer = await send_command(
                socket_path,
                {"command": "line_mode", "line": "L1", "mode": "changeover", "operator": "Ann"},
            )
            assert answer["ok"], answer
            await wait_for(lambda: len(stored_batches(db)) == 1, 20, "the packer's record")
            second.proc.send_signal(signal.SIGTERM)
            assert await second.wait(20) == 0, second.tail()
        finally:
            second.close()

    expected = uninterrupted(db, config_path)
    (record,) = [r for r in expected if isinstance(r, EmarkBatchRecord)]
    assert record.n == PACKS
    (stored,) = stored_batches(db)
    assert stored == (
        record.line,
        record.run_number,
        record.plu,
        record.start_us,
        record.end_us,
        record.n,
        record.mean_g,
        record.sd_g,
        record.below_t1,
        record.below_t2,
        record.verdict,
        json.dumps(list(record.reasons)),
    )
    want = [
        (r.rule, r.subject, r.state, r.message)
        for r in expected
        if isinstance(r, AlertRecord) and r.rule.startswith(PACK_RULES)
    ]
    assert stored_alerts(db) == want
    assert not any("restart" in message for *_, message in stored_alerts(db))
    report = build_report(db, record.run_number)
    (product,) = [p for p in report.products if p.packs]
    assert product.packs == PACKS
    assert [b["n"] for b in report.emark_batches] == [PACKS]
