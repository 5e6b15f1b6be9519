"""``[[devices]]`` of ``kind = "opcua"``: tags, groups, security."""

from __future__ import annotations

import re
from typing import Literal, Self
from urllib.parse import urlparse

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gateway.config.base import Identifier, StrictModel
from gateway.config.device_base import DeviceBase
from gateway.config.paths import ConfigFile, ConfigFolder
from gateway.config.secret import Secret
from gateway.config.tag_limits import TagLimits, check_bit_field, check_mask
from gateway.config.urls import check_url_credentials
from gateway.core.codecs.units import UNIT_ALIASES, UnitName


class OpcUaTag(TagLimits):
    """One OPC UA variable."""

    name: Identifier
    """What the value means for the device role (checkweigher signal, probe id, ``barcode``)."""
    node: str
    """Node id, e.g. ``ns=2;s=CW1.LastNetWeight`` or ``nsu=urn:x;i=1001``."""
    scale: float = 1.0
    """Value = raw × scale + offset, in ``unit`` (docs/devices.md, "Units and scale")."""
    offset: float = 0.0
    """Added after scaling."""
    unit: UnitName | None = None
    """Unit of raw × scale + offset when it is not the rule's (grams for weights, degC for
    temperatures), e.g. ``kg`` or ``degF``: the value is converted. The server's
    EngineeringUnits are checked against it (or against the rule's unit) when it has them."""
    bit: int | None = Field(default=None, ge=0, le=63)
    """A flag in an integer variable (a status word): bit 0 is the least significant bit; the
    tag reads true or false. Not with mask, min, max or fault_codes."""
    mask: int | None = Field(default=None, ge=1, le=2**64 - 1)
    """A group of adjacent bits of an integer variable (e.g. ``0x0F00``), shifted down: the
    tag reads that number. Not with bit or fault_codes."""

    @field_validator("node")
    @classmethod
    def _node_id_syntax(cls, value: str) -> str:
        if not re.fullmatch(r"(ns=\d+;|nsu=[^;]+;)?[isgb]=.+", value):
            raise ValueError(
                "not an OPC UA node id: ns=<index>;s=<name> (e.g. ns=2;s=CW1.LastNetWeight) "
                "or, stable when the server renumbers its namespaces, nsu=<namespace URI>;"
                "s=<name> (e.g. nsu=urn:vendor:cw;s=CW1.LastNetWeight)"
            )
        return value

    @field_validator("unit", mode="before")
    @classmethod
    def _unit_alias(cls, value: object) -> object:
        return UNIT_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator("bit", "mask")
    @classmethod
    def _bit_field(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.field_name is not None:
            data = info.data
            scaled = data.get("scale", 1.0) != 1.0 or data.get("offset", 0.0) != 0.0
            if scaled or data.get("unit"):
                raise ValueError(
                    "a bit field is not scaled: remove scale, offset and unit, "
                    f"or {info.field_name}"
                )
            check_bit_field(info.field_name, data)
            if info.field_name == "mask":
                check_mask(value, 64, "an OPC UA integer")
        return value


class OpcUaTagGroup(StrictModel):
    """Tags read the same way: by subscription or by polling."""

    name: Identifier = "default"
    """Group name, used in logs and metrics."""
    mode: Literal["subscribe", "poll"] = "subscribe"
    """``subscribe`` creates monitored items; ``poll`` reads every ``poll_interval_ms``."""
    publishing_interval_ms: int = Field(default=250, ge=10, le=60_000)
    """Subscription publishing interval."""
    sampling_interval_ms: int = Field(default=100, ge=0, le=60_000)
    """Server-side sampling interval of each monitored item (0 = fastest)."""
    queue_size: int = Field(default=100, ge=1, le=10_000)
    """Server-side queue per monitored item, so fast changes are not collapsed."""
    deadband: Literal["none", "absolute", "percent"] = "none"
    """Data-change filter deadband type."""
    deadband_value: float = Field(default=0.0, ge=0)
    """Deadband width (engineering units, or percent of the EU range)."""
    poll_interval_ms: int = Field(default=1000, ge=10, le=3_600_000)
    """Poll period when ``mode = "poll"``."""
    tags: tuple[OpcUaTag, ...] = Field(min_length=1)
    """The variables in this group."""


class OpcUaSecurity(StrictModel):
    """OPC UA SignAndEncrypt security. There is no fallback to no security."""

    policy: Literal["Aes256_Sha256_RsaPss", "Aes128_Sha256_RsaOaep", "Basic256Sha256"]
    """Security policy; the deprecated Basic128Rsa15 and Basic256 are not offered."""
    certificate: ConfigFile
    """This gateway's application instance certificate (DER or PEM); keep it stable."""
    private_key: ConfigFile
    """The certificate's private key (PEM)."""
    server_certificate: ConfigFile | None = None
    """The server's certificate, pinned. Either this or ``trusted_certificates``."""
    trusted_certificates: ConfigFolder | None = None
    """A folder of trusted server/CA certificates (and ``crl/`` for revocation lists)."""
    application_uri: str = "urn:lineside:gateway"
    """Must match the URI in the client certificate's subjectAltName."""

    @model_validator(mode="after")
    def _trust_is_configured(self) -> Self:
        if self.server_certificate is None and self.trusted_certificates is None:
            raise ValueError(
                "give server_certificate (pinned) or trusted_certificates: "
                "a server certificate taken on first use is not trusted"
            )
        return self


class OpcUaDevice(DeviceBase):
    """A device read over OPC UA (asyncua)."""

    kind: Literal["opcua"]
    endpoint: str
    """Server endpoint, ``opc.tcp://host:port/path``."""
    security: OpcUaSecurity | None = None
    """SignAndEncrypt settings; omit only for a server on an isolated network."""
    username: str | None = None
    """User name for user-token authentication."""
    password: Secret | None = None
    """Password for ``username`` (a secret table, never clear text)."""
    watchdog_interval_s: float = Field(default=5.0, gt=0, le=300)
    """How often the session is checked alive; a dead session is recreated."""
    groups: tuple[OpcUaTagGroup, ...] = Field(min_length=1)
    """Tag groups, each subscribed or polled."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_opc_tcp(cls, value: str) -> str:
        url = urlparse(value)
        if url.scheme != "opc.tcp" or not url.hostname:
            raise ValueError("endpoint must look like opc.tcp://host:4840/path")
        return check_url_credentials(
            value,
            'give username = "..." and password = { credential = "opcua-password" }',
        )

    @model_validator(mode="after")
    def _password_needs_user(self) -> Self:
        if (self.password is None) != (self.username is None):
            raise ValueError("username and password go together")
        return self

    @model_validator(mode="after")
    def _units_fit_the_tags(self) -> Self:
        self._units_fit_the_role((t.name, t.unit) for g in self.groups for t in g.tags)
        return self

    def tag_names(self) -> list[str]:
        """All tag names across the groups."""
        return [t.name for g in self.groups for t in g.tags]

    def bit_fields(self) -> dict[str, str]:
        """Tags that read part of a value: name -> ``bit`` or ``mask``."""
        return {
            t.name: "bit" if t.bit is not None else "mask"
            for g in self.groups
            for t in g.tags
            if t.bit is not None or t.mask is not None
        }
