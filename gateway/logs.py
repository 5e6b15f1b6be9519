"""Logging set-up: plain lines for people or JSON lines for journald, secrets redacted.

What the lines carry and mean is documented in docs/operations-logs.md: the structured
fields (gateway, line, device, run), the syslog priority prefix under systemd, and the
libraries kept at WARNING.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

from gateway.core.log_context import (
    FIELDS,
    ContextFilter,
    set_gateway_id,
)

REDACTED = "***"

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
