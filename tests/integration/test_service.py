"""The service core: SIGTERM shutdown with the pending batch committed, sd_notify, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.erp.simulator import ErpSimulator
from gateway.config import load_config
from gateway.sdnotify import Notifier
from gateway.service import run_gateway
from tests.support.configs import minimal_config_text
from tests.support.paths import REPO
from tests.support.processes import reap
from tests.support.waiting import wait_for, wait_for_sync


def test_sigterm_exits_zero_within_five_seconds_with_the_pending_batch_committed(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "svc.db"
    config = tmp_path / "gw.toml"
    # A long commit interval keeps the start-up event pending until shutdown.
    config.write_text(minimal_config_text(db_path, commit_interval_ms=5000))
    proc, listener = _start_gateway(config, tmp_path / "notify.sock")
    try:
        ready = listener.recv(4096).decode()
        assert ready.startswith("READY=1")
        assert db_path.exists()
        db = sqlite3.connect(db_path)
        assert db.execute("SELECT count(*) FROM device_events").fetchone()[0] == 0
        db.close()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        elapsed = time.monotonic() - started
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        reap(proc, signal.SIGKILL)
        listener.close()
    assert code == 0, err
    assert elapsed < 5.0
    db = sqlite3.connect(db_path)
    kinds = [k for (k,) in db.execute("SELECT kind FROM device_events ORDER BY seq")]
    assert kinds == ["gateway_started", "gateway_stopped"]
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2


def test_watchdog_pings_arrive_and_stop_when_the_loop_is_blocked(tmp_path: Path) -> None:
    notify = tmp_path / "wd.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "100000"})
    assert notifier.watchdog_interval == pytest.approx(0.05)

    def drain() -> list[str]:
        messages = []
        while True:
            try:
                messages.append(listener.recv(4096).decode())
            except BlockingIOError:
                return messages

    async def scenario() -> tuple[int, int]:
        task = asyncio.create_task(notifier.watchdog())
        before: list[str] = []

        def pinged_three_times() -> bool:
            before.extend(drain())
            return len(before) >= 3

        await wait_for(pinged_three_times, what="three watchdog pings")
        _block_the_event_loop(0.5)  # as a stuck computation would: no pings may be sent
        during = drain()
        task.cancel()
        return len(before), len(during)

    before, during = asyncio.run(scenario())
    listener.close()
    assert before >= 3
    assert during == 0


def _block_the_event_loop(seconds: float) -> None:
    """Busy-wait without yielding to the loop."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def test_notifier_is_silent_without_systemd() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.notify("READY=1")  # no socket: nothing happens, nothing raised
    assert notifier.watchdog_interval is None


def test_abstract_notify_socket_address() -> None:
    name = f"lineside-test-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0" + name)
    listener.settimeout(5)
    Notifier({"NOTIFY_SOCKET": "@" + name}).notify("STATUS=hello")
    assert listener.recv(100) == b"STATUS=hello"
    listener.close()


async def test_run_gateway_in_process_stops_on_event(tmp_path: Path) -> None:
    config_path = tmp_path / "gw.toml"
    config_path.write_text(minimal_config_text(tmp_path / "p.db"))
    config = load_config(config_path)
    stop = asyncio.Event()
    ready = asyncio.Event()
    runner = asyncio.create_task(run_gateway(config, stop=stop, on_ready=lambda _s: ready.set()))
    await asyncio.wait_for(ready.wait(), 10)
    tasks_while_running = {t.get_name() for t in asyncio.all_tasks()}
    assert "store.committer" in tasks_while_running
    stop.set()
    await asyncio.wait_for(runner, 10)
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftover == []


def test_json_logs_never_contain_a_secret(tmp_path: Path) -> None:
    secret = "s3cr3t-pa55word"
    (tmp_path / "pw").write_text(secret)
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "l.db").replace(
            'site = "test-site"', 'site = "test-site"\nlog_format = "json"\nlog_level = "debug"'
        )
        + '[[devices]]\nid = "cw1"\nkind = "opcua"\nline = "L1"\nrole = "temperature_probe"\n'
        'endpoint = "opc.tcp://127.0.0.1:9"\nusername = "u"\npassword = { file = "pw" }\n'
        "reconnect_min_s = 0.05\nreconnect_max_s = 0.1\n"
        '[[devices.groups]]\ntags = [{ name = "P1", node = "ns=2;s=P1" }]\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )

    def link_down_recorded() -> bool:
        # The unreachable server is logged (and recorded) as a link-down with its error.
        db_path = tmp_path / "l.db"
        if not db_path.exists():
            return False
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT count(*) FROM device_events WHERE kind = 'link_down'")
            return bool(rows.fetchone()[0])
        except sqlite3.OperationalError:
            return False
        finally:
            db.close()

    try:
        wait_for_sync(link_down_recorded, timeout=20)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines, "logs are JSON lines"
    assert any("running" in entry["message"] for entry in lines)
    assert any("link down" in entry["message"] for entry in lines)
    assert secret not in err


def test_cli_version_and_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert out.stdout.startswith("lineside ")
    help_text = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    for command in ("run", "check-config", "demo", "simulate", "tui", "ingest"):
        assert command in help_text


def test_tui_needs_a_config_and_says_so() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "tui"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 2
    assert "--config" in result.stderr


def test_wait_helper_times_out() -> None:
    with pytest.raises(AssertionError):
        wait_for_sync(lambda: False, timeout=0.05)


def test_service_with_a_corrupt_database_quarantines_it_and_keeps_running(tmp_path: Path) -> None:
    db_path = tmp_path / "svc.db"
    db_path.write_bytes(b"this is not a database, it is a note someone saved here" * 100)
    (tmp_path / "svc.db-wal").write_bytes(b"\x00" * 1000)
    config = tmp_path / "gw.toml"
    config.write_text(minimal_config_text(db_path))
    proc, listener = _start_gateway(config, tmp_path / "notify.sock")
    try:
        assert listener.recv(4096).decode().startswith("READY=1")

        def alert_stored() -> bool:
            db = sqlite3.connect(db_path, timeout=5)
            try:
                return bool(db.execute("SELECT count(*) FROM alerts").fetchone()[0])
            finally:
                db.close()

        wait_for_sync(alert_stored)
        assert proc.poll() is None, "the service keeps running on the fresh database"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
    finally:
        reap(proc, signal.SIGKILL)
        listener.close()
    [folder] = (tmp_path / "quarantine").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["REASON.txt", "svc.db", "svc.db-wal"]
    db = sqlite3.connect(db_path)
    [(rule, message, detail)] = db.execute("SELECT rule, message, detail FROM alerts").fetchall()
    assert rule == "store_quarantined"
    assert str(folder / "svc.db") in message
    assert json.loads(detail)["file"] == str(folder / "svc.db")
    assert "damaged" in err


def _start_gateway(config: Path, notify: Path) -> tuple[subprocess.Popen[str], socket.socket]:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "NOTIFY_SOCKET": str(notify)},
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, listener


def test_gateway_starts_promptly_with_the_erp_down_and_operators_can_start_runs(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "ops.db"
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(db_path)
        + '[erp]\nkind = "http"\nurl = "http://127.0.0.1:9/api/runs"\nretries = 0\n'
        "poll_interval_s = 1\n"
    )
    proc, listener = _start_gateway(config, tmp_path / "n.sock")
    try:
        started = time.monotonic()
        assert listener.recv(4096).decode().startswith("READY=1")
        assert time.monotonic() - started < 15, "an unreachable ERP does not hold up recording"
        lineside = [sys.executable, "-m", "gateway.cli"]
        result = subprocess.run(
            [
                *lineside,
                "run-start",
                "-c",
                str(config),
                "--line",
                "L1",
                "--run",
                "R7",
                "--operator",
                "Ann",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "run R7: started by Ann" in result.stdout
        refused = subprocess.run(
            [*lineside, "run-end", "-c", str(config), "--run", "NOPE", "--operator", "Ann"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=False,
        )
        assert refused.returncode == 1
        assert "unknown run 'NOPE'" in refused.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        reap(proc, signal.SIGKILL)
        listener.close()
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT run_number, source, actor FROM run_versions").fetchall() == [
        ("R7", "operator", "Ann")
    ]
    assert db.execute("SELECT run_number, status FROM runs").fetchall() == [("R7", "running")]


def test_run_start_without_a_gateway_says_so(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(minimal_config_text(tmp_path / "x.db"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "run-start",
            "-c",
            str(config),
            "--line",
            "L1",
            "--run",
            "R1",
            "--operator",
            "Ann",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach the gateway" in result.stderr


async def test_erp_sync_full_reloads_every_run(tmp_path: Path) -> None:
    db_path = tmp_path / "sync.db"
    async with ErpSimulator() as erp:
        config = tmp_path / "gw.toml"
        config.write_text(
            minimal_config_text(db_path).replace(
                'id = "L1"\n', 'id = "L1"\n\n[[lines]]\nid = "L2"\n'
            )
            + f'[erp]\nkind = "http"\nurl = "{erp.url}"\nretries = 0\n'
        )
        for full in (False, True):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.cli",
                "erp-sync",
                "-c",
                str(config),
                *(["--full"] if full else []),
                cwd=REPO,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
        queries = [r.query for r in erp.requests]
    assert "updated_since" not in queries[0], "the first sync has no watermark yet"
    assert "updated_since" not in queries[-1], "--full ignores the stored watermark"
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == len(erp.runs)
    assert db.execute("SELECT value FROM meta WHERE key = 'erp.watermark'").fetchone()[0]


def test_line_mode_and_shelf_life_commands(tmp_path: Path) -> None:
    db_path = tmp_path / "modes.db"
    config = tmp_path / "gw.toml"
    config.write_text(minimal_config_text(db_path))
    proc, listener = _start_gateway(config, tmp_path / "m.sock")
    lineside = [sys.executable, "-m", "gateway.cli"]
    try:
        assert listener.recv(4096).decode().startswith("READY=1")
        subprocess.run(
            [
                *lineside,
                "run-start",
                "-c",
                str(config),
                "--line",
                "L1",
                "--run",
                "R9",
                "--operator",
                "Ann",
            ],
            check=True,
            cwd=REPO,
            capture_output=True,
            timeout=30,
        )
        nobody = subprocess.run(
            [*lineside, "line-mode", "-c", str(config), "--line", "L1", "washdown"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=False,
        )
        assert nobody.returncode == 2, "who changes the mode is required"
        assert "--operator" in nobody.stderr
        washdown = subprocess.run(
            [
                *lineside,
                "line-mode",
                "-c",
                str(config),
                "--line",
                "L1",
                "--operator",
                "Ann",
                "washdown",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=False,
        )
        assert washdown.returncode == 0, washdown.stderr
        assert washdown.stdout.strip() == "line L1: washdown (by Ann)"
        unknown = subprocess.run(
            [
                *lineside,
                "line-mode",
                "-c",
                str(config),
                "--line",
                "L7",
                "--operator",
                "Ann",
                "washdown",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=False,
        )
        assert unknown.returncode == 1
        assert "unknown line 'L7'" in unknown.stderr
        shelf = subprocess.run(
            [*lineside, "shelf-life", "-c", str(config), "--within-days", "9"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
            check=False,
        )
        assert shelf.returncode == 0, shelf.stderr
        assert shelf.stdout.startswith("R9 "), "packed today: use-by in 9 days"
        assert "9 day(s) left" in shelf.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        db = sqlite3.connect(db_path)
        [detail] = db.execute(
            "SELECT detail FROM device_events WHERE kind = 'line_mode' AND line = 'L1'"
        ).fetchone()
        stored = json.loads(detail)
        assert stored == {
            "mode": "washdown",
            "previous_mode": "production",
            "operator": "Ann",
            "os_user": stored["os_user"],  # who ran the CLI, as the kernel says
            "os_uid": os.getuid(),
        }
    finally:
        reap(proc, signal.SIGKILL)
        listener.close()
