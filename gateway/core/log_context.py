"""Which gateway, line, device and run a log line is about: set where it is known, read by
the log handlers (gateway/logs.py). In the core, so that adapters and rules can name their
device, line or run without depending on how the process logs (docs/operations-logs.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Final

FIELDS: Final = ("gateway", "line", "device", "run")
"""The structured fields a JSON line carries when they are known."""

# The gateway id is one per process and paho's network thread logs too, which a context
# variable would not reach: a plain module value, set once at start.
_gateway_id: str | None = None
# Device, line and run belong to a task: an adapter's task sets its device and line once,
# and every task it starts (asyncua's and pymodbus' own) inherits them.
_context: Final[dict[str, ContextVar[str | None]]] = {
    name: ContextVar(f"lineside_log_{name}", default=None) for name in ("line", "device", "run")
}


def set_gateway_id(gateway_id: str | None) -> None:
    """Name the gateway in every log line from now on (set once at start)."""
    global _gateway_id  # noqa: PLW0603 - one value per process, read by every handler
    _gateway_id = gateway_id


def bind_log_context(
    *, line: str | None = None, device: str | None = None, run: str | None = None
) -> None:
    """Set the line, device or run of the current task (and the tasks it starts)."""
    for name, value in (("line", line), ("device", device), ("run", run)):
        if value is not None:
            _context[name].set(value)


@contextlib.contextmanager
def log_context(
    *, line: str | None = None, device: str | None = None, run: str | None = None
) -> Iterator[None]:
    """Set the line, device or run for the lines logged inside the block."""
    tokens = [
        (_context[name], _context[name].set(value))
        for name, value in (("line", line), ("device", device), ("run", run))
        if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Puts gateway, line, device and run on each record, unless the call gave them (extra=)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Fill the missing fields from the process and the task."""
        if getattr(record, "gateway", None) is None:
            record.gateway = _gateway_id
        for name, var in _context.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


__all__ = [
    "FIELDS",
    "ContextFilter",
    "bind_log_context",
    "current_gateway_id",
    "log_context",
    "set_gateway_id",
]


def current_gateway_id() -> str | None:
    """The gateway id set at start (None before)."""
    return _gateway_id
