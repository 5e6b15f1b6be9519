"""The state of a link to a peer: a device, the uplink, the ERP.

In the core because the adapters, the uplinks, the status and health reports and the
metrics all speak of it, and none of them may import another for it.
"""

from __future__ import annotations

from enum import StrEnum


class LinkState(StrEnum):
    """Connection state of one device or uplink, shown in the TUI and metrics."""

    DISABLED = "disabled"
    CONNECTING = "connecting"
    UP = "up"
    DEGRADED = "degraded"
    """Connected, but some tags are bad or the device asks to wait (busy, failure)."""
    DOWN = "down"
    """Not connected; reconnecting with backoff."""
