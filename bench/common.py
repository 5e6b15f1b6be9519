"""Plumbing shared by the phases: child processes, their CPU and memory, readiness, counting.

Every measured party runs in its own process, so its CPU time (all threads, from
``/proc/<pid>/stat``) and its memory (``VmRSS``) are its own: the gateway is the real
``lineside run`` process; peers (OPC UA and Modbus servers) and bare-library clients are
``python -m bench.peers`` / ``python -m bench.bare`` processes that talk JSON lines.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A phase could not be measured (a peer failed, a condition was never reached)."""


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, all its threads."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    # Fields 14 and 15 of proc(5) (utime, stime); fields[0] is field 3 (state).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def own_cpu_seconds() -> float:
    """CPU seconds of this process, all threads."""
    return time.process_time()


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> float:
    """Poll ``condition`` until true; return the seconds it took. BenchError on timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


def count(db_path: Path, sql: str, parameters: Sequence[object] = ()) -> int:
    """One integer from a read-only query (0 if the database or table is not there yet)."""
    if not db_path.exists():
        return 0
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(sql, parameters).fetchone()
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()
    return int(row[0]) if row and row[0] is not None else 0


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def log_tail(path: Path, lines: int = 30) -> str:
    """The end of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _stop_process(process: subprocess.Popen[Any], timeout: float) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
            return None
    return process.returncode


class JsonPeer:
    """A child process that prints one JSON line when ready and answers JSON-line commands.

    ``python -m bench.peers ...`` and ``python -m bench.bare ...`` speak this: the first line
    on stdout is ``{"ready": true, ...}``; then each command written to stdin gets exactly one
    JSON line back. Closing stdin asks the child to finish.
    """

    def __init__(self, args: Sequence[str], *, log: Path, ready_timeout: float = 30.0) -> None:
        self.args = [PYTHON, "-m", *args]
        self.log = log
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        """The child's process id."""
        if self.process is None:
            raise BenchError("peer not started")
        return self.process.pid

    def start(self) -> dict[str, Any]:
        """Start the child and return its ready line."""
        with self.log.open("ab") as stderr:
            self.process = subprocess.Popen(
                self.args,
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                bufsize=1,
            )
        self.ready = self._read_line(self.ready_timeout)
        return self.ready

    def call(self, timeout: float = 60.0, **command: object) -> dict[str, Any]:
        """Send one command and return its answer."""
        process = self._running()
        assert process.stdin is not None
        process.stdin.write(json.dumps(command) + "\n")
        process.stdin.flush()
        return self._read_line(timeout)

    def _running(self) -> subprocess.Popen[str]:
        if self.process is None or self.process.poll() is not None:
            raise BenchError(f"{' '.join(self.args[2:4])} is not running:\n{log_tail(self.log)}")
        return self.process

    def _read_line(self, timeout: float) -> dict[str, Any]:
        process = self._running()
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        # The child answers promptly or dies; select() keeps a hung child from hanging us.
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no answer from {self.args[2:4]}:\n{log_tail(self.log)}")
            readable, _, _ = select.select([process.stdout], [], [], min(left, 0.5))
            if readable:
                line = process.stdout.readline()
                if not line:
                    process.wait(5)
                    raise BenchError(
                        f"{self.args[2:4]} exited ({process.returncode}):\n{log_tail(self.log)}"
                    )
                answer: dict[str, Any] = json.loads(line)
                if "error" in answer:
                    raise BenchError(f"{self.args[2:4]}: {answer['error']}")
                return answer
            if process.poll() is not None:
                raise BenchError(
                    f"{self.args[2:4]} exited ({process.returncode}):\n{log_tail(self.log)}"
                )

    def close(self, timeout: float = 15.0) -> None:
        """Ask the child to finish (stdin closed), then SIGTERM/SIGKILL if it does not."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _stop_process(process, 5.0)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NotifySocket:
    """A datagram socket standing in for systemd's ``NOTIFY_SOCKET`` (sd_notify(3))."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))

    def wait_for(self, message: str, timeout: float) -> float:
        """Block until a datagram containing ``message`` arrives; its ``monotonic()`` time."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no {message} on the notify socket within {timeout:.0f} s")
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            if message in data.decode(errors="replace").splitlines():
                return time.monotonic()

    def close(self) -> None:
        """Close and remove the socket."""
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass
class GatewayProcess:
    """``lineside run --config CONFIG`` as a child process, READY reported over sd_notify."""

    config: Path
    log: Path
    ready_timeout: float = 60.0
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_at: float = 0.0
    notify: NotifySocket | None = None

    @property
    def pid(self) -> int:
        """The gateway's process id."""
        if self.process is None:
            raise BenchError("gateway not started")
        return self.process.pid

    @property
    def startup_s(self) -> float:
        """Seconds from spawning the process to its ``READY=1``."""
        return self.ready_at - self.started_at

    def start(self) -> float:
        """Start the gateway and wait for ``READY=1``; the start-up time in seconds."""
        # Kept open until stop(): the gateway also says STOPPING=1.
        self.notify = notify = NotifySocket(self.config.with_name(self.config.stem + ".notify"))
        env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as stderr:
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(
                [PYTHON, "-m", "gateway.cli", "run", "--config", str(self.config)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        try:
            self.ready_at = notify.wait_for("READY=1", self.ready_timeout)
        except BenchError as exc:
            self.stop()
            raise BenchError(f"{exc}; gateway log:\n{log_tail(self.log)}") from None
        return self.startup_s

    def check_alive(self) -> None:
        """BenchError (with the log) if the gateway has exited."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise BenchError(f"the gateway exited ({code}):\n{log_tail(self.log)}")

    def cpu_seconds(self) -> float:
        """The gateway's CPU seconds so far."""
        self.check_alive()
        return cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        """The gateway's resident memory in MiB."""
        self.check_alive()
        return rss_mb(self.pid)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean stop: the pending batch is committed); the exit code."""
        process, self.process = self.process, None
        try:
            return None if process is None else _stop_process(process, timeout)
        finally:
            if self.notify is not None:
                self.notify.close()
                self.notify = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Sample:
    """A point of a measurement window: wall time, CPU seconds, and a count of work done."""

    at: float
    cpu: float
    done: int


def rate(first: Sample, last: Sample) -> tuple[float, float]:
    """(work per second, CPU µs per unit of work) between two samples."""
    seconds = last.at - first.at
    work = last.done - first.done
    per_s = work / seconds if seconds > 0 else math.nan
    cpu_us = (last.cpu - first.cpu) * 1e6 / work if work > 0 else math.nan
    return per_s, cpu_us


@contextlib.contextmanager
def peers(*items: JsonPeer) -> Iterator[list[dict[str, Any]]]:
    """Start several peers; close them all (in reverse) on the way out."""
    started: list[JsonPeer] = []
    try:
        readies = []
        for item in items:
            readies.append(item.start())
            started.append(item)
        yield readies
    finally:
        for item in reversed(started):
            item.close()


def read_json_line(text: str) -> dict[str, Any]:
    """The last JSON object line of a child's output."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise BenchError(f"no JSON result in: {text[-500:]!r}")
