"""The central read side's errors, on the one tree of gateway/core/errors.py."""

from __future__ import annotations

from gateway.core.errors import LinesideError


class CentralError(LinesideError):
    """The central read side (warehouse reader, API, dashboard) could not answer."""


class WarehouseReadError(CentralError):
    """The warehouse cannot be reached or read (connection refused, lost, bad schema)."""


class NotFound(CentralError, LookupError):
    """What was asked for (a run, a batch code, a serial) is not in the warehouse."""


class Ambiguous(CentralError, LookupError):
    """A run number recorded by more than one gateway, asked for without naming the gateway."""

    def __init__(self, message: str, gateways: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.gateways = gateways
        """The gateways that recorded the run."""
