"""The read API's settings (``lineside warehouse serve`` builds them from its flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.core.clock import Clock, SystemClock
from sync.ingest.auth import TokenFile


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Who may read, how much one answer may hold, and the clock of "now"."""

    tokens: TokenFile | None = field(default=None, repr=False)
    """The API's read tokens (``lineside warehouse token``); None: no bearer token is
    accepted (then TLS client certificates must authenticate every client)."""
    client_certificates: bool = False
    """The server requires a client certificate signed by ``tls_client_ca`` (mutual TLS):
    the TLS handshake has authenticated every connection, so a request needs no token."""
    clock: Clock = field(default_factory=SystemClock)
    """"Now" for ``/fleet`` and ``/shelf-life``: the real clock in production, a fixed one in
    tests (the reader never reads a clock)."""
    default_rows: int = 1000
    """Rows a list endpoint answers when ``limit`` is not given."""
    max_rows: int = 10_000
    """The largest ``limit`` accepted; more is refused with 400."""
    max_span_days: int = 366
    """The longest ``since``..``until`` span a query may ask for."""
    retry_after_s: int = 5
    """``Retry-After`` of a 503 (warehouse unavailable)."""

    host: str = "127.0.0.1"
    port: int = 8090
    """0 picks a free port (tests)."""
    tls_cert: Path | None = None
    """Serve HTTPS with this certificate (and ``tls_key``); plain HTTP without."""
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """Require a client certificate signed by this CA (mutual TLS)."""

    def __post_init__(self) -> None:
        if not 0 < self.default_rows <= self.max_rows:
            raise ValueError("need 0 < default_rows <= max_rows")
        if self.max_span_days < 1 or self.retry_after_s < 1:
            raise ValueError("max_span_days and retry_after_s must be positive")
        if not 0 <= self.port < 65536:
            raise ValueError("port must be in 0..65535")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key")
        if self.client_certificates and self.tls_client_ca is None:
            raise ValueError("client_certificates needs tls_client_ca")
        if self.tokens is None and not self.client_certificates:
            raise ValueError("give read tokens, client certificates (tls_client_ca), or both")
