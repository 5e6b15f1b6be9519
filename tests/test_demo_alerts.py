"""The demo's scripted scenarios, through the real simulators and gateway, raise the matching
alerts: the underweight drift (running mean below Qn), the long probe excursion, the label gap.
Packs below T2 are rejected by the checkweigher, so they never leave the line with the ℮ mark
and raise no ℮ alert; what the simulated labeller and the ERP's run say agrees, so no label,
batch or use-by alert may appear.

The simulators play the demo scenario 20 times faster than life; the HACCP debounce is
scaled to match, so the short excursion (40 s of scenario time) stays below it and the
long one (6.5 min) does not.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from adapters.simulators import SimulatorSettings, run_simulators
from gateway.config import load_config
from gateway.report import build_report, format_report
from gateway.service import run_gateway
from tests.conftest import REPO, wait_for

SPEED = 20.0


def alert_rules(db_path: Path) -> set[str]:
    if not db_path.exists():
        return set()
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {r for (r,) in db.execute("SELECT rule FROM alerts WHERE state = 'raised'")}
    except sqlite3.OperationalError:
        return set()
    finally:
        db.close()


async def test_demo_scenarios_raise_the_matching_alerts(tmp_path: Path) -> None:
    addresses: dict[str, str] = {}
    started = asyncio.Event()

    def on_started(found: dict[str, str]) -> None:
        addresses.update(found)
        started.set()

    simulators = asyncio.create_task(
        run_simulators(SimulatorSettings(speed=SPEED), on_started=on_started)
    )
    stop = asyncio.Event()
    gateway = None
    try:
        await asyncio.wait_for(started.wait(), 30)
        db_path = tmp_path / "demo.db"
        text = (REPO / "config" / "demo.toml").read_text()
        text = (
            text.replace("opc.tcp://127.0.0.1:48400/lineside", addresses["opcua"])
            .replace("port = 50200", f"port = {addresses['modbus'].rsplit(':', 1)[1]}")
            .replace("port = 50300", f"port = {addresses['scanner'].rsplit(':', 1)[1]}")
            .replace("http://127.0.0.1:48500/api/runs", addresses["erp"])
            .replace('path = "../var/demo/lineside.db"', f'path = "{db_path}"')
            .replace("debounce_s = 60 ", "debounce_s = 3 ")
            .replace("poll_interval_s = 5", "poll_interval_s = 2")
        )
        config_path = tmp_path / "demo.toml"
        config_path.write_text(text)
        config = load_config(config_path)
        gateway = asyncio.create_task(run_gateway(config, stop=stop))
        expected = {"emark_mean", "haccp_upper", "label_gap"}
        await wait_for(lambda: expected <= alert_rules(db_path), timeout=90)
    finally:
        stop.set()
        if gateway is not None:
            await asyncio.wait_for(gateway, 15)
        simulators.cancel()
        await asyncio.gather(simulators, return_exceptions=True)
    raised = alert_rules(db_path)
    assert not raised & {"label_weight", "label_batch", "shelf_life_use_by", "emark_t2"}, raised
    db = sqlite3.connect(db_path)
    [run] = {r for (r,) in db.execute("SELECT DISTINCT run_number FROM packs") if r}
    rejected_t2 = db.execute(
        "SELECT count(*) FROM packs WHERE net_g < 222 AND accepted = 0"
    ).fetchone()[0]
    assert rejected_t2 >= 1, "the scenario's below-T2 packs reached the checkweigher"
    report = format_report(build_report(db_path, run))
    assert "emark_mean" in report
    assert "41240" in report  # the 240 g product's giveaway line
