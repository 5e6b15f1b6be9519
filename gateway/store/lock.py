"""One writer per store: an exclusive ``flock`` on ``<database>.lock`` for as long as a
process has the store open.

A second ``lineside run`` with the same config, or ``lineside erp-sync`` beside the running
service, would otherwise open the same database: it would reserve its own block of
sequence numbers (which the first process does not re-read, so a number could be handed out
twice), take over the MQTT client id and, on exit, remove the running gateway's control
socket. ``flock`` is released by the kernel when the holder dies, so a crashed gateway
never leaves a stale lock behind, and the file's text (who holds it) is only a hint for the
message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path

from gateway.core.errors import StoreInUseError


def lock_path(database: Path) -> Path:
    """The lock file beside ``database``."""
    return database.with_name(database.name + ".lock")


class StoreLock:
    """Held from :meth:`acquire` to :meth:`release`; refuses when another process holds it."""

    def __init__(self, database: Path) -> None:
        self.path = lock_path(database)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreInUseError` naming the process that has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreInUseError(
                f"the store {self.path.with_suffix('')} is in use by {holder}; one gateway "
                "per store: stop it first (systemctl stop lineside-gateway)"
            ) from None
        command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"process {os.getpid()} ({command})\n".encode(), 0)
        except OSError:
            os.close(fd)  # a full disk: the caller reports it; the lock is not held
            raise
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (closing the file releases it)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
