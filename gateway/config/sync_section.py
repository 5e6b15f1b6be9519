"""``[sync]``: store-and-forward to the central warehouse over MQTT or HTTPS."""

from __future__ import annotations

from typing import Self
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gateway.config.base import StrictModel
from gateway.config.paths import ConfigFile
from gateway.config.secret import Secret
from gateway.config.urls import URL_CREDENTIALS, check_url_credentials


class MqttSync(StrictModel):
    """The MQTT uplink to the central warehouse (and the andon boards)."""

    host: str
    """Broker host."""
    port: int = Field(default=1883, ge=1, le=65535)
    """Broker port (8883 for TLS by convention)."""
    username: str | None = None
    """Broker user name: the gateway id, under the shipped ACL (config/mosquitto/acl)."""
    password: Secret | None = None
    """Broker password (a secret table)."""
    ca_file: ConfigFile | None = None
    """CA certificate: when set, the connection uses TLS and verifies the broker."""
    ack_key: Secret | None = None
    """Key of the ingest's ack signatures (HMAC-SHA256; a secret table, e.g.
    ``{ credential = "ack-key" }``; the ingest has the same key for this gateway in its
    ``--ack-keys`` file). When set, an unsigned or badly signed ack is refused; when not, acks
    are not authenticated and only the broker's ACL keeps them from being forged."""
    cert_file: ConfigFile | None = None
    """Client certificate for TLS client authentication."""
    key_file: ConfigFile | None = None
    """The client certificate's private key."""
    keepalive_s: int = Field(default=15, ge=5, le=600)
    """MQTT keep-alive: a hung broker is noticed within 1.5 x this."""
    batch_records: int = Field(default=2000, ge=1, le=10_000)
    """Most records per batch. Batches start at 500 records (or this, if lower) and grow
    towards this while the warehouse acknowledges full batches quickly (a backlog the link
    carries), shrinking again when acks slow down (docs/architecture.md, "Delivery pace")."""
    batch_bytes: int = Field(default=1024 * 1024, ge=1024, le=4 * 1024 * 1024)
    """Most uncompressed bytes per batch; starts at 256 KiB (or this, if lower), like
    ``batch_records``."""
    window: int = Field(default=8, ge=1, le=16)
    """Most batches in flight waiting for the warehouse's acknowledgement (besides one slot
    kept for alerts); starts at 4 (or this, if lower) and widens once batches are at their
    largest, like ``batch_records``."""
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    """First delay before reconnecting to a lost broker; doubles with jitter up to
    ``reconnect_max_s``."""
    reconnect_max_s: float = Field(default=2.0, gt=0, le=300)
    """Longest delay between reconnect attempts: a broker back from an outage is noticed
    within this, and the andon state is republished as soon as it accepts the connection.
    Keep it short for the site broker (a refused attempt costs one packet); raise it only for
    a broker shared by very many gateways."""

    @field_validator("host")
    @classmethod
    def _host_not_url(cls, value: str) -> str:
        if "@" in value or "://" in value:
            raise PydanticCustomError(
                URL_CREDENTIALS,
                "host is a host name or address, not a URL; the broker login goes in "
                'username = "..." and password = { credential = "mqtt-password" }',
            )
        return value

    @model_validator(mode="after")
    def _tls_pairs(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("a client certificate needs ca_file (TLS)")
        if (self.password is None) != (self.username is None):
            raise ValueError("username and password go together")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        if self.ack_key is not None and len(self.ack_key.get_secret_value().encode()) < 16:
            raise ValueError("ack_key must be at least 16 bytes (e.g. 32 random bytes in base64)")
        return self


class HttpsSync(StrictModel):
    """The HTTPS uplink: batches POSTed to the central ingest with an Idempotency-Key."""

    url: str
    """The ingest endpoint, e.g. ``https://ingest.example/v1/ingest``."""
    ca_file: ConfigFile | None = None
    """CA to verify the ingest's certificate (default: the system's)."""
    cert_file: ConfigFile | None = None
    """Client certificate for TLS client authentication."""
    key_file: ConfigFile | None = None
    """The client certificate's private key."""
    token: Secret | None = None
    """This gateway's bearer token (a secret table; ``lineside ingest-token add`` makes it)."""
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Per-request timeout; a timed-out batch is sent again with the same key."""
    batch_records: int = Field(default=2000, ge=1, le=10_000)
    """Most records per batch. Batches start at 500 records (or this, if lower) and grow
    towards this while the ingest answers full batches quickly, shrinking again when its
    answers slow down (docs/architecture.md, "Delivery pace")."""
    batch_bytes: int = Field(default=1024 * 1024, ge=1024, le=4 * 1024 * 1024)
    """Most uncompressed bytes per batch; starts at 256 KiB (or this, if lower)."""

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        return check_url_credentials(
            value,
            'put the ingest\'s token in token = { credential = "ingest-token" } or use a '
            "client certificate (cert_file, key_file)",
        )

    @model_validator(mode="after")
    def _secure(self) -> Self:
        url = urlparse(self.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("url must be https://host/path")
        loopback = url.hostname in ("localhost", "::1") or url.hostname.startswith("127.")
        if url.scheme == "http" and not loopback:
            raise ValueError("the ingest is reached over https (plain http only on this machine)")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class SyncSection(StrictModel):
    """Store-and-forward to the central warehouse (MQTT, HTTPS, or both)."""

    mqtt: MqttSync | None = None
    """The MQTT uplink (also publishes the andon state); without it, no andon."""
    https: HttpsSync | None = None
    """The HTTPS uplink to the central ingest."""
    report_backlog: bool = False
    """Batches carry the outbox depth when they were cut (``backlog``, ``backlog_at_us``),
    for the warehouse's fleet view. Only for an ingest that knows these fields: an older
    one refuses a batch with keys it does not know (docs/topics-and-payloads.md)."""

    @model_validator(mode="after")
    def _one_record_path(self) -> Self:
        if self.mqtt is not None and self.https is not None:
            # Both would drain the same outbox; the warehouse dedupes, but the bandwidth
            # is spent twice. Pick one path for records.
            raise ValueError("configure [sync.mqtt] or [sync.https] for records, not both")
        return self
