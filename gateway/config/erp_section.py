"""``[erp]``: where production runs come from (read only)."""

from __future__ import annotations

from typing import Annotated, Literal, Self
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from gateway.config.base import StrictModel
from gateway.config.paths import ConfigFile
from gateway.config.secret import Secret
from gateway.config.urls import check_url_credentials


class ErpBase(StrictModel):
    """Keys shared by every ERP source. The gateway only ever reads from the ERP."""

    poll_interval_s: float = Field(default=30.0, ge=1, le=3600)
    """How often runs changed since the watermark are fetched."""
    stale_after_s: float = Field(default=300.0, ge=10)
    """Age of the last good poll after which runs are treated as provisional."""
    timezone: str = "Europe/London"
    """Time zone of the ERP's naive date-times (IANA name)."""
    full_reload: bool = False
    """Ignore the stored watermark at start-up and fetch every run again."""
    watermark_overlap_s: float = Field(default=120.0, ge=0, le=86_400)
    """Each poll re-reads this much before the watermark, so rows the ERP commits late with
    an older ``Updated`` are not missed; unchanged runs read twice are ignored."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class HttpErp(ErpBase):
    """A JSON endpoint listing runs changed since a watermark (``?updated_since=``)."""

    kind: Literal["http"]
    url: str
    """Endpoint, e.g. ``https://erp.example/api/runs``. Only GET requests are ever sent."""
    token: Secret | None = None
    """Bearer token (a secret table)."""
    ca_file: ConfigFile | None = None
    """CA bundle to verify the ERP's certificate (default: the system's)."""
    page_size: int = Field(default=500, ge=1, le=10_000)
    """Runs per page."""
    max_response_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    """A longer response body is refused (protects the gateway's memory)."""
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    """TCP/TLS connect timeout."""
    read_timeout_s: float = Field(default=15.0, gt=0, le=300)
    """Timeout between bytes of the response."""
    total_timeout_s: float = Field(default=60.0, gt=0, le=600)
    """Longest a whole poll (all pages) may take; a slow drip is cut off."""
    retries: int = Field(default=3, ge=0, le=10)
    """Retries of 429/5xx/timeouts within one poll (exponential backoff, Retry-After)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = urlparse(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("url must be http(s)://host/path")
        return check_url_credentials(
            value,
            'put the ERP\'s token in token = { credential = "erp-token" } '
            "(sent as a Bearer header, only over https)",
        )

    @model_validator(mode="after")
    def _token_needs_tls(self) -> Self:
        host = urlparse(self.url).hostname or ""
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        if self.token is not None and urlparse(self.url).scheme == "http" and not loopback:
            raise ValueError("a token is only sent over https (or to this machine)")
        return self


class SqlErp(ErpBase):
    """A read-only query against the ERP database (the legacy ``RunNumber`` table)."""

    kind: Literal["sql"]
    url: str
    """Database URL, e.g. ``postgresql://lineside_ro@erp-db:5432/erp`` (no password here)."""
    password: Secret | None = None
    """The read-only login's password (a secret table)."""
    query: str
    """Explicit columns, ``WHERE Updated > :watermark ORDER BY Updated``; checked before use."""
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    """Rows fetched per round trip."""
    statement_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """Server-side limit for the query."""

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        return check_url_credentials(
            value,
            "the user name may stay in the URL; put the password in "
            'password = { credential = "erp-db-password" }',
            allow_user=True,
        )


Erp = Annotated[HttpErp | SqlErp, Field(discriminator="kind")]
"""The ERP source, chosen by its ``kind``."""
