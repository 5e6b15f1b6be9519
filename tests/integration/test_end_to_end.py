"""``lineside simulate`` + ``lineside run`` on the demo config: live records land in the store."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.processes import reap
from tests.support.waiting import wait_for_sync

DEMO = REPO / "config" / "demo.toml"


def count(db_path: Path, table: str) -> int:
    if not db_path.exists():
        return 0
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def test_simulators_and_gateway_processes_record_live_data(tmp_path: Path) -> None:
    ports = {
        "opcua": free_port(),
        "modbus": free_port(),
        "scanner": free_port(),
        "erp": free_port(),
    }
    db_path = tmp_path / "e2e.db"
    config = (
        DEMO.read_text()
        .replace("48400", str(ports["opcua"]))
        .replace("50200", str(ports["modbus"]))
        .replace("50300", str(ports["scanner"]))
        .replace("48500", str(ports["erp"]))
        .replace('path = "../var/demo/lineside.db"', f'path = "{db_path}"')
    )
    config_path = tmp_path / "demo.toml"
    config_path.write_text(config)
    simulate = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "simulate",
            "--speed",
            "4",
            "--opcua-port",
            str(ports["opcua"]),
            "--modbus-port",
            str(ports["modbus"]),
            "--scanner-port",
            str(ports["scanner"]),
            "--erp-port",
            str(ports["erp"]),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    gateway = None
    try:
        assert simulate.stdout is not None
        started = [simulate.stdout.readline() for _ in range(4)]
        assert all(line.startswith("simulator ") for line in started), started
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_sync(
            lambda: (
                count(db_path, "packs") >= 5
                and count(db_path, "temperatures") >= 5
                and count(db_path, "label_scans") >= 3
            ),
            timeout=60,
        )
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=10) == 0
    finally:
        for proc in (gateway, simulate):
            if proc is not None:
                reap(proc, signal.SIGINT, timeout=10)
    db = sqlite3.connect(db_path)
    devices = {d for (d,) in db.execute("SELECT DISTINCT device FROM temperatures")}
    assert {"probes-opcua", "tt-modbus"} <= devices, "probes over OPC UA and Modbus both record"
    weights = [w for (w,) in db.execute("SELECT net_g FROM packs")]
    assert all(150 < w < 350 for w in weights)
    links = {(d, k) for d, k in db.execute("SELECT device, kind FROM device_events")}
    assert ("cw1", "link_up") in links
    assert ("scanner1", "link_up") in links
    # The simulated ERP has a run active on L1 now: every pack and L1 reading joins it.
    runs = {r for (r,) in db.execute("SELECT DISTINCT run_number FROM packs")}
    assert len(runs) == 1
    [run] = runs
    assert run is not None
    assert run.endswith("-L1-02")
    assert db.execute("SELECT count(*) FROM run_versions WHERE source = 'erp'").fetchone()[0] >= 5
    orphans = db.execute(
        "SELECT count(*) FROM packs p LEFT JOIN outbox o ON o.seq = p.seq WHERE o.seq IS NULL"
    ).fetchone()[0]
    assert orphans == 0
