"""A throw-away mosquitto broker for the demo, on a free loopback port.

Only used by ``lineside demo`` when the ``mosquitto`` binary is installed; production
gateways connect to the site's broker configured in ``[sync.mqtt]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

DEBIAN_MOSQUITTO = Path("/usr/sbin/mosquitto")
PR_SET_PDEATHSIG = 1
"""prctl(2): the signal a child gets when the thread that started it dies."""


def _die_with_parent() -> None:
    """In the child, before exec: if the demo is killed outright (SIGKILL, OOM), the kernel
    terminates the broker too, so no mosquitto is left holding a port."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(folder: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    """Write a loopback-only config and start mosquitto; None when it is not installed.

    Called on the event loop's (main) thread: the death signal follows the thread that
    started the child, and a worker thread may end long before the demo does.
    """
    binary = shutil.which("mosquitto") or (
        str(DEBIAN_MOSQUITTO) if DEBIAN_MOSQUITTO.exists() else None
    )
    if binary is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {folder}/\n"
    )
    # The binary is the system's mosquitto and the config is ours: nothing untrusted.
    process = subprocess.Popen(  # noqa: S603
        [binary, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509  (prctl only; no locks taken)
    )
    return process, port


@contextlib.asynccontextmanager
async def demo_broker(folder: Path) -> AsyncIterator[int | None]:
    """Run mosquitto on 127.0.0.1 for the block; yields its port, or None if not installed."""
    started = _start(folder)
    if started is None:
        yield None
        return
    process, port = started
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        yield port
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, 5)
        if process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait)
