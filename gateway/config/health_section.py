"""``[health]``: the local health and metrics endpoint."""

from __future__ import annotations

from pydantic import Field

from gateway.config.base import StrictModel


class HealthSection(StrictModel):
    """The local HTTP endpoint: ``/healthz``, ``/readyz`` and ``/metrics`` (Prometheus)."""

    host: str = "127.0.0.1"
    """Address to listen on. Loopback by default; a LAN address lets a Prometheus server on
    another machine scrape ``/metrics`` (nothing secret is served, but keep it on the LAN)."""
    port: int = Field(default=9180, ge=1, le=65535)
    """TCP port."""
    require_devices: bool = True
    """``/readyz`` answers 503 while any enabled device is not connected."""
    require_uplink: bool = True
    """``/readyz`` answers 503 while the uplink to the warehouse is not connected (when
    ``[sync.mqtt]`` or ``[sync.https]`` is configured)."""
