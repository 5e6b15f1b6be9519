"""Every process the suite starts carries a mark in its environment, so whatever a test
leaves running can be found, named and ended, even a grandchild in a session of its own
(the demo's back end) or a broker that outlived the gateway that started it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import IO, Any

from tests.support.paths import REPO, repo_pythonpath

MARK = "LINESIDE_TEST_SUITE"


def mark_this_suite() -> str:
    """Put the mark in this process's environment (children inherit it); its value.

    Under pytest-xdist each worker inherits the controller's mark and extends it with its
    own name, so one worker's check never claims (or kills) what another worker started."""
    value = os.environ.get(MARK) or f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not value.endswith(f"-{worker}"):
        value = f"{value}-{worker}"
    os.environ[MARK] = value
    return value


def suite_processes() -> dict[int, str]:
    """Live processes of this suite (not this one): pid to command line."""
    needle = f"{MARK}={os.environ[MARK]}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip()
                found[int(entry.name)] = cmdline.decode(errors="replace")
    return found


def end_processes(pids: dict[int, str], grace_s: float = 5.0) -> dict[int, str]:
    """Give ``pids`` ``grace_s`` to exit on their own, then SIGKILL what is left; returns
    those that had to be killed."""
    deadline = time.monotonic() + grace_s
    alive = dict(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid: cmd for pid, cmd in alive.items() if _running(pid)}
        if alive:
            select_sleep(0.05)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _running(pid: int) -> bool:
    """True for a process that has not exited (a zombie has: it only waits to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def select_sleep(seconds: float) -> None:
    """Sleep without clock_nanosleep (see ``tests/support/faketime_compat``)."""
    import select  # noqa: PLC0415

    select.select([], [], [], seconds)


def reap(proc: subprocess.Popen[Any], signum: int = signal.SIGTERM, timeout: float = 15) -> int:
    """End a child the test started: ``signum`` if it still runs, SIGKILL after ``timeout``;
    wait for it and close its pipes. Returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    code = proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    return code


def end_group(proc: subprocess.Popen[Any], timeout: float = 15) -> int:
    """End a child started in a session of its own (``start_new_session=True``) with its
    whole process group: SIGCONT first, since a stopped process acts on no other signal
    until continued, then SIGTERM, and SIGKILL after ``timeout``. Returns its exit code."""
    for signum in (signal.SIGCONT, signal.SIGTERM):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    code = proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything it started that outlived it
    return code


def run_in_group(argv: list[str], *, cwd: Path, timeout: float) -> tuple[int, str]:
    """Run a command to its end in a session of its own; (exit code, stderr). Whatever it
    started is ended with it, also when ``timeout`` expires (then TimeoutExpired)."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        end_group(proc)
    return proc.returncode, stderr


def child_env(**extra: str) -> dict[str, str]:
    """This environment, with the repository importable, and ``extra``."""
    return {**os.environ, "PYTHONPATH": repo_pythonpath(), **extra}


class Group:
    """A child process in a session of its own, output to a log file."""

    def __init__(self, argv: list[str], log: Path, **env: str) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=child_env(**env),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        """True while it runs; a child that exited fails the test, with its log."""
        if self.proc.poll() is None:
            return True
        raise AssertionError(
            f"{self.proc.args!r} exited with {self.proc.returncode}:\n{self.tail()}"
        )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def end(self) -> int:
        """SIGTERM to the group (a clean stop), SIGKILL after a grace period."""
        try:
            return end_group(self.proc, timeout=20)
        finally:
            self._out.close()
