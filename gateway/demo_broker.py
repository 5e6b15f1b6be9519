"""A throw-away mosquitto broker for the demo, on a free loopback port, with the shipped
authorisation.

Only used by ``lineside demo`` when the ``mosquitto`` binary is installed; production
gateways connect to the site's broker configured in ``[sync.mqtt]``. The broker runs the
shipped ``config/mosquitto/mosquitto.conf`` and ``acl`` (:func:`sync.broker_auth.render_config`:
only the listener, files and persistence folder differ), so anonymous clients are refused and
every identity writes only its own topics. Each start makes new random passwords for the
demo's identities (the gateway, the ingest, an andon board) and a password file beside the
config (mode 0600); ``passwords.json`` there lets a person try an andon board
(``mosquitto_sub -u andon-board -P ...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from sync.broker_auth import (
    ANDON_BOARD_USER,
    INGEST_USER,
    SHIPPED_ACL,
    SHIPPED_CONF,
    render_config,
    write_password_file,
)

DEBIAN_MOSQUITTO = Path("/usr/sbin/mosquitto")
PR_SET_PDEATHSIG = 1
"""prctl(2): the signal a child gets when the thread that started it dies."""


def _die_with_parent() -> None:
    """In the child, before exec: if the demo is killed outright (SIGKILL, OOM), the kernel
    terminates the broker too, so no mosquitto is left holding a port."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class DemoBroker:
    """The running demo broker: where it listens and the demo's logins."""

    port: int
    passwords: dict[str, str] = field(repr=False)
    """user name → password: the gateway (its id), ``lineside-ingest``, ``andon-board``."""
    ack_key: str = field(default="", repr=False)
    """The key the demo ingest signs the gateway's acks with (new at each start)."""


def _start(folder: Path, gateway: str) -> tuple[subprocess.Popen[bytes], DemoBroker] | None:
    """Write the shipped config for a loopback port and start mosquitto; None when it is not
    installed (or the shipped config is not there).

    Called on the event loop's (main) thread: the death signal follows the thread that
    started the child, and a worker thread may end long before the demo does.
    """
    binary = shutil.which("mosquitto") or (
        str(DEBIAN_MOSQUITTO) if DEBIAN_MOSQUITTO.exists() else None
    )
    if binary is None or not SHIPPED_CONF.exists():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    passwords = {
        user: secrets.token_urlsafe(24) for user in (gateway, INGEST_USER, ANDON_BOARD_USER)
    }
    password_file = folder / "passwd"
    write_password_file(password_file, passwords)
    fd = os.open(folder / "passwords.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(passwords, out, indent=2)
    conf = folder / "mosquitto.conf"
    conf.write_text(
        render_config(
            port=port,
            password_file=password_file,
            acl_file=SHIPPED_ACL,
            persistence_dir=folder,
            # As root, mosquitto would switch to its own user, which cannot read our files.
            run_as=getpass.getuser(),
            extra=f"log_dest file {folder / 'mosquitto.log'}",
        )
    )
    # The binary is the system's mosquitto and the config is ours: nothing untrusted.
    process = subprocess.Popen(  # noqa: S603
        [binary, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509  (prctl only; no locks taken)
        # Its own session: a Ctrl-C at the terminal goes to the whole foreground process
        # group, and a broker that stopped at once would cut the ingest and the gateway off
        # while they finish (a warning at every stop). The demo stops it last, below.
        start_new_session=True,
    )
    return process, DemoBroker(port, passwords, ack_key=secrets.token_urlsafe(32))


@contextlib.asynccontextmanager
async def demo_broker(folder: Path, gateway: str) -> AsyncIterator[DemoBroker | None]:
    """Run mosquitto on 127.0.0.1 for the block with logins for ``gateway``, the ingest and
    an andon board; yields where and how to connect, or None if it is not installed."""
    started = _start(folder, gateway)
    if started is None:
        yield None
        return
    process, broker = started
    port = broker.port
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        yield broker
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, 5)
        if process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait)
