"""Keeps asyncua's "Future for request id N is already done" out of the WARNINGs.

asyncua logs that line when the server's answer to a request arrives after the request's
waiter has gone. The waiter goes in one of two ways, and the adapter has already dealt with
both before the answer arrives:

- it was cancelled: a stop, or the end of a lost session, cancels the adapter's tasks while
  one of their Reads is on the wire. asyncua stays quiet about answers that arrive once it
  is closing the session, but the tasks are cancelled first, so an answer that lands in
  between is logged as a WARNING, at a clean stop;
- it timed out: the ``TimeoutError`` reached the code that asked, which reports it
  (status.py ``translate_error``: "no answer in time") and ends the session.

The late answer itself tells an operator nothing, so this filter demotes exactly that record
to DEBUG. Every other record of asyncua's socket layer keeps its level.
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["LATE_ANSWER", "DemoteLateAnswer"]

LATE_ANSWER: Final = "Future for request id %s is already done"


class DemoteLateAnswer(logging.Filter):
    """An answer whose waiter has gone is logged at DEBUG, or not at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (or the record at DEBUG when that is enabled) for a late answer."""
        if not (record.levelno == logging.WARNING and record.msg == LATE_ANSWER):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # The logger let the record through at WARNING; only a debugging log still wants it.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
