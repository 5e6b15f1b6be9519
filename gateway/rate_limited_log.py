"""A log that says a repeated message a few times per interval, then how many more came."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter

log = logging.getLogger("gateway.control")

LOG_INTERVAL_S = 10.0
"""Refusals and closures of one kind are logged at most once per this many seconds."""


class RateLimitedLog:
    """Messages of one kind at most ``burst`` times per interval; those held back are counted
    and the count is logged when the interval ends (a flood costs a few lines per interval)."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._window: dict[str, tuple[float, int]] = {}
        """Per kind: when its interval began and how many were logged in it."""
        self._held: Counter[str] = Counter()
        self._what: dict[str, str] = {}
        self._flushing: dict[str, asyncio.TimerHandle] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        self.log(logging.WARNING, kind, message, *args)

    def log(
        self,
        level: int,
        kind: str,
        message: str,
        *args: object,
        burst: int = 1,
        exc_info: bool = False,
    ) -> None:
        now = time.monotonic()
        began, logged = self._window.get(kind, (now - self.interval_s, 0))
        if now - began >= self.interval_s:
            began, logged = now, 0
        if logged >= burst:
            self._held[kind] += 1
            if kind not in self._flushing:
                with contextlib.suppress(RuntimeError):  # no running loop: counted only
                    self._flushing[kind] = asyncio.get_running_loop().call_later(
                        began + self.interval_s - now, self.flush, kind
                    )
            return
        self._window[kind] = (began, logged + 1)
        self._what[kind] = message % args if args else message
        log.log(level, message, *args, exc_info=exc_info)

    def flush(self, kind: str | None = None) -> None:
        """Log how many messages of ``kind`` (or of every kind) were held back."""
        for name in [kind] if kind is not None else list(self._held):
            timer = self._flushing.pop(name, None)
            if timer is not None:
                timer.cancel()
            held = self._held.pop(name, 0)
            if held:
                # The summary opens the next interval: a flood costs two lines per interval.
                self._window[name] = (time.monotonic(), 1)
                log.warning(
                    "%d more like %r in the last %.0f s (not logged one by one)",
                    held,
                    self._what.get(name, name),
                    self.interval_s,
                )
