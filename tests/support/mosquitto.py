"""A real mosquitto broker for tests: ephemeral loopback port, generated config, restartable.

    with Mosquitto(tmp_path, persistence=True) as broker:
        ... broker.port ...
        broker.stop()    # SIGTERM: a clean shutdown (writes the persistence file)
        broker.start()   # the same port and the same persistence folder
        broker.kill()    # SIGKILL: a crash (nothing saved since the last autosave)

The broker binds 127.0.0.1 only and allows anonymous clients. ``start()`` returns once the
port accepts TCP connections (polled every 20 ms), and fails with the broker's log if it exits
or does not listen in time.

With ``users={name: password}`` it runs the **shipped** configuration instead
(``config/mosquitto/mosquitto.conf`` and, unless ``acl`` names another, ``config/mosquitto/acl``,
rendered by :func:`sync.broker_auth.render_config`: only the listener, the files, the
persistence folder and the log lines differ): anonymous clients refused, every login confined
by the ACL, the shipped packet size limit. ``extra_config`` lines are appended (a test may add
``log_type debug`` to see refused publishes in :meth:`log_tail`, or lift a limit).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from sync.broker_auth import SHIPPED_ACL, render_config, write_password_file
from tests.support.ports import free_port

MOSQUITTO = os.environ.get("LINESIDE_MOSQUITTO", "/usr/sbin/mosquitto")


class _PortTaken(RuntimeError):
    pass


class Mosquitto:
    """One mosquitto process (restartable) with its config, log and persistence folder."""

    def __init__(
        self,
        directory: Path,
        *,
        persistence: bool = False,
        port: int | None = None,
        extra_config: str = "",
        start_timeout: float = 10.0,
        users: dict[str, str] | None = None,
        acl: Path | None = None,
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.persistence = persistence
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.extra_config = extra_config
        self.start_timeout = start_timeout
        self.persistence_dir = directory / "persistence"
        self.persistence_dir.mkdir(exist_ok=True)
        self.config_path = directory / "mosquitto.conf"
        self.log_path = directory / "mosquitto.log"
        self.users = dict(users) if users is not None else None
        """user → password under the shipped config; None: the open test config."""
        self.acl = acl or SHIPPED_ACL
        self.password_path = directory / "passwd"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """Where clients connect."""
        return "127.0.0.1"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> None:
        if self.users is not None:
            write_password_file(self.password_path, self.users)
            self.config_path.write_text(
                render_config(
                    port=self.port,
                    password_file=self.password_path,
                    acl_file=self.acl,
                    persistence_dir=self.persistence_dir if self.persistence else None,
                    run_as=getpass.getuser(),
                    extra="\n".join(["log_dest stderr", self.extra_config]),
                )
            )
            return
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # Run as whoever runs the tests (as root, mosquitto would switch to 'mosquitto',
            # which cannot write the temporary folder).
            f"user {getpass.getuser()}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.persistence_dir}/",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp true",
            self.extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start the broker (same port as before) and wait until it accepts connections."""
        for attempt in range(3):
            try:
                self._start_once()
            except _PortTaken:
                # The ephemeral port was taken between probing and binding: pick another,
                # but only before the first successful start (restarts keep their port).
                if self._fixed_port or attempt == 2:
                    raise
                self.port = free_port()
            else:
                self._fixed_port = True
                return

    def _start_once(self) -> None:
        if self.running:
            raise RuntimeError("mosquitto is already running")
        self._write_config()
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                if "Address already in use" in self.log_tail(5):
                    raise _PortTaken(self.port)
                raise RuntimeError(
                    f"mosquitto exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto did not listen on {self.port}:\n{self.log_tail()}")
            time.sleep(0.02)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            self._process = None
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        self._process = None

    def stop(self, timeout: float = 10.0) -> None:
        """Clean shutdown (SIGTERM); with persistence on, sessions and queues are saved."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Crash the broker (SIGKILL)."""
        self._signal_and_wait(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        """Clean stop, then start on the same port."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the broker's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
