"""`lineside demo` starts everything on this machine and stops cleanly (the README command)."""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

import gateway.demo_broker
from gateway.demo import run_demo
from tests.support.paths import REPO


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


def test_demo_on_a_terminal_opens_the_tui_and_q_stops_everything(tmp_path: Path) -> None:
    """What a newcomer sees: `lineside demo` in a terminal shows the TUI with the simulated
    lines; `q` quits it and stops the back end cleanly."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--config", str(demo_config(tmp_path))],
        cwd=REPO,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"},
        start_new_session=True,
    )
    os.close(secondary)
    screen = b""

    def read_until(needle: bytes, timeout: float) -> None:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while needle not in screen:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not on screen: {screen[-2000:]!r}")
            ready, _, _ = select.select([primary], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(primary, 65536)
                except OSError:  # the terminal closed
                    break

    try:
        read_until(b"261122-L1-", timeout=60)  # a run from the simulated ERP, on line L1
        assert b"Lines" in screen
        assert "● connected".encode() in screen
        os.write(primary, b"q")
        read_until(b"demo stopped cleanly", timeout=40)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    log = (tmp_path / "demo.log").read_text()
    assert "demo stopped cleanly" in log, "the back end stopped cleanly too"
    assert "Traceback" not in log
