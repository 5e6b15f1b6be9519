"""`lineside demo` starts everything on this machine and stops cleanly (the README command)."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import gateway.demo_broker
from gateway.demo import run_demo
from tests.conftest import REPO


def demo_config(tmp_path: Path) -> Path:
    text = (REPO / "config" / "demo.toml").read_text()
    path = tmp_path / "demo.toml"
    path.write_text(text.replace('path = "../var/demo/lineside.db"', f'path = "{tmp_path}/l.db"'))
    return path


def test_demo_runs_with_sync_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--config", str(demo_config(tmp_path))],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "run " in line and "in the warehouse" in line:
                break  # a pack joined to its run, and records synced
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "uplink: MQTT to 127.0.0.1:" in output
    assert "run " in output, "packs are joined to the simulated ERP's run"
    assert output.rstrip().endswith("demo stopped cleanly")
    assert "Traceback" not in output


def test_demo_without_mosquitto_says_the_uplink_is_not_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gateway.demo_broker.shutil, "which", lambda _name: None)
    monkeypatch.setattr(gateway.demo_broker, "DEBIAN_MOSQUITTO", tmp_path / "no-mosquitto")
    code = run_demo(argparse.Namespace(config=demo_config(tmp_path), seconds=4.0))
    output = capsys.readouterr().out
    assert code == 0
    assert "uplink: not configured" in output
    assert "(uplink not configured)" in output, "the live view says records are buffered"
    assert "demo stopped cleanly" in output
