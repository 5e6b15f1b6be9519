"""Configuration: one TOML file parsed into strict, frozen pydantic v2 models.

Unknown keys are rejected (with the nearest known key), values must have their key's exact
type and are checked against the domain when the file is loaded, and every problem is
reported with its key path (see :func:`load_config`). Relative paths in the file are
resolved against the directory of the file, so a config travels with the files it names;
every file it names must exist and be readable at load (docs/configuration.md).

Secrets are never written in the TOML in clear text. A secret is a table naming where the
value lives, exactly one of::

    password = { env = "LINESIDE_OPCUA_PASSWORD" }   # an environment variable
    password = { file = "secrets/opcua-password" }   # a file (relative to the config)
    password = { credential = "opcua-password" }     # systemd LoadCredential=, read
                                                     # from $CREDENTIALS_DIRECTORY
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import parse_qsl, urlparse, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from adapters.codecs.bitfields import is_contiguous
from adapters.codecs.registers import (
    DataType,
    Table,
    WordOrder,
    parse_modicon_address,
    register_count,
)
from adapters.codecs.units import CELSIUS, GRAM, UNIT_ALIASES, UNITS, UnitName
from gateway.config_hints import did_you_mean, keys_at
from gateway.config_references import Reference, reference_problems
from gateway.errors import MISSING, ConfigError, ConfigProblem
from rules.actions import DEFAULT_ACTIONS, RULES_WITH_ACTIONS

IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Ids of gateways, sites, lines, devices and tags: they end up in MQTT topics and file names."""


class StrictModel(BaseModel):
    """Base of every config model: unknown keys rejected, values frozen after load."""

    # strict: a value must have the key's type ("502" is no port, true is no 1), as TOML
    # writes it; a TOML integer still fills a float key (pydantic's strict float takes ints).
    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, strict=True
    )

    @model_validator(mode="before")
    @classmethod
    def _arrays_are_tuples(cls, data: object) -> object:
        # TOML arrays arrive as lists; strict mode takes only tuples for the tuple keys.
        if isinstance(data, dict):
            return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return data


# --------------------------------------------------------------------------------------
# Secrets and paths


def _resolve_secret(value: object, info: ValidationInfo) -> SecretStr:
    """Turn a ``{env|file|credential = ...}`` table into the secret's value."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        raise ValueError(
            "secrets are not accepted in clear text; give a table with one of "
            "env = 'VAR', file = 'path' or credential = 'name'"
        )
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError("a secret is a table with exactly one of: env, file, credential")
    ((source, name),) = value.items()
    if not isinstance(name, str) or not name:
        raise ValueError(f"secret source {source!r} needs a non-empty string")
    context = info.context or {}
    environ: Mapping[str, str] = context.get("environ", os.environ)
    if source == "env":
        if name not in environ:
            raise ValueError(f"environment variable {name} is not set")
        return SecretStr(environ[name])
    if source == "file":
        path = _resolve_path(Path(name), context)
    elif source == "credential":
        directory = environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ValueError(
                f"credential {name!r} needs $CREDENTIALS_DIRECTORY (set by systemd LoadCredential=)"
            )
        path = Path(directory) / name
    else:
        raise ValueError(f"unknown secret source {source!r}; use env, file or credential")
    try:
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None


_SECRET_SCHEMA: dict[str, Any] = {
    "description": "A secret: exactly one of env, file or credential (never clear text).",
    "type": "object",
    "properties": {
        "env": {"type": "string", "description": "environment variable name"},
        "file": {"type": "string", "description": "file path, relative to the config file"},
        "credential": {"type": "string", "description": "name under $CREDENTIALS_DIRECTORY"},
    },
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
}

Secret = Annotated[
    SecretStr, BeforeValidator(_resolve_secret), WithJsonSchema(_SECRET_SCHEMA, mode="validation")
]
"""A secret read from the environment, a file, or systemd credentials at load time."""


def _resolve_path(path: Path, context: Mapping[str, Any]) -> Path:
    base = context.get("base_dir")
    path = path.expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(os.path.normpath(Path(base) / path))
    return path


def _path_from_config(value: object, info: ValidationInfo) -> object:
    if isinstance(value, str | Path):
        return _resolve_path(Path(value), info.context or {})
    return value


ConfigPath = Annotated[
    Path,
    BeforeValidator(_path_from_config),
    WithJsonSchema({"type": "string", "format": "path"}, mode="validation"),
]
"""A path; relative ones are taken relative to the directory of the config file."""


def _readable(path: Path, *, folder: bool) -> Path:
    """``path`` when it is a readable file (or folder); the error names the resolved path.

    Checked when the config is loaded, so ``check-config`` (and ``lineside run``, which exits
    3 on a config error) says which named file is missing rather than the TLS library at run
    time, naming none (docs/configuration.md, "Files the config names").
    """
    what = "folder" if folder else "file"
    try:
        found = path.stat()
    except FileNotFoundError:
        raise ValueError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
    kind_ok = stat.S_ISDIR(found.st_mode) if folder else stat.S_ISREG(found.st_mode)
    if not kind_ok:
        raise ValueError(f"not a {what}: {path}")
    if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        raise ValueError(f"{what} not readable by this user (uid {os.getuid()}): {path}")
    return path


ConfigFile = Annotated[ConfigPath, AfterValidator(partial(_readable, folder=False))]
"""A path to a file that must exist and be readable when the config is loaded."""

ConfigFolder = Annotated[ConfigPath, AfterValidator(partial(_readable, folder=True))]
"""A path to a folder that must exist and be readable when the config is loaded."""

Identifier = Annotated[str, Field(pattern=IDENTIFIER)]


# --------------------------------------------------------------------------------------
# URLs: never with credentials in them

URL_CREDENTIALS = "url_credentials"
"""The pydantic error type of a URL with credentials: its value is shown redacted."""

_SECRET_QUERY_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "sslpassword",
        "token",
        "access_token",
        "auth_token",
        "api_key",
        "apikey",
        "api-key",
        "secret",
        "client_secret",
    }
)
"""Query parameters that carry a secret."""


def check_url_credentials(value: str, where: str, *, allow_user: bool = False) -> str:
    """Refuse a URL that carries a password (``user:pw@``), a user name (unless
    ``allow_user``) or a secret query parameter; the message says where it goes instead.

    A URL is logged, shown by the doctor and, over ``http://``, sent in clear: a secret in it
    leaks. Secrets go in the config's secret tables (``{ credential = "NAME" }``).
    """
    url = urlsplit(value)
    query = parse_qsl(url.query, keep_blank_values=True)
    found = []
    if url.password is not None:
        found.append("a password")
    elif url.username is not None and not allow_user:
        found.append("a user name")
    keys = sorted({key for key, _ in query if key.lower() in _SECRET_QUERY_KEYS})
    if keys:
        found.append(f"the secret query parameter(s) {', '.join(keys)}")
    if found:
        raise PydanticCustomError(
            URL_CREDENTIALS,
            "credentials in the URL are refused ({found}): URLs are logged and shown, and "
            "may travel in clear; {where}",
            {"found": " and ".join(found), "where": where},
        )
    return value


def redact_url(value: object) -> object:
    """``value`` with the password and secret query values of a URL replaced by ``***``."""
    if not isinstance(value, str):
        return value
    try:
        url = urlsplit(value)
        netloc = url.netloc
        if url.password is not None or url.username is not None:
            host = netloc.rpartition("@")[2]
            user = url.username or ""
            netloc = f"{user}:***@{host}" if url.password is not None else f"***@{host}"
        query = "&".join(
            f"{k}=***" if k.lower() in _SECRET_QUERY_KEYS else f"{k}={v}"
            for k, v in parse_qsl(url.query, keep_blank_values=True)
        )
        return urlunsplit((url.scheme, netloc, url.path, query, ""))
    except ValueError:
        return "***"


# --------------------------------------------------------------------------------------
# Gateway, store, lines


class GatewaySection(StrictModel):
    """Who this gateway is and how it logs."""

    id: Identifier
    """Gateway id, unique across the company; part of every synced record's identity."""
    site: Identifier
    """Site (factory) id; part of the MQTT topic layout."""
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


class StoreSection(StrictModel):
    """The local SQLite store: the device's single source of truth."""

    path: ConfigPath
    """Database file. Its directory also holds the sequence reservation and quarantine."""
    commit_interval_ms: int = Field(default=250, ge=5, le=5000)
    """Group commit: the longest a stored record waits before its transaction commits."""
    commit_max_rows: int = Field(default=2000, ge=1, le=100_000)
    """Group commit: a transaction commits as soon as this many records are pending."""
    max_pending_rows: int = Field(default=100_000, ge=1000)
    """Records held in memory waiting for the store (a slow or full disk, a flood of reads).

    Adapters that set their own pace (the TCP scanner, polls) wait once half of this is
    pending; beyond it device records are shed, counted and alerted (``gateway/shedding.py``).
    The default fits the systemd unit's ``MemoryMax=512M``: a pending record costs about
    1.6 KB at most (a label scan with its parsed GS1 fields; a pack about 450 B, a
    temperature 360 B, measured with tracemalloc), so 100 000 of them take at most about
    155 MiB next to the gateway's baseline of about 80 MiB, under half the limit, leaving
    room for allocator fragmentation and everything else. At a line's usual 20-50 records/s
    that still holds about an hour of a full disk."""
    max_size_mb: int = Field(default=2048, ge=4)
    """Size budget of the database file (SQLite ``max_page_count``)."""
    headroom_mb: int = Field(default=64, ge=1)
    """Disk space always left free next to the database (WAL, logs, the OS)."""
    quarantine_dir: ConfigPath | None = None
    """Where damaged database files are moved. Default: ``quarantine/`` beside the database."""

    @property
    def quarantine_path(self) -> Path:
        """The quarantine folder actually used."""
        return self.quarantine_dir or self.path.parent / "quarantine"


class LineSection(StrictModel):
    """A packing line."""

    id: Identifier
    """Line id as the ERP and the labels name it (e.g. ``L1``)."""
    name: str = ""
    """Name shown to operators."""


# --------------------------------------------------------------------------------------
# Devices


Role = Literal["checkweigher", "temperature_probe", "label_scanner"]

CHECKWEIGHER_SIGNALS = frozenset(
    {
        "net_weight",
        "gross_weight",
        "tare",
        "pack_counter",
        "accepted",
        "label_sequence",
        "nominal_weight",
        "program",
        "catch_weight_mode",
        "rejected",
        "changeover",
        "reject_counter",
    }
)
"""Tag names a checkweigher understands; weights in grams. ``program`` is the device's
program or product code (see ``programs``), ``catch_weight_mode``, ``rejected`` and
``changeover`` are flags (often bits of a status word), ``reject_counter`` counts rejects."""

CHECKWEIGHER_FLAGS = frozenset({"accepted", "rejected", "catch_weight_mode", "changeover"})
"""The checkweigher signals that are true or false: the ones a ``bit`` tag may be."""

CHECKWEIGHER_WEIGHTS = frozenset({"net_weight", "gross_weight", "tare", "nominal_weight"})
"""The checkweigher signals that are weights: never a bit field."""

INTEGER_TYPES = {DataType.INT16: 16, DataType.UINT16: 16, DataType.INT32: 32, DataType.UINT32: 32}
"""Modbus data types a ``bit`` or ``mask`` may be taken from, and their width in bits."""


class TagLimits(StrictModel):
    """Plausibility checks shared by every tag kind."""

    min: float | None = None
    """Lowest physically possible value; anything below is rejected, never stored as good."""
    max: float | None = None
    """Highest physically possible value."""
    stuck_after_s: float | None = Field(default=None, gt=0)
    """A value unchanged for longer than this is reported as stuck (sensor fault)."""
    location: str = ""
    """Where a probe sits (e.g. ``product core``, ``chill room 2``)."""
    fault_codes: tuple[int | float, ...] = Field(default=(), max_length=32)
    """Values the device sends instead of a measurement, as read before scale and offset
    (e.g. ``[32767, -32768]``, a transmitter's sensor break and short circuit). Such a value
    is rejected as ``sensor_fault_code``, not as out of range, and a probe with HACCP limits
    raises a sensor fault while it lasts (docs/devices.md)."""

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Self:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self

    @field_validator("fault_codes", mode="before")
    @classmethod
    def _codes_are_numbers(cls, value: object) -> object:
        # Checked before pydantic's own coercion, which would take true for 1 and "5" for 5.
        if isinstance(value, list | tuple):
            for code in value:
                if isinstance(code, bool) or not isinstance(code, int | float):
                    raise ValueError(f"fault code {code!r} is not a number")
                if not math.isfinite(code):
                    raise ValueError(f"fault code {code!r} is not a finite number")
        return value


def _check_bit_field(key: str, data: Mapping[str, Any]) -> None:
    """What ``bit``/``mask`` cannot go with, on any tag (``data``: the keys read before)."""
    if data.get("fault_codes"):
        raise ValueError(f"fault_codes are raw values of a measurement; they do not go with {key}")
    if key == "bit" and (data.get("min") is not None or data.get("max") is not None):
        raise ValueError("a bit reads true or false: min and max do not apply")
    if key == "mask" and data.get("bit") is not None:
        raise ValueError("give bit or mask, not both")


def _check_mask(mask: int, width: int, type_name: str) -> None:
    if mask >> width:
        raise ValueError(f"mask 0x{mask:X} is wider than the {width} bits of {type_name}")
    if not is_contiguous(mask):
        raise ValueError(f"mask 0x{mask:X} is not one run of adjacent bits (e.g. 0x0F00)")


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
            _check_bit_field(info.field_name, data)
            if info.field_name == "mask":
                _check_mask(value, 64, "an OPC UA integer")
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


class DeviceBase(StrictModel):
    """Keys every device has."""

    id: Identifier
    """Device id, unique in this gateway."""
    line: Identifier
    """The line this device belongs to (one of ``[[lines]]``)."""
    role: Role
    """What the device is: ``checkweigher``, ``temperature_probe`` or ``label_scanner``."""
    enabled: bool = True
    """A disabled device stays in the file but is not connected."""
    timeout_s: float = Field(default=3.0, gt=0, le=60)
    """Per-request timeout."""
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    """First reconnect delay; doubles up to ``reconnect_max_s``, with jitter."""
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    """Longest reconnect delay."""
    down_alert_after_s: float = Field(default=30.0, ge=0, le=86_400)
    """A link down this long raises a ``device_down`` alert (MAJOR for a checkweigher or a
    temperature probe, WARNING for a label scanner), cleared when the device is back;
    0: never (docs/alarms.md §4)."""
    programs: dict[str, Identifier] = Field(default_factory=dict, max_length=10_000)
    """A checkweigher's program numbers (or product codes) and the PLU each one packs, e.g.
    ``{ "12" = "41240", "13" = "49001" }``: the surest way to know a pack's product."""

    def tag_names(self) -> list[str]:
        """Names of the device's tags, for the role checks."""
        return []

    def bit_fields(self) -> dict[str, str]:
        """Tags that read part of a value: name -> ``bit`` or ``mask``."""
        return {}

    def _bit_fields_fit_the_role(self) -> None:
        fields = self.bit_fields()
        bits = sorted(name for name, key in fields.items() if key == "bit")
        if self.role == "temperature_probe" and fields:
            raise ValueError(
                f"a temperature probe's tags are temperatures, not bit fields: {sorted(fields)}"
            )
        if self.role == "checkweigher":
            not_flags = [name for name in bits if name not in CHECKWEIGHER_FLAGS]
            if not_flags:
                raise ValueError(
                    f"a bit is true or false; only {sorted(CHECKWEIGHER_FLAGS)} are flags, "
                    f"not {not_flags}"
                )
            weights = sorted(set(fields) & CHECKWEIGHER_WEIGHTS)
            if weights:
                raise ValueError(f"weights are not bit fields: {weights}")

    @model_validator(mode="after")
    def _role_has_its_tags(self) -> Self:
        self._bit_fields_fit_the_role()
        names = self.tag_names()
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tag names must be unique in a device: {duplicates}")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        kind = getattr(self, "kind", "")
        if self.role == "checkweigher" and kind != "scanner_tcp":
            unknown = sorted(set(names) - CHECKWEIGHER_SIGNALS)
            if unknown:
                raise ValueError(
                    f"checkweigher tags must be named from {sorted(CHECKWEIGHER_SIGNALS)}; "
                    f"unknown: {unknown}"
                )
            if "pack_counter" not in names and "label_sequence" not in names:
                raise ValueError(
                    "a checkweigher needs a pack_counter (or label_sequence) tag so packs "
                    "are neither counted twice nor lost"
                )
            if "net_weight" not in names and not {"gross_weight", "tare"} <= set(names):
                raise ValueError("a checkweigher needs net_weight, or gross_weight and tare")
        if self.programs and self.role != "checkweigher":
            raise ValueError("programs map a checkweigher's program numbers to PLUs")
        if self.programs and "program" not in names:
            raise ValueError("programs needs a 'program' tag to read the program number from")
        if self.role == "label_scanner" and kind != "scanner_tcp" and names != ["barcode"]:
            raise ValueError("a label scanner read over OPC UA has exactly one tag, 'barcode'")
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
    def _units_fit_the_role(self) -> Self:
        for tag in (t for g in self.groups for t in g.tags):
            expected = self.rule_unit(tag.name)
            if tag.unit is None:
                continue
            if expected is None:
                raise ValueError(
                    f"tag {tag.name}: unit applies to weights and temperatures; "
                    f"a {self.role}'s {tag.name} has none"
                )
            if UNITS[tag.unit].quantity != UNITS[expected].quantity:
                raise ValueError(
                    f"tag {tag.name}: unit {tag.unit} is a {UNITS[tag.unit].quantity}, but "
                    f"{tag.name} is a {UNITS[expected].quantity} (the rules use {expected})"
                )
        return self

    def rule_unit(self, tag: str) -> str | None:
        """The unit the rules take ``tag`` in (g, degC), or None when it is not a measure."""
        if self.role == "temperature_probe":
            return CELSIUS
        if self.role == "checkweigher" and tag in CHECKWEIGHER_WEIGHTS:
            return GRAM
        return None

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


class ModbusTag(TagLimits):
    """One Modbus value: where it is, how it is encoded, how it scales."""

    name: Identifier
    """What the value means for the device role (checkweigher signal or probe id)."""
    table: Table = Field(default=Table.HOLDING, strict=False)
    """``holding``, ``input``, ``coil`` or ``discrete_input``."""
    address: int = Field(ge=0, le=65535)
    """0-based protocol address. Modicon 40001 is holding address 0; see ``modicon``."""
    type: DataType = Field(default=DataType.UINT16, strict=False)
    """int16, uint16, int32, uint32, float32, float64, bool or string."""
    order: WordOrder = Field(default=WordOrder.ABCD, strict=False)
    """Byte and word order for multi-register values: ABCD, CDAB, BADC, DCBA."""
    length: int = Field(default=0, ge=0, le=250)
    """Characters, for ``string`` tags."""
    scale: float = 1.0
    """Engineering value = raw × scale + offset."""
    offset: float = 0.0
    """Added after scaling."""
    bit: int | None = Field(default=None, ge=0, le=31)
    """A flag in an integer register (a status word): bit 0 is the least significant bit of
    the value as decoded; the tag reads true or false. Several tags may name bits of the same
    register, which is still read once. Not with mask, scale, offset, min, max or
    fault_codes."""
    mask: int | None = Field(default=None, ge=1, le=0xFFFF_FFFF)
    """A group of adjacent bits of an integer register (e.g. ``0x0F00``), shifted down: the
    tag reads that number (a one-bit mask reads 0 or 1; use ``bit`` for a flag). Not with
    bit, scale, offset or fault_codes."""

    @model_validator(mode="before")
    @classmethod
    def _modicon_reference(cls, data: object) -> object:
        # Accept ``modicon = "40001"`` as a friendlier spelling of table + address.
        if isinstance(data, dict) and "modicon" in data:
            if "address" in data or "table" in data:
                raise ValueError("give either modicon or table + address, not both")
            data = dict(data)
            table, address = parse_modicon_address(str(data.pop("modicon")))
            data["table"], data["address"] = table, address
        return data

    @field_validator("bit", "mask")
    @classmethod
    def _bit_field(cls, value: int | None, info: ValidationInfo) -> int | None:
        key, data = info.field_name, info.data
        if value is None or key is None:
            return value
        table, data_type = data.get("table"), data.get("type")
        if isinstance(table, Table) and table.is_bit_table:
            raise ValueError(f"{key} picks bits of a register; a {table} is one bit already")
        if data_type not in INTEGER_TYPES:
            raise ValueError(
                f"{key} needs an integer type ({', '.join(map(str, INTEGER_TYPES))}), "
                f"not {data_type}"
            )
        if data.get("scale", 1.0) != 1.0 or data.get("offset", 0.0) != 0.0:
            raise ValueError(f"a bit field is not scaled: remove scale and offset, or {key}")
        _check_bit_field(key, data)
        width = INTEGER_TYPES[data_type]
        if key == "bit" and value >= width:
            raise ValueError(f"bit {value} is beyond the {width} bits of a {data_type}")
        if key == "mask":
            _check_mask(value, width, f"a {data_type}")
        return value

    @model_validator(mode="after")
    def _type_fits_table(self) -> Self:
        bit_table = self.table in (Table.COIL, Table.DISCRETE_INPUT)
        if bit_table and self.type != DataType.BOOL:
            raise ValueError(f"{self.table} holds bits: type must be bool")
        if self.fault_codes and self.type in (DataType.BOOL, DataType.STRING):
            raise ValueError(f"fault_codes are numbers; a {self.type} tag has none")
        if self.type == DataType.STRING and self.length == 0:
            raise ValueError("string tags need length (characters)")
        if not bit_table and self.address + self.registers > 65536:
            raise ValueError("tag runs past register 65535")
        return self

    @property
    def registers(self) -> int:
        """Registers (or bits) this tag occupies."""
        if self.table in (Table.COIL, Table.DISCRETE_INPUT):
            return 1
        return register_count(self.type, length=self.length)


class ModbusDeviceBase(DeviceBase):
    """Keys shared by Modbus TCP and RTU devices."""

    unit_id: int = Field(default=1, ge=0, le=247)
    """Modbus unit (slave) id; 0 is broadcast and only valid for writes, so avoid it."""
    poll_interval_ms: int = Field(default=1000, ge=10, le=3_600_000)
    """How often all tags are read."""
    recovery_time_s: float = Field(default=10.0, ge=0, le=3600)
    """A device that stops answering is skipped this long, so it cannot stall the others."""
    max_gap: int = Field(default=0, ge=0, le=100)
    """Unused registers allowed inside one read request when merging neighbouring tags."""
    tags: tuple[ModbusTag, ...] = Field(min_length=1)
    """The values to read."""

    def tag_names(self) -> list[str]:
        """All tag names."""
        return [t.name for t in self.tags]

    def bit_fields(self) -> dict[str, str]:
        """Tags that read part of a value: name -> ``bit`` or ``mask``."""
        return {
            t.name: "bit" if t.bit is not None else "mask"
            for t in self.tags
            if t.bit is not None or t.mask is not None
        }


class ModbusTcpDevice(ModbusDeviceBase):
    """A Modbus TCP device (or a TCP-to-RTU gateway in front of serial devices)."""

    kind: Literal["modbus_tcp"]
    host: str
    """Host name or address."""
    port: int = Field(default=502, ge=1, le=65535)
    """TCP port."""


class ModbusRtuDevice(ModbusDeviceBase):
    """A Modbus RTU device on a serial line."""

    kind: Literal["modbus_rtu"]
    serial_port: str
    """Serial device (e.g. ``/dev/serial/by-id/...`` or ``/dev/ttyUSB0``), or a pyserial URL
    such as ``socket://10.20.1.50:4001`` for an Ethernet-to-serial converter."""
    baudrate: int = Field(default=19200, ge=1200, le=921_600)
    """Line speed."""
    parity: Literal["N", "E", "O"] = "E"
    """Parity; the Modbus serial spec's default is even."""
    stopbits: Literal[1, 2] = 1
    """Stop bits."""
    bytesize: Literal[7, 8] = 8
    """Data bits."""

    @field_validator("serial_port")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        if "://" not in value:
            return value
        return check_url_credentials(value, "a serial port URL takes no credentials")


class ScannerTcpDevice(DeviceBase):
    """A fixed label scanner acting as a TCP server that sends one read per line."""

    kind: Literal["scanner_tcp"]
    host: str
    """Scanner address."""
    port: int = Field(ge=1, le=65535)
    """Scanner TCP port."""
    terminator: Literal["CRLF", "CR", "LF"] = "CRLF"
    """What ends each read."""
    separators: tuple[str, ...] = ()
    """Characters the scanner sends in place of FNC1/GS (0x1D), e.g. ``["|"]``."""
    max_read_bytes: int = Field(default=512, ge=16, le=65536)
    """A read longer than this is rejected as garbage."""

    @model_validator(mode="after")
    def _is_a_scanner(self) -> Self:
        if self.role != "label_scanner":
            raise ValueError("a scanner_tcp device has role = 'label_scanner'")
        return self


Device = Annotated[
    OpcUaDevice | ModbusTcpDevice | ModbusRtuDevice | ScannerTcpDevice,
    Field(discriminator="kind"),
]
"""A device, chosen by its ``kind``."""


# --------------------------------------------------------------------------------------
# ERP


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


# --------------------------------------------------------------------------------------
# Rules


class RuleThresholds(StrictModel):
    """Rule settings that can be overridden per line and per product (PLU)."""

    giveaway_warn_pct: float | None = Field(default=None, ge=0, le=100)
    """Giveaway above this % of Qn raises a WARNING (default 3 %)."""
    label_weight_tolerance_g: float | None = Field(default=None, ge=0)
    """Label net weight (AI 310n) may differ from the checkweigher by this much."""
    price_per_kg: float | None = Field(default=None, ge=0)
    """Product price, to put giveaway in money."""


class LineRules(RuleThresholds):
    """Overrides for one line."""

    line: Identifier
    """The line (one of ``[[lines]]``)."""


class ProductRules(RuleThresholds):
    """Overrides for one product."""

    plu: str
    """The product's PLU as the ERP names it."""


class ProbeRules(StrictModel):
    """HACCP limits of one probe (a critical control point)."""

    device: Identifier
    """The device id."""
    probe: Identifier
    """The probe (tag) name."""
    upper_c: float | None = None
    """Upper critical limit, °C (e.g. 5 for chilled fish products; 2 for fresh fish on ice)."""
    lower_c: float | None = None
    """Lower critical limit, °C (e.g. -18 as an upper bound is written upper_c for frozen)."""
    debounce_s: float = Field(default=60.0, ge=0, le=86_400)
    """A breach counts when the value stays beyond the limit this long."""
    hysteresis_c: float = Field(default=0.5, ge=0, le=20)
    """A breach clears only this far back inside the limit."""
    no_data_s: float = Field(default=300.0, gt=0)
    """No reading for this long is a sensor fault."""
    stuck_s: float | None = Field(default=None, gt=0)
    """An unchanged value for this long is a sensor fault."""

    @model_validator(mode="after")
    def _has_a_limit(self) -> Self:
        if self.upper_c is None and self.lower_c is None:
            raise ValueError("give upper_c, lower_c or both")
        if self.upper_c is not None and self.lower_c is not None and self.lower_c >= self.upper_c:
            raise ValueError("lower_c must be below upper_c")
        return self


class RulesSection(StrictModel):
    """On-device rules; numbers default to the law or the house standard they cite."""

    giveaway_warn_pct: float = Field(default=3.0, ge=0, le=100)
    """Giveaway above this % of Qn raises a WARNING."""
    giveaway_min_packs: int = Field(default=20, ge=1)
    """Packs before giveaway is judged."""
    emark_batch_minutes: float = Field(default=60.0, gt=0, le=24 * 60)
    """℮ inspection batch: the line's output in this long (SI 2006/659 Sch 2 para 2.6: one
    hour of maximum output when checked at the end of the line)."""
    emark_min_packs: int = Field(default=10, ge=1)
    """Packs in a batch before the running mean and T1 share are judged."""
    label_reorder_window: int = Field(default=3, ge=0, le=100)
    """Label numbers may arrive this far out of order before a gap is reported."""
    label_weight_tolerance_g: float = Field(default=2.0, ge=0)
    """Label net weight may differ from the checkweigher by this much."""
    shelf_life_base_days: int = Field(default=9, ge=1, le=60)
    """Use-by = pack date + this + the run's adjustment (0, +1 rubber clock, +2/+3 superchill)."""
    freeze_down_day: int = Field(default=13, ge=1, le=60)
    """Product reaching this day after packing must be frozen down."""
    yield_warn_pct: float = Field(default=90.0, ge=0, le=100)
    """Packed kg over raw material kg below this raises a WARNING."""
    lines: tuple[LineRules, ...] = ()
    """Per-line overrides."""
    products: tuple[ProductRules, ...] = ()
    """Per-product overrides."""
    probes: tuple[ProbeRules, ...] = ()
    """HACCP limits per probe; a probe without limits is recorded but not judged."""
    actions: dict[str, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict)
    """Corrective action per rule id, shown with its alerts, e.g. ``haccp_upper = "Move
    product to chill, check probe, notify QA"``. Replaces the default text of that rule
    (HACCP, ℮, use-by, batch and device_down rules have defaults: rules/actions.py); an
    empty text removes it."""

    @field_validator("actions")
    @classmethod
    def _known_rules(cls, actions: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(actions) - RULES_WITH_ACTIONS)
        if unknown:
            known = ", ".join(sorted(RULES_WITH_ACTIONS))
            hint = did_you_mean(unknown[0], RULES_WITH_ACTIONS)
            raise ValueError(f"no such rule: {', '.join(unknown)}{hint or ';'} rules: {known}")
        return actions

    def action(self, rule: str) -> str:
        """The corrective action for a rule's alerts ("" for none)."""
        return self.actions.get(rule, DEFAULT_ACTIONS.get(rule, "")).strip()

    def threshold(self, name: str, *, line: str | None, plu: str | None) -> float | None:
        """A threshold for a line and product: product beats line beats the default."""
        for override in (
            next((p for p in self.products if p.plu == plu), None),
            next((x for x in self.lines if x.line == line), None),
        ):
            value = getattr(override, name, None) if override is not None else None
            if value is not None:
                return float(value)
        value = getattr(self, name, None)
        return float(value) if value is not None else None


# --------------------------------------------------------------------------------------
# Sync


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
    batch_records: int = Field(default=500, ge=1, le=10_000)
    """Records per batch."""
    batch_bytes: int = Field(default=256 * 1024, ge=1024, le=4 * 1024 * 1024)
    """Uncompressed bytes per batch."""
    window: int = Field(default=4, ge=1, le=16)
    """Batches in flight waiting for the warehouse's acknowledgement."""
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
    batch_records: int = Field(default=500, ge=1, le=10_000)
    """Records per batch."""
    batch_bytes: int = Field(default=256 * 1024, ge=1024, le=4 * 1024 * 1024)
    """Uncompressed bytes per batch."""

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

    @model_validator(mode="after")
    def _one_record_path(self) -> Self:
        if self.mqtt is not None and self.https is not None:
            # Both would drain the same outbox; the warehouse dedupes, but the bandwidth
            # is spent twice. Pick one path for records.
            raise ValueError("configure [sync.mqtt] or [sync.https] for records, not both")
        return self


# --------------------------------------------------------------------------------------
# Health and metrics


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


# --------------------------------------------------------------------------------------
# The whole file


CONFIG_REFERENCES = "config_references"
"""The pydantic error type carrying broken cross-references, each with its own key path."""


class LinesideConfig(StrictModel):
    """A Lineside gateway configuration file."""

    gateway: GatewaySection
    """Identity and logging."""
    store: StoreSection
    """The local store."""
    lines: tuple[LineSection, ...] = Field(min_length=1)
    """The packing lines this gateway serves."""
    devices: tuple[Device, ...] = ()
    """Checkweighers, probes and scanners."""
    erp: Erp | None = None
    """Where production runs come from; without it, runs are started from the line."""
    rules: RulesSection = RulesSection()
    """On-device rules and their thresholds."""
    sync: SyncSection = SyncSection()
    """Where records go: the central warehouse."""
    health: HealthSection | None = None
    """The health and metrics HTTP endpoint; without this section no port is opened."""

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        problems = reference_problems(self)
        if problems:
            # Reported at the referring entries' key paths (see _problems), not here.
            raise PydanticCustomError(
                CONFIG_REFERENCES,
                "{summary}",
                {
                    "summary": "; ".join(f"{p.location}: {p.reason}" for p in problems),
                    "problems": problems,
                },
            )
        return self

    @property
    def control_socket_path(self) -> Path:
        """The operator command socket actually used."""
        return self.gateway.control_socket or self.store.path.parent / "control.sock"

    def secrets(self) -> list[str]:
        """Every secret value in the config, so logs can redact them."""
        found: list[str] = []

        def walk(node: object) -> None:
            if isinstance(node, SecretStr):
                found.append(node.get_secret_value())
            elif isinstance(node, BaseModel):
                for name in type(node).model_fields:
                    walk(getattr(node, name))
            elif isinstance(node, tuple | list):
                for item in node:
                    walk(item)

        walk(self)
        return [s for s in found if s]


# --------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> LinesideConfig:
    """Read and validate a config file; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    shown = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            shown, [ConfigProblem("(file)", str(path), exc.strerror or str(exc))]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            shown, [ConfigProblem("(file)", str(path), f"not UTF-8: {exc}")]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, [ConfigProblem("(syntax)", MISSING, f"TOML: {exc}")]) from None
    return parse_config(raw, source=shown, base_dir=path.resolve().parent, environ=environ)


def parse_config(
    raw: Mapping[str, Any],
    *,
    source: str = "<config>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> LinesideConfig:
    """Validate already-parsed TOML data (see :func:`load_config`)."""
    context = {"base_dir": base_dir, "environ": os.environ if environ is None else environ}
    try:
        return LinesideConfig.model_validate(raw, context=context)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc, raw)) from None


SECRET_KEYS = frozenset({"password"})
"""Keys holding secrets: their values are never echoed in an error message."""


def _problems(exc: ValidationError, raw: Mapping[str, Any]) -> list[ConfigProblem]:
    errors = exc.errors(include_url=False)
    # pydantic also reports a container as "too short" when its only items were invalid;
    # that is noise next to the item's own error, so drop it.
    locations = [e["loc"] for e in errors]
    problems: list[ConfigProblem] = []
    for error in errors:
        loc = error["loc"]
        if error["type"] == CONFIG_REFERENCES:
            references: list[Reference] = (error.get("ctx") or {}).get("problems", [])
            problems.extend(ConfigProblem(*reference) for reference in references)
            continue
        if error["type"] == "too_short" and any(
            other[: len(loc)] == loc and len(other) > len(loc) for other in locations
        ):
            continue
        location = _key_path(loc, raw)
        value: object = MISSING if error["type"] == "missing" else error.get("input", MISSING)
        if isinstance(value, Mapping | list | tuple) and error["type"] != "extra_forbidden":
            value = "{...}" if isinstance(value, Mapping) else "[...]"
        if any(part in SECRET_KEYS for part in loc if isinstance(part, str)):
            value = "***"
        elif error["type"] == URL_CREDENTIALS:
            value = redact_url(value)
        if error["type"] == "extra_forbidden":
            hint = did_you_mean(str(loc[-1]), keys_at(LinesideConfig, loc, raw))
            message = f"unknown key{hint or ' (misspelt? see config/example.toml)'}"
        else:
            message = error["msg"].removeprefix("Value error, ")
        problems.append(ConfigProblem(location, value, message))
    return problems


def _key_path(loc: tuple[int | str, ...], raw: object) -> str:
    """Render a pydantic location as a TOML key path, e.g. ``devices[0].groups[1].tags[2].node``.

    The discriminated-union tag (``opcua`` in ``devices.0.opcua.endpoint``) is not a key in
    the file, so it is dropped by walking the raw data alongside the location.
    """
    parts: list[str] = []
    node: object = raw
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        elif isinstance(node, Mapping) and item in node:
            parts.append(f".{item}" if parts else item)
            node = node[item]
        elif isinstance(node, Mapping) and node.get("kind") == item:
            continue  # union member name
        else:
            parts.append(f".{item}" if parts else item)
            node = None
    return "".join(parts) or "(top level)"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, as committed in ``config/lineside.schema.json``."""
    schema = LinesideConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Lineside gateway configuration"
    return schema
