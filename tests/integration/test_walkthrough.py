"""docs/first-line.md, followed literally: its config fragments, in order, make a config that
loads and, pointed at the repository's simulators, records packs, temperatures and label
scans. Only the addresses the page names as examples and the store path are changed."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import LinesideConfig, OpcUaDevice, load_config
from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.processes import reap
from tests.support.waiting import wait_for_sync

PAGE = REPO / "docs" / "first-line.md"
FENCE = re.compile(r"^```toml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def page_config() -> str:
    """The page's ```toml fragments, in order, as one file."""
    fragments = FENCE.findall(PAGE.read_text(encoding="utf-8"))
    assert len(fragments) >= 5, "the walkthrough lost its config fragments"
    return "\n".join(fragments)


def localised(text: str, db_path: Path, ports: dict[str, int]) -> str:
    """The page's config with its example addresses moved to the simulators on loopback."""
    replacements = {
        "opc.tcp://192.0.2.10:4840/": f"opc.tcp://127.0.0.1:{ports['opcua']}/",
        'host = "192.0.2.11"\nport = 502\n': f'host = "127.0.0.1"\nport = {ports["modbus"]}\n',
        'host = "192.0.2.12"\nport = 2001\n': f'host = "127.0.0.1"\nport = {ports["scanner"]}\n',
        # The simulated ERP speaks plain HTTP; a token goes to loopback over http too.
        "https://erp.example.com/": f"http://127.0.0.1:{ports['erp']}/",
        'path = "/var/lib/lineside/lineside.db"': f'path = "{db_path}"',
    }
    for example, local in replacements.items():
        assert text.count(example) == 1, f"the page no longer has {example!r} once"
        text = text.replace(example, local)
    return text


def credentials(tmp_path: Path) -> Path:
    folder = tmp_path / "credstore"
    folder.mkdir()
    (folder / "erp-token").write_text("walkthrough-token")
    return folder


def test_the_walkthrough_fragments_make_a_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "lineside.toml"
    path.write_text(page_config())
    config: LinesideConfig = load_config(
        path, environ={"CREDENTIALS_DIRECTORY": str(credentials(tmp_path))}
    )
    roles = {device.role: device.kind for device in config.devices}
    assert roles == {
        "checkweigher": "opcua",
        "temperature_probe": "modbus_tcp",
        "label_scanner": "scanner_tcp",
    }
    assert config.erp is not None
    assert config.erp.kind == "http"
    (checkweigher,) = (d for d in config.devices if isinstance(d, OpcUaDevice))
    tags = {tag.name for group in checkweigher.groups for tag in group.tags}
    assert "nominal_weight" in tags, "packs must be matchable to a product"
    assert [(p.device, p.probe) for p in config.rules.probes] == [("tt-chill", "T1")]


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


@pytest.mark.slow
def test_the_walkthrough_config_records_from_the_simulators(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("opcua", "modbus", "scanner", "erp")}
    db_path = tmp_path / "state" / "lineside.db"
    db_path.parent.mkdir()
    config_path = tmp_path / "lineside.toml"
    config_path.write_text(localised(page_config(), db_path, ports))
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(credentials(tmp_path))}
    simulate = subprocess.Popen(
        [
            sys.executable, "-m", "gateway.cli", "simulate", "--speed", "4",
            "--opcua-port", str(ports["opcua"]), "--modbus-port", str(ports["modbus"]),
            "--scanner-port", str(ports["scanner"]), "--erp-port", str(ports["erp"]),
        ],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    gateway = None
    try:
        assert simulate.stdout is not None
        started = [simulate.stdout.readline() for _ in range(4)]
        assert all(line.startswith("simulator ") for line in started), started
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)],
            cwd=REPO,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_sync(
            lambda: (
                count(db_path, "packs") >= 3
                and count(db_path, "temperatures") >= 3
                and count(db_path, "label_scans") >= 2
            ),
            timeout=60,
        )
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=15) == 0
    finally:
        for proc in (gateway, simulate):
            if proc is not None:
                reap(proc, signal.SIGINT, timeout=10)
    db = sqlite3.connect(db_path)
    try:
        devices = {d for (d,) in db.execute("SELECT DISTINCT device FROM temperatures")}
        assert devices == {"tt-chill"}
        runs = {r for (r,) in db.execute("SELECT DISTINCT run_number FROM packs")}
        assert None not in runs, "every pack is joined to the ERP's run on L1"
        products = db.execute("SELECT count(*) FROM packs WHERE plu IS NOT NULL").fetchone()[0]
        assert products > 0, "packs are matched to a product"
    finally:
        db.close()
