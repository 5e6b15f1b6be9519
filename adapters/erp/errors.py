"""Errors of the ERP adapters (HTTP and SQL sources share them).

Library errors (psycopg, httpx ...) are translated into these at the adapter boundary
with ``raise ... from exc`` so the cause is kept; a library error never leaks out
(gateway/errors.py: one exception tree).

    LinesideError
      ErpError               anything the ERP source could not do (carries the cause)
        ErpUnavailable         transient: connection refused, timeout, lost: retry later
        ErpRefused             a guard, the login or the database refused: never retried
        ErpDataError           the ERP answered, but the response is garbage
"""

from __future__ import annotations

from gateway.errors import LinesideError


class ErpError(LinesideError):
    """The ERP source failed; the base of every ERP error."""


class ErpUnavailable(ErpError):
    """The ERP cannot be reached now (refused, timeout, connection lost): retry with backoff."""


class ErpRefused(ErpError):
    """A guard refused the query or login, or the ERP refused it: retrying cannot help."""


class ErpDataError(ErpError):
    """The ERP answered with something that is not a valid response (garbage)."""
