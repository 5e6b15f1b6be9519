"""The central ingest's settings (the CLI builds them from its config file)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from sync.ingest.ack_keys import AckKeys
from sync.ingest.auth import TokenFile
from sync.protocol import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, SHARE_GROUP_PATTERN

DB_POOL_SIZE_MAX = 32


def default_client_id() -> str:
    """``lineside-ingest-<host name>``: unique per machine, the same across restarts.

    Stable on purpose: the broker keeps this client's persistent session (and the batches
    queued while the ingest restarts) under its client id; a new id at every start (a pid in
    it) would leave a session behind at each restart to fill up until it expires. Two
    instances on one machine need ``--client-id`` each. With the shipped mosquitto config
    (``use_username_as_clientid``) the broker uses the ingest's user name instead, so nobody
    else can take this session over.
    """
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return f"lineside-ingest-{host or os.getpid()}"[:64]


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Where the ingest listens, which broker it consumes, and which warehouse it fills."""

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    client_id: str = field(default_factory=default_client_id)
    """The MQTT client id (see :func:`default_client_id`); stable across restarts: the broker
    keeps this client's persistent session (and its unacked batches)."""
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    """How long the broker keeps queuing for the ingest while it is down (≥ 1 h)."""
    receive_maximum: int = 64
    """Unacknowledged batches the broker may have in flight to the ingest (bounds memory)."""
    max_message_bytes: int = MAX_MESSAGE_BYTES
    """The largest MQTT packet the ingest accepts (its CONNECT's Maximum Packet Size: the
    broker drops larger messages for it); a larger payload is refused before it is parsed."""
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    mqtt_enabled: bool = True
    share_group: str | None = None
    """Consume through the shared subscription of this group (1..64 of ``[A-Za-z0-9_-]``):
    the broker gives each batch to one instance of the group. None: a plain subscription
    (one ingest gets every batch). Every instance needs its own ``client_id``."""
    ack_keys: AckKeys | None = field(default=None, repr=False)
    """Per-gateway keys the acks are signed with (:mod:`sync.ingest.ack_keys`); None: acks
    go out unsigned (a gateway configured with an ack key refuses them)."""

    http_host: str = "127.0.0.1"
    http_port: int = 8088
    """0 picks a free port (tests)."""
    http_max_body: int = MAX_BATCH_BYTES
    http_enabled: bool = True
    gateway_tokens: TokenFile | None = field(default=None, repr=False)
    """Who may POST (:mod:`sync.ingest.auth`); None: every POST is refused with 401."""
    http_tls_cert: Path | None = None
    """Serve HTTPS with this certificate (and ``http_tls_key``); plain HTTP without."""
    http_tls_key: Path | None = None
    http_tls_client_ca: Path | None = None
    """Also require a client certificate signed by this CA (mutual TLS)."""

    postgres_dsn: str | None = field(default=None, repr=False)
    """When set, the warehouse is PostgreSQL; otherwise the SQLite file ``sqlite_path``."""
    sqlite_path: Path = Path("var/ingest.db")
    db_pool_size: int = 4
    """PostgreSQL connections of this instance (1..32): as many batches commit at once.
    The embedded SQLite warehouse always commits one at a time."""

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id must not be empty")
        if self.session_expiry_s < 3600:
            raise ValueError(
                "session_expiry_s must be at least 3600 (docs/reference/reliability.md §3.1)"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        if not 0 < self.mqtt_port < 65536 or not 0 <= self.http_port < 65536:
            raise ValueError("ports must be in 1..65535 (http_port may be 0)")
        if not 0 < self.receive_maximum <= 65535:
            raise ValueError("receive_maximum must be in 1..65535")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ValueError("need 0 < reconnect_initial_s <= reconnect_max_s")
        if self.http_max_body <= 0:
            raise ValueError("http_max_body must be positive")
        if not 1024 <= self.max_message_bytes <= 268_435_455:
            raise ValueError("max_message_bytes must be in 1024..268435455 (MQTT's limit)")
        if (self.http_tls_cert is None) != (self.http_tls_key is None):
            raise ValueError("give both http_tls_cert and http_tls_key, or neither")
        if self.http_tls_client_ca is not None and self.http_tls_cert is None:
            raise ValueError("http_tls_client_ca needs http_tls_cert and http_tls_key")
        if not (self.mqtt_enabled or self.http_enabled):
            raise ValueError("enable MQTT, HTTP or both")
        self._check_scale_out()

    def _check_scale_out(self) -> None:
        """The settings that let several instances share the load."""
        if not 1 <= self.db_pool_size <= DB_POOL_SIZE_MAX:
            raise ValueError(f"db_pool_size must be in 1..{DB_POOL_SIZE_MAX}")
        if self.share_group is not None and not SHARE_GROUP_PATTERN.fullmatch(self.share_group):
            raise ValueError(
                f"share_group {self.share_group!r}: use 1 to 64 of A-Z a-z 0-9 _ - (no /, + or #)"
            )
