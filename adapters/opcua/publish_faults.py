"""Keeps asyncua's "ServiceFault (BadNoSubscription ...)" for a Publish out of the WARNINGs.

A client keeps Publish requests queued at the server (OPC 10000-4 §5.13.5). Once the last
subscription is deleted, which is how the adapter stops (session.py ``teardown``), the
server answers them, or the next one, with Bad_NoSubscription: the spec's way of saying
"nothing left to publish". asyncua's publish loop treats that answer as the end of
publishing (it logs it at INFO and returns), but its socket layer has already logged the
same answer as a WARNING, once per queued request, at every clean stop. This filter demotes
exactly that record (BadNoSubscription in response to a PublishRequest) to DEBUG; any other
ServiceFault stays a WARNING.
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["PUBLISH_FAULT_LOGGER", "DemoteNoSubscription"]

PUBLISH_FAULT_LOGGER: Final = "asyncua.client.ua_client.UASocketProtocol"


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
