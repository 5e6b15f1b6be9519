"""The gateway's live status (what the TUI shows) against the real simulators and the store,
and its cost to the gateway when many viewers ask at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from adapters.simulators.scenario import ScenarioName
from gateway.control import send_command
from tests.support.sim_site import simulated_site
from tests.support.waiting import wait_for
from tui.client import GatewayLink


def query(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


async def test_the_status_agrees_with_the_store(tmp_path: Path) -> None:
    async with simulated_site(tmp_path, speed=20.0, scenario=ScenarioName.NORMAL) as handle:
        site = await handle.site()
        db = site.db_path
        await wait_for(lambda: query(db, "SELECT count(*) FROM packs")[0][0] >= 150, timeout=60)
        # Freeze the line: stop the simulators, let the gateway commit what it has.
        assert handle.simulators is not None
        handle.simulators.cancel()
        await asyncio.gather(handle.simulators, return_exceptions=True)
        await wait_for(lambda: site.status.store.pending_count == 0)
        await wait_for(
            lambda: all(d.state != "up" for d in site.status.devices), timeout=30
        )  # every device noticed the simulators going away; no more records

        snapshot = await site.status.snapshot()
        json.dumps(snapshot, allow_nan=False)  # what the socket sends: strict JSON
        line = next(x for x in snapshot["lines"] if x["id"] == "L1")
        run = line["run"]["run_number"]
        [(count, mean)] = query(
            db, f"SELECT count(*), avg(net_g) FROM packs WHERE run_number = '{run}'"
        )
        assert line["packs"] == count
        assert abs(line["mean_g"] - float(mean)) < 1e-6
        newest = [
            w
            for (w,) in query(
                db,
                f"SELECT net_g FROM (SELECT seq, net_g FROM packs WHERE line = 'L1' "
                f"ORDER BY seq DESC LIMIT {len(line['recent_packs'])}) ORDER BY seq",
            )
        ]
        assert [p["net_g"] for p in line["recent_packs"]] == newest
        assert len(newest) == 120
        [(top,)] = query(db, "SELECT max(CAST(substr(serial, -6) AS INTEGER)) FROM label_scans")
        assert line["labels"]["last"] == top
        assert line["emark"]["qn_g"] == 240.0
        assert line["emark"]["t1_g"] == 231.0  # TNE 9 g for 200-300 g (76/211/EEC Annex I)
        assert line["emark"]["t2_g"] == 222.0
        probes = {p["probe"]: p for p in line["probes"]}
        assert probes["P1"]["location"] == "product core", "the tag's location, from the config"
        assert probes["P1"]["interval_s"] is None, "subscribed: a value comes when it changes"
        assert probes["P1"]["link"] in ("down", "connecting"), "its device's link, for its age"
        assert (
            snapshot["system"]["outbox"]["depth"] == query(db, "SELECT count(*) FROM outbox")[0][0]
        )
        assert {d["id"] for d in snapshot["system"]["devices"]} == {
            "cw1",
            "probes-opcua",
            "tt-modbus",
            "scanner1",
        }
        assert all(d["state"] in ("down", "connecting") for d in snapshot["system"]["devices"])
        assert snapshot["system"]["readings"]["pack"] >= count
        # The alarm load (issue 17): the raises the store holds for the line, every alert
        # with its short reference and occurrence figures.
        raised = "SELECT count(*) FROM alerts WHERE state = 'raised' AND line = 'L1'"
        load = line["alarm_load"]
        assert load["raised"] <= query(db, raised)[0][0]
        assert load["flood_periods"] == 0
        assert load["periods"] == 145, "24 h of 10-minute periods, the current one partial"
        for alert in snapshot["alerts"]["active"] + snapshot["alerts"]["recent"]:
            assert len(alert["ref"]) >= 6
            assert alert["occurrences"] >= 1
            assert alert["first_us"] <= alert["last_us"]
        assert snapshot["alerts"]["load"]["raised"] >= load["raised"]


async def test_after_a_restart_the_run_counts_include_the_packs_stored_before(
    tmp_path: Path,
) -> None:
    async with simulated_site(tmp_path, speed=20.0, scenario=ScenarioName.NORMAL) as handle:
        db = (await handle.site()).db_path
        await wait_for(lambda: query(db, "SELECT count(*) FROM packs")[0][0] >= 30, timeout=60)
        site = await handle.restart()
        before = query(db, "SELECT count(*) FROM packs")[0][0]
        await wait_for(lambda: query(db, "SELECT count(*) FROM packs")[0][0] >= before + 20)
        assert handle.simulators is not None
        handle.simulators.cancel()
        await asyncio.gather(handle.simulators, return_exceptions=True)
        await wait_for(lambda: all(d.state != "up" for d in site.status.devices), timeout=30)
        await wait_for(lambda: site.status.store.pending_count == 0)
        snapshot = await site.status.snapshot()
        line = snapshot["lines"][0]
        [(count,)] = query(
            db, f"SELECT count(*) FROM packs WHERE run_number = '{line['run']['run_number']}'"
        )
        assert count > before
        assert line["packs"] == count, "packs of the earlier process counted once, not twice"


async def test_many_viewers_cost_the_gateway_one_snapshot_per_half_second(tmp_path: Path) -> None:
    async with simulated_site(tmp_path, speed=20.0, scenario=ScenarioName.NORMAL) as handle:
        site = await handle.site()
        socket_path = site.config.control_socket_path
        db = site.db_path
        await wait_for(lambda: query(db, "SELECT count(*) FROM packs")[0][0] >= 20, timeout=60)
        packs_before = query(db, "SELECT count(*) FROM packs")[0][0]
        builds_before = site.status.builds
        answers = 0

        async def viewer() -> None:
            nonlocal answers
            link = GatewayLink(socket_path)
            try:
                for _ in range(20):
                    snapshot = await link.status()
                    assert snapshot["gateway"]["id"] == "demo-gw1"
                    answers += 1
                    await asyncio.sleep(0.1)
            finally:
                await link.close()

        async def rude_viewer() -> None:
            # Asks and hangs up without reading, or sends garbage: the TUI killed mid-request.
            for i in range(20):
                _reader, writer = await asyncio.open_unix_connection(str(socket_path))
                writer.write(b'{"command": "status"}\n' if i % 2 else b"\xff\xfe not json\n")
                await writer.drain()
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                await asyncio.sleep(0.1)

        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(viewer() for _ in range(8)), rude_viewer(), rude_viewer())
        elapsed = asyncio.get_running_loop().time() - started

        assert answers == 8 * 20
        built = site.status.builds - builds_before
        assert built <= elapsed / 0.5 + 2, f"{built} snapshots for {answers} answers"
        assert not site.gateway.done(), "the gateway keeps running"
        await wait_for(
            lambda: query(db, "SELECT count(*) FROM packs")[0][0] > packs_before + 20, timeout=30
        )  # and keeps recording
        answer = await send_command(socket_path, {"command": "status"})
        assert answer["lines"][0]["packs"] > 0
