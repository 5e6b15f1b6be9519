"""The API's own refusals, answered as JSON ``{"error": ..., "reason": ...}``."""

from __future__ import annotations

from central.errors import CentralError


class BadRequest(CentralError, ValueError):
    """A query parameter the API cannot answer (400)."""
