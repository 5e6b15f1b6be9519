"""Logging set-up: plain lines for people or JSON lines for journald, secrets redacted.

What the lines carry and mean is documented in docs/operations-logs.md: the structured
fields (gateway, line, device, run), the syslog priority prefix under systemd, and the
libraries kept at WARNING.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

REDACTED = "***"

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

# Libraries whose INFO and DEBUG are protocol chatter (pymodbus writes frames as hex):
# capped at WARNING whatever the gateway's own level.
NOISY_LIBRARIES: Final = ("asyncua", "pymodbus", "aiosqlite", "httpx", "httpcore")

# sd-daemon(3): a line starting "<N>" on a stream connected to the journal is logged at
# syslog priority N (2 crit, 3 err, 4 warning, 6 info, 7 debug).
_PRIORITIES: Final = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)


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


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level (a custom level takes the next one below)."""
    for floor, priority in _PRIORITIES:
        if levelno >= floor:
            return priority
    return 7


def stream_is_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether ``stream`` is systemd's journal stream (``$JOURNAL_STREAM`` names its inode).

    systemd sets ``JOURNAL_STREAM=<dev>:<ino>`` for a service whose stdout or stderr goes to
    the journal (systemd.exec(5)); comparing it with the stream's own device and inode tells a
    redirected stream (a file, a pipe to ``less``) from the journal.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (int(dev), int(ino))


class JournalPriorityFormatter(logging.Formatter):
    """Prefixes every line of another formatter's output with ``<N>``, its syslog priority.

    Every line: the journal splits a traceback into one entry per line, and each needs the
    prefix to keep the record's priority (``journalctl -p err`` shows the whole traceback).
    """

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's text, each line prefixed."""
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


class RedactingFilter(logging.Filter):
    """Replaces every configured secret value in a log message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message, redact it, and freeze it so formatters can't re-expand it."""
        if self._secrets:
            message = record.getMessage()
            for secret in self._secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
            if record.exc_info and record.exc_info[1] is not None:
                text = logging.Formatter().formatException(record.exc_info)
                for secret in self._secrets:
                    text = text.replace(secret, REDACTED)
                record.exc_text, record.exc_info = text, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the known fields
    (gateway, line, device, run) and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    *,
    level: str = "info",
    fmt: Literal["plain", "json"] = "plain",
    secrets: Iterable[str] = (),
    gateway_id: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Send logs to stderr (journald picks them up under systemd, with their priorities)."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(secrets))
    handler.addFilter(ContextFilter())
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    if stream_is_journal(stream):
        formatter = JournalPriorityFormatter(formatter)
    handler.setFormatter(formatter)
    if gateway_id is not None:
        set_gateway_id(gateway_id)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO (pymodbus' hex frame dumps at DEBUG) drowns the gateway's own
    # messages; the gateway's debug level is about the gateway, not the wire.
    for noisy in NOISY_LIBRARIES:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
