"""`lineside demo` starts everything on this machine and stops cleanly (the README command),
however it is stopped, leaving nothing running, so that the next demo starts cleanly."""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import gateway.demo_broker
from gateway.demo import run_demo
from tests.support.paths import REPO
from tests.support.processes import end_processes, suite_processes

RUN_ON_L1 = re.compile(rb"\d{6}-L1-\d{2}")
"""A run of the simulated ERP on line L1: named after the simulator's own date (yymmdd)."""


def demo_config(tmp_path: Path) -> Path:
    text = (REPO / "config" / "demo.toml").read_text()
    path = tmp_path / "demo.toml"
    path.write_text(text.replace('path = "../var/demo/lineside.db"', f'path = "{tmp_path}/l.db"'))
    return path


def lineside_demo(config: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "gateway.cli", "demo", "--config", str(config), *args],
        cwd=REPO,
        **popen,
    )


def headless_until_synced(config: Path) -> str:
    """Run the headless demo until a pack is joined to its run and synced; Ctrl-C; output."""
    proc = lineside_demo(
        config, "--headless", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "run " in line and "in the warehouse" in line and "warehouse 0" not in line:
                break  # a pack joined to its run, and records synced
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    return output


def test_demo_runs_with_sync_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    output = headless_until_synced(demo_config(tmp_path))
    assert "uplink: MQTT to 127.0.0.1:" in output
    assert "run " in output, "packs are joined to the simulated ERP's run"
    assert output.rstrip().endswith("demo stopped cleanly")
    assert "Traceback" not in output


def test_demo_without_mosquitto_says_the_uplink_is_not_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gateway.demo_broker.shutil, "which", lambda _name: None)  # type: ignore[attr-defined]
    monkeypatch.setattr(gateway.demo_broker, "DEBIAN_MOSQUITTO", tmp_path / "no-mosquitto")
    code = run_demo(argparse.Namespace(config=demo_config(tmp_path), seconds=4.0))
    output = capsys.readouterr().out
    assert code == 0
    assert "uplink: not configured" in output
    assert "(uplink not configured)" in output, "the live view says records are buffered"
    assert "demo stopped cleanly" in output


def test_each_demo_starts_with_a_fresh_store_unless_asked_to_keep_it(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    assert run_demo(argparse.Namespace(config=config, seconds=3.0)) == 0
    first = (tmp_path / "l.db").stat().st_ino
    assert run_demo(argparse.Namespace(config=config, seconds=3.0, keep_store=True)) == 0
    assert (tmp_path / "l.db").stat().st_ino == first, "--keep-store kept the store"
    assert run_demo(argparse.Namespace(config=config, seconds=3.0)) == 0
    assert (tmp_path / "l.db").stat().st_ino != first, "a new demo starts a new store"


def test_a_second_demo_on_the_same_folder_is_refused_by_name(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    first = lineside_demo(
        config, "--headless", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert first.stdout is not None
        assert "Ctrl-C stops" in first.stdout.readline()
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "demo",
                "--config",
                str(config),
                "--seconds",
                "3",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 1
        assert f"another Lineside demo is running from {tmp_path} (process {first.pid})" in (
            second.stderr
        )
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert first.returncode == 0


def _controlling_terminal() -> None:
    """In the child, after setsid: make the pty on stdin the session's controlling terminal,
    as a terminal emulator does, so closing it hangs the session up (SIGHUP)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``lineside demo`` on a pseudo-terminal of 80×24, as a user's terminal window."""

    def __init__(self, config: Path) -> None:
        self.primary, secondary = pty.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.proc = lineside_demo(
            config,
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"},
            start_new_session=True,  # a session of its own ...
            preexec_fn=_controlling_terminal,  # ... with the pty as its controlling terminal
        )
        os.close(secondary)
        self.screen = b""
        self.closed = False

    def read_until(self, needle: bytes | re.Pattern[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        found: Callable[[], bool] = (
            (lambda: needle in self.screen)
            if isinstance(needle, bytes)
            else (lambda: needle.search(self.screen) is not None)
        )
        while not found():
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not on screen: {self.screen[-2000:]!r}")
            ready, _, _ = select.select([self.primary], [], [], 0.2)
            if ready:
                try:
                    self.screen += os.read(self.primary, 65536)
                except OSError:  # the terminal closed
                    return

    def close(self) -> None:
        """Close the terminal window: the kernel hangs up its session (SIGHUP)."""
        if not self.closed:
            os.close(self.primary)
            self.closed = True


def _quit_with_q(term: Terminal) -> None:
    os.write(term.primary, b"q")


def _quit_with_ctrl_c(term: Terminal) -> None:
    os.write(term.primary, b"\x03")


def _sigterm(term: Terminal) -> None:
    term.proc.send_signal(signal.SIGTERM)


def _close_terminal(term: Terminal) -> None:
    term.close()


def _sigkill(term: Terminal) -> None:
    term.proc.kill()


@pytest.mark.parametrize(
    ("how", "clean"),
    [
        (_quit_with_q, True),
        (_quit_with_ctrl_c, True),
        (_sigterm, False),
        (_close_terminal, False),
        (_sigkill, False),
    ],
    ids=["q", "ctrl-c", "sigterm", "terminal-closed", "sigkill"],
)
def test_demo_on_a_terminal_stops_everything_however_it_is_stopped(
    tmp_path: Path, how: Callable[[Terminal], None], clean: bool
) -> None:
    """What a newcomer sees: `lineside demo` in a terminal shows the TUI with the simulated
    lines. However it ends, its back end and broker end too, and the next demo on the same
    folder starts cleanly."""
    config = demo_config(tmp_path)
    before = set(suite_processes())
    term = Terminal(config)
    try:
        term.read_until(RUN_ON_L1, timeout=60)  # a run from the simulated ERP, on line L1
        assert b"Lines" in term.screen
        assert "● connected".encode() in term.screen
        started = {pid: cmd for pid, cmd in suite_processes().items() if pid not in before}
        assert any("--backend" in cmd for cmd in started.values()), started
        how(term)
        if clean:
            term.read_until(b"demo stopped cleanly", timeout=40)
            assert term.proc.wait(timeout=10) == 0
        else:
            term.proc.wait(timeout=30)
        assert not end_processes(started, grace_s=30), "the back end and broker ended"
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
        term.close()
    log = (tmp_path / "demo.log").read_text()
    assert "demo stopped cleanly" in log, "the back end stopped cleanly"
    assert "Traceback" not in log
    # And the next demo on the same folder starts and syncs.
    assert "demo stopped cleanly" in headless_until_synced(config)
