"""A real HAProxy (Debian's ``/usr/sbin/haproxy``) in front of several HTTPS ingest instances.

TCP mode, passing TLS through: each gateway's TLS session ends at an ingest instance, so the
certificate check, the bearer token and (where configured) the client certificate are exactly
those of a gateway talking to one ingest; HAProxy only picks the instance, per connection,
round robin. Terminating TLS at HAProxy would put another certificate and another hop in the
path the test means to prove unchanged.

Health checks: an HTTP ``GET /v1/healthz`` over TLS to every instance every 300 ms (verified
against the test's CA); an instance that fails two checks is taken out, and a connection
refused by one that died before its check noticed is dispatched to another (``retries``
with ``option redispatch``). The config is written into the test's folder, the port is a free
one, HAProxy runs in the foreground (``-db``) in a session of its own and is ended with its
whole group. Its runtime API (a UNIX socket in the same folder) says which servers are up and
how many sessions each one took.
"""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path
from types import TracebackType

from tests.support.ports import free_port
from tests.support.processes import Group
from tests.support.waiting import wait_for

HAPROXY = os.environ.get("LINESIDE_HAPROXY", "/usr/sbin/haproxy")

_CONFIG = """\
global
    maxconn 4096
    stats socket {socket} mode 600 level admin

defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 2s
    retries 3
    option redispatch

frontend ingest
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk GET /v1/healthz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1 check check-ssl verify required ca-file {ca}
{servers}
"""


class HaProxy:
    """One HAProxy process balancing ``backends`` (name -> port on 127.0.0.1)."""

    def __init__(self, directory: Path, backends: dict[str, int], ca_file: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.socket_path = directory / "haproxy.sock"
        self.config_path = directory / "haproxy.cfg"
        self.log_path = directory / "haproxy.log"
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port}" for name, port in backends.items()
        )
        self.config_path.write_text(
            _CONFIG.format(socket=self.socket_path, port=self.port, ca=ca_file, servers=servers)
        )
        self._process: Group | None = None

    def start(self) -> None:
        self._process = Group([HAPROXY, "-db", "-f", str(self.config_path)], self.log_path)

    def stop(self) -> None:
        if self._process is not None:
            self._process.end()
            self._process = None

    def __enter__(self) -> HaProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def alive(self) -> bool:
        """True while it runs; one that exited fails the test, with its log."""
        if self._process is None:
            raise AssertionError("haproxy was not started")
        return self._process.alive()

    def servers(self) -> dict[str, dict[str, str]]:
        """The runtime API's ``show stat`` for each server of the backend (``status``:
        ``UP``/``DOWN``..., ``stot``: sessions it took)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        lines = b"".join(chunks).decode().lstrip("# ").splitlines()
        rows = csv.DictReader(line for line in lines if line)
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == "instances" and row["svname"] not in ("BACKEND", "FRONTEND")
        }

    def _all_up(self) -> bool:
        self.alive()
        try:
            servers = self.servers()
        except OSError:
            return False
        return bool(servers) and all(row["status"] == "UP" for row in servers.values())

    async def ready(self, timeout_s: float = 20.0) -> None:
        """Wait until it listens and has seen every instance healthy."""
        await wait_for(self._all_up, timeout_s, "haproxy with every instance up", interval=0.1)
