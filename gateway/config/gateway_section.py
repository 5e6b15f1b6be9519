"""``[gateway]``: who this gateway is, how it logs, its control socket."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from gateway.config.base import Identifier, StrictModel
from gateway.config.paths import ConfigPath


class GatewaySection(StrictModel):
    """Who this gateway is and how it logs."""

    id: Identifier
    """Gateway id, unique across the company; part of every synced record's identity."""
    site: Identifier
    """Site (factory) id; part of the MQTT topic layout."""
    site_name: str | None = Field(default=None, min_length=1, max_length=200)
    """The site's name for people (e.g. ``Grimsby smokehouse``): announced to the warehouse
    with the lines' names (docs/warehouse-schema.md). Default: none."""
    log_format: Literal["plain", "json"] = "plain"
    """``plain`` for people, ``json`` (one object per line) for journald and log shippers."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level written to the log."""
    shutdown_timeout_s: float = Field(default=4.0, gt=0, le=30)
    """Time allowed for stopping intake, committing the pending batch and closing devices."""
    control_socket: ConfigPath | None = None
    """UNIX socket for operator commands. Default: ``control.sock`` beside the database."""
    control_socket_group: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$"
    )
    """Group given the control socket: the operators' own group (e.g. ``lineside-operators``),
    so operators reach the socket and nothing else (the store, keys and secrets stay with the
    gateway's user). The gateway's user must be a member (``SupplementaryGroups=``). Default:
    the gateway's own group."""
    control_socket_mode: int = 0o660
    """Permissions of the control socket (TOML ``0o660``): the owner needs read and write;
    nothing for others is accepted."""
    control_max_connections: int = Field(default=16, ge=1, le=256)
    """Control connections served at once (each TUI holds one). When all are taken, the one
    idle longest makes room, or the new one is refused at once."""
    control_idle_timeout_s: float = Field(default=60.0, ge=1, le=3600)
    """A control connection without a request (or not reading its answer) for this long is
    closed."""

    @field_validator("control_socket_mode")
    @classmethod
    def _socket_mode(cls, value: int) -> int:
        if value & ~0o777 or value & 0o600 != 0o600 or value & 0o007:
            raise ValueError(
                f"mode {value:#o}: the owner needs read and write (0o600) and others get "
                "nothing (e.g. 0o660)"
            )
        return value
