"""Keeps two of asyncua's Publish records that are no news out of the WARNINGs and ERRORs.

**A Publish answered with BadNoSubscription.**

A client keeps Publish requests queued at the server (OPC 10000-4 §5.13.5). Once the last
subscription is deleted, which is how the adapter stops (session.py ``teardown``), the
server answers them, or the next one, with Bad_NoSubscription: the spec's way of saying
"nothing left to publish". asyncua's publish loop treats that answer as the end of
publishing (it logs it at INFO and returns), but its socket layer has already logged the
same answer as a WARNING, once per queued request, at every clean stop. This filter demotes
exactly that record (BadNoSubscription in response to a PublishRequest) to DEBUG; any other
ServiceFault stays a WARNING.

**A Publish that failed because the connection is gone.** When the connection to the server
drops (the server closed it, or asyncua dropped it itself when a subscription's notification
queue overflowed), the Publish on the wire fails with ``ConnectionError("Connection is
closed")`` and every retry, once a second until the adapter has torn the session down, with
``ConnectionError("client is disconnected")``. asyncua's publish loop logs each of them as
an ERROR with a full traceback ("Publish iteration crashed"). The adapter already reports
that loss once, as the device's link going down (client.py), and reconnects; the traceback
says nothing more, and under load it made a recovered connection look like a crash in the
log. :class:`DemoteLostConnectionPublish` demotes exactly those records (that message, a
``ConnectionError``) to DEBUG; the loop crashing on anything else keeps its ERROR and its
traceback.
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = [
    "PUBLISH_FAULT_LOGGER",
    "PUBLISH_LOOP_LOGGER",
    "DemoteLostConnectionPublish",
    "DemoteNoSubscription",
]

PUBLISH_FAULT_LOGGER: Final = "asyncua.client.ua_client.UASocketProtocol"
PUBLISH_LOOP_LOGGER: Final = "asyncua.client.ua_session.UaSession"
PUBLISH_LOOP_CRASHED: Final = "Publish iteration crashed"


class DemoteNoSubscription(logging.Filter):
    """A Publish answered with BadNoSubscription is logged at DEBUG, or not at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (or the record at DEBUG when that is enabled) for the expected fault."""
        args = record.args if isinstance(record.args, tuple) else ()
        if not (
            record.levelno == logging.WARNING
            and str(record.msg).startswith("ServiceFault")
            and len(args) >= 3  # (status name, diagnostics, context)
            and args[0] == "BadNoSubscription"
            and "PublishRequest" in str(args[2])
        ):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # The logger let the record through at WARNING; only a debugging log still wants it.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class DemoteLostConnectionPublish(logging.Filter):
    """A Publish that failed on a lost connection is logged at DEBUG, or not at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (or the record at DEBUG when that is enabled) for a lost connection."""
        error = record.exc_info[1] if record.exc_info else None
        if not (
            record.levelno == logging.ERROR
            and str(record.msg).startswith(PUBLISH_LOOP_CRASHED)
            and isinstance(error, ConnectionError)
        ):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
