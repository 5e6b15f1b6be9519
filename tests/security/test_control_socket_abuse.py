"""The operator control socket under abuse from a local user who may connect to it.

* A flood of idle connections (1,100 against a gateway held to 1,024 open files): the
  gateway keeps recording, answering ``status`` over the socket and ``/readyz`` over HTTP;
  the refusals are logged a few times, not once per connection, and never as tracebacks.
* Hostile fields: a 60 KB operator name full of terminal escapes, ``minutes: true``, a 70 KB
  comment, a 70 KB request line: each gets a clear refusal (the CLI prints it; no
  traceback) and the gateway goes on; the refusal is logged.
* Every record an operator command writes names the OS user the kernel vouches for
  (``SO_PEERCRED``) beside the typed name.
* The socket's group and mode, its connection limit and idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import pwd
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import StoreSection
from gateway.control import (
    MAX_REQUEST_BYTES,
    ControlServer,
    send_command,
)
from gateway.core.clock import ManualClock, SystemClock
from gateway.core.errors import ControlSocketError
from gateway.core.records import AlertRecord, Severity
from gateway.store import Store
from tests.support.configs import minimal_config_text
from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.processes import reap
from tests.support.running_gateway import answers, gateway_in_process, health_toml, http_get
from tests.support.waiting import wait_for

FLOOD = 1100
GATEWAY_FILE_LIMIT = 1024
ME = pwd.getpwuid(os.getuid()).pw_name
LATCHED = "label_gap.L1.scan1.41-43"
ANSI_NAME = "\x1b[2J\x1b[31mEVIL" + "A" * 60_000


# ---------------------------------------------------------------------------- helpers


def edge(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchall()


async def lineside(*args: str) -> tuple[int, str, str]:
    """The CLI in a child process (this loop keeps serving the in-process gateway)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@contextlib.contextmanager
def open_files_allowed(count: int) -> Iterator[int]:
    """Raise this process's soft limit of open files to ``count`` (or its hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield max(soft, wanted)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def flood(path: Path, count: int, *, patience_s: float = 1.0) -> tuple[list[socket.socket], int]:
    """``count`` connections that never send anything; those that connected, and failures.

    A connection waits while the listen backlog is full (the kernel says EAGAIN), as a
    blocking client would, but only ``patience_s``: a gateway that stopped accepting must
    not hang the test.
    """
    held: list[socket.socket] = []
    failed = 0
    for _ in range(count):
        deadline = time.monotonic() + patience_s
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(str(path))
            except BlockingIOError:  # the backlog is full
                sock.close()
                if time.monotonic() < deadline:
                    time.sleep(0.002)
                    continue
                failed += 1
            except OSError:
                sock.close()
                failed += 1
            else:
                held.append(sock)
            break
    return held, failed


def _limit_open_files() -> None:  # runs in the gateway child before exec
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (GATEWAY_FILE_LIMIT, hard))


def start_gateway(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``lineside run`` held to 1,024 open files, its log in a file (a pipe nobody reads
    would stall a flooding gateway)."""
    with log_path.open("w") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
            cwd=REPO,
            stderr=log_file,
            preexec_fn=_limit_open_files,  # noqa: PLW1509 (the test starts no threads before)
        )


async def seed_latched_alert(db_path: Path) -> None:
    """A latched label-gap alert in the store, restored when the gateway starts."""
    async with Store(StoreSection(path=db_path, commit_interval_ms=20), SystemClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        await store.write(
            AlertRecord(
                ts_us=SystemClock().wall_us(),
                alert_id=LATCHED,
                rule="label_gap",
                subject="scan1 labels 41-43",
                severity=Severity.MAJOR,
                state="raised",
                message="labels 41-43 missing",
                line="L1",
            )
        )
        await store.stop_committer()
        await committer


# ---------------------------------------------------------------------------- the flood


async def test_a_connection_flood_leaves_the_gateway_answering_without_a_log_flood(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "lineside.db"
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(minimal_config_text(db_path) + health_toml(port))
    socket_path = tmp_path / "control.sock"
    log_path = tmp_path / "gateway.log"
    with open_files_allowed(FLOOD + 1500) as allowed:
        assert allowed >= FLOOD + 200, f"this test needs {FLOOD + 200} open files, has {allowed}"
        proc = start_gateway(config, log_path)
        held: list[socket.socket] = []
        try:
            readyz = f"http://127.0.0.1:{port}/readyz"
            await wait_for(lambda: answers(readyz, 200), 30, "the gateway ready")
            await wait_for(socket_path.exists, 10, "the control socket")
            started = time.monotonic()
            held, failed = await asyncio.to_thread(flood, socket_path, FLOOD)
            assert len(held) + failed == FLOOD

            # Still answering over HTTP, at once.
            response = await http_get(readyz)
            assert response.status_code == 200, response.text
            # And over the socket: an idle connection makes room (or, while all are
            # fresh, the answer is a quick, clear "busy").
            answers_seen: list[str] = []

            async def status_answers() -> bool:
                try:
                    answer = await send_command(socket_path, {"command": "status"})
                except (OSError, TimeoutError) as exc:
                    answers_seen.append(repr(exc))
                    return False
                if answer.get("ok") is False:
                    answers_seen.append(str(answer.get("error")))
                    assert "busy" in str(answer.get("error")), answer
                    return False
                return "system" in answer

            await wait_for(status_answers, 20, "a status answer during the flood")
            # An operator command during the flood is carried out and recorded; a busy
            # answer is retried, as an operator would.
            errors: list[str] = []

            async def run_started() -> bool:
                code, _out, err = await lineside(
                    "run-start", "--socket", str(socket_path), "--line", "L1", "--run", "R7",
                    "--operator", "Ann",
                )  # fmt: skip
                errors.append(err)
                assert code == 0 or "busy" in err, err
                return code == 0

            await wait_for(run_started, 20, "run-start carried out during the flood", interval=0.5)
            assert "Traceback" not in errors[-1]
            response = await http_get(readyz)
            assert response.status_code == 200, response.text
            flood_seconds = time.monotonic() - started
        finally:
            for sock in held:
                sock.close()
            code = reap(proc, signal.SIGTERM, timeout=20)
    assert code == 0, log_path.read_text()[-3000:]
    log = log_path.read_text()
    assert "Traceback" not in log
    assert "Too many open files" not in log
    assert "out of system resource" not in log
    lines = log.splitlines()
    assert len(lines) < 60, f"{len(lines)} log lines:\n" + "\n".join(lines[:80])
    refusals = [line for line in lines if "control socket: refused a connection" in line]
    assert refusals, "the refusals are logged"
    assert len(refusals) <= 2 * (flood_seconds / 10 + 1), "two lines per 10 s at most"
    assert any("more like" in line for line in refusals), "those not logged are counted"
    # Nothing lost: the run started during the flood is stored, with who started it.
    [(actor, payload)] = edge(
        db_path, "SELECT actor, payload FROM run_versions WHERE run_number = 'R7'"
    )
    assert actor == "Ann"
    assert json.loads(payload)["recorded_by"]["os_user"] == ME


# ---------------------------------------------------------------------------- hostile fields


async def test_hostile_operator_fields_are_refused_clearly_and_commands_are_attributed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    db_path = tmp_path / "lineside.db"
    await seed_latched_alert(db_path)
    config = tmp_path / "gateway.toml"
    config.write_text(minimal_config_text(db_path))
    async with gateway_in_process(config) as status:
        socket_path = status.config.control_socket_path
        where = ("--socket", str(socket_path))

        # A 60 KB name full of terminal escapes: refused, said why, nothing echoed.
        code, _out, err = await lineside(
            "run-start", *where, "--line", "L1", "--run", "R1", "--operator", ANSI_NAME
        )
        assert code == 1
        assert "operator is" in err
        assert "at most 64" in err
        assert "Traceback" not in err
        assert "\x1b" not in err
        assert len(err) < 500
        # A short one with an escape: refused for the escape.
        code, _out, err = await lineside(
            "ack", LATCHED, *where, "--operator", "Ann\x1b[2J", "--comment", "x"
        )
        assert code == 1
        assert "control character" in err
        assert "U+001B" in err
        assert "Traceback" not in err
        assert "\x1b" not in err

        # minutes: true is not a number; nor is "30".
        for minutes in (True, "30", float("nan"), 0, 10_000):
            answer = await send_command(
                socket_path,
                {"command": "shelve", "alert_id": LATCHED, "operator": "Ann", "minutes": minutes},
            )
            assert answer == {"ok": False, "error": "minutes must be a number from 1 to 1440"}

        # A 70 KB comment: the CLI says the request is too large, no JSONDecodeError.
        code, _out, err = await lineside(
            "ack", LATCHED, *where, "--operator", "Ann", "--comment", "c" * 70_000
        )
        assert code == 1
        assert "at most 65536" in err
        assert "Traceback" not in err
        assert "JSONDecodeError" not in err
        # Under the request limit but over the comment limit.
        code, _out, err = await lineside(
            "ack", LATCHED, *where, "--operator", "Ann", "--comment", "c" * 2000
        )
        assert code == 1
        assert "comment is 2000 characters long; at most 500" in err

        # A 70 KB request line straight at the socket: a clear answer, then the close.
        reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=2**20)
        request = {"command": "acknowledge", "alert_id": LATCHED, "comment": "c" * 70_000}
        writer.write(json.dumps(request).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        answer = json.loads(await reader.readline())
        assert answer["ok"] is False
        assert f"at most {MAX_REQUEST_BYTES} bytes" in answer["error"]
        assert await reader.read() == b"", "then the gateway closes the connection"
        writer.close()

        # Odd JSON: numbers too large for anything, nesting too deep, a seq beyond SQLite.
        odd = {
            b'{"command": "shelve", "alert_id": "a", "operator": "b", "minutes": '
            + b"9" * 5000
            + b"}": "not a JSON object",
            b"[" * 60_000: "not a JSON object",
            b'{"command": "shelve", "alert_id": "a", "operator": "b", "minutes": 1e400}': (
                "minutes must be a number"
            ),
            b'{"command": "dead_letter_show", "seq": 1180591620717411303424}': (
                "seq must be a sequence number"
            ),
        }
        for raw, error in odd.items():
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
            writer.write(raw + b"\n")
            answer = json.loads(await reader.readline())
            writer.close()
            assert answer["ok"] is False
            assert error in answer["error"]

        # The gateway goes on: the alert is still there to acknowledge, by a proper name.
        code, _out, err = await lineside(
            "ack", LATCHED, *where, "--operator", "Ann", "--comment", "relabelled 41-43"
        )
        assert code == 0, err
        code, _out, err = await lineside(
            "run-start", *where, "--line", "L1", "--run", "R1", "--operator", "Bo"
        )
        assert code == 0, err
        code, _out, err = await lineside(
            "line-mode", *where, "--line", "L1", "--operator", "Cy", "washdown"
        )
        assert code == 0, err

    # Every record the commands wrote names the OS user beside the typed name.
    transitions = {
        state: json.loads(detail)
        for state, detail in edge(
            db_path, "SELECT state, detail FROM alerts WHERE alert_id = ? ORDER BY seq", (LATCHED,)
        )
    }
    assert transitions["acknowledged"]["operator"] == "Ann"
    assert transitions["acknowledged"]["os_user"] == ME
    assert transitions["acknowledged"]["comment"] == "relabelled 41-43"
    assert transitions["cleared"]["os_user"] == ME, "the latched alert's clear too"
    [(actor, payload)] = edge(
        db_path, "SELECT actor, payload FROM run_versions WHERE run_number = 'R1'"
    )
    assert actor == "Bo"
    assert json.loads(payload)["recorded_by"] == {
        "operator": "Bo",
        "os_user": ME,
        "os_uid": os.getuid(),
    }
    [(detail,)] = edge(db_path, "SELECT detail FROM device_events WHERE kind = 'line_mode'")
    assert json.loads(detail) == {
        "mode": "washdown",
        "previous_mode": "production",
        "operator": "Cy",
        "os_user": ME,
        "os_uid": os.getuid(),
    }
    # Nothing of the hostile requests reached the store.
    assert edge(db_path, "SELECT count(*) FROM run_versions") == [(1,)]
    # Each refusal is in the log, without a traceback and without the escapes.
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("operator is" in m for m in refused)
    assert any("minutes must be" in m for m in refused)
    assert any(f"above {MAX_REQUEST_BYTES} bytes" in m for m in refused)
    assert not any("\x1b" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)


# ---------------------------------------------------------------------------- limits


async def _serve(server: ControlServer) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.path.exists() or task.done(), 5)
    if task.done():
        task.result()
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _status(_request: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "system": {}}


async def test_beyond_the_limit_a_new_connection_is_refused_at_once_or_an_idle_one_goes(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    server = ControlServer(
        tmp_path / "c.sock", {"status": _status}, max_connections=2, evict_idle_s=0.5, clock=clock
    )
    task = await _serve(server)
    try:
        first = await asyncio.open_unix_connection(str(server.path))
        await wait_for(lambda: server.stats.accepted == 1, 5)
        clock.advance(0.1)  # the first is the older
        second = await asyncio.open_unix_connection(str(server.path))
        await wait_for(lambda: server.stats.accepted == 2, 5)
        # Both fresh: the third is refused at once, with a reason.
        started = time.monotonic()
        answer = await send_command(server.path, {"command": "status"})
        assert time.monotonic() - started < 1
        assert answer["ok"] is False
        assert "busy" in answer["error"]
        assert server.stats.refused_busy == 1
        # Once they have idled a while, the oldest makes room.
        clock.advance(0.6)
        assert await send_command(server.path, {"command": "status"}) == {
            "ok": True,
            "system": {},
        }
        assert server.stats.evicted_idle == 1
        assert await first[0].read() == b"", "the idle one was closed"
        for _reader, writer in (first, second):
            writer.close()
    finally:
        await _stop(task)


async def test_idle_and_slow_connections_are_closed(tmp_path: Path) -> None:
    server = ControlServer(tmp_path / "c.sock", {"status": _status}, idle_timeout_s=0.3)
    task = await _serve(server)
    try:
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        writer.write(b'{"command": "sta')  # half a request, then nothing
        await writer.drain()
        async with asyncio.timeout(3):
            assert await reader.read() == b""
        assert server.stats.closed_idle == 1
        writer.close()
    finally:
        await _stop(task)


async def test_the_socket_gets_the_configured_group_and_mode(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    server = ControlServer(tmp_path / "c.sock", {"status": _status}, group=group, mode=0o660)
    task = await _serve(server)
    try:
        await wait_for(lambda: (server.path.stat().st_mode & 0o777) == 0o660, 5)
        assert server.path.stat().st_gid == os.getgid()
    finally:
        await _stop(task)
    missing = ControlServer(tmp_path / "d.sock", {}, group="no-such-group-lineside")
    with pytest.raises(ControlSocketError, match="groupadd --system no-such-group-lineside"):
        await missing.serve()
    assert not (tmp_path / "d.sock").exists(), "no socket left behind"
    with pytest.raises(ValueError, match="nothing for others"):
        ControlServer(tmp_path / "e.sock", {}, mode=0o666)
