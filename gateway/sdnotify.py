"""systemd's notify protocol (sd_notify(3)) without a dependency on systemd.

When ``NOTIFY_SOCKET`` is unset (not under systemd with ``Type=notify``) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends ``READY=1``, ``STOPPING=1``, ``STATUS=...`` and ``WATCHDOG=1`` to systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written with a leading '@' (sd_notify(3)).
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval = self._watchdog_interval(env)

    @staticmethod
    def _watchdog_interval(env: Mapping[str, str]) -> float | None:
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0:
            return None
        if pid and pid != str(os.getpid()):
            return None  # the watchdog is meant for another process
        # Ping at half the timeout, as sd_watchdog_enabled(3) recommends.
        return int(usec) / 1_000_000 / 2

    @property
    def enabled(self) -> bool:
        """Whether there is a notify socket to talk to."""
        return bool(self._address)

    def notify(self, message: str) -> None:
        """Send one notification; errors are logged, never raised (systemd may be gone)."""
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode())
        except OSError as exc:
            log.warning("sd_notify %r failed: %s", message.split("=", 1)[0], exc)

    async def watchdog(self) -> None:
        """Ping ``WATCHDOG=1`` from the event loop, so a blocked loop stops the pings."""
        if self.watchdog_interval is None or not self._address:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)
