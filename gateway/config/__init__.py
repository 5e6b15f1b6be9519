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

The models are split by section, one module each (docs/architecture.md, "Package map");
this package re-exports every public name, so code outside it imports them as
``from gateway.config import X``.
"""

from gateway.config.base import IDENTIFIER, Identifier, StrictModel
from gateway.config.device_base import (
    CHECKWEIGHER_FLAGS,
    CHECKWEIGHER_SIGNALS,
    CHECKWEIGHER_WEIGHTS,
    DeviceBase,
    Role,
)
from gateway.config.device_modbus import (
    INTEGER_TYPES,
    ModbusDeviceBase,
    ModbusRtuDevice,
    ModbusTag,
    ModbusTcpDevice,
)
from gateway.config.device_opcua import OpcUaDevice, OpcUaSecurity, OpcUaTag, OpcUaTagGroup
from gateway.config.device_scanner import ScannerTcpDevice
from gateway.config.devices import Device
from gateway.config.erp_section import Erp, ErpBase, HttpErp, SqlErp
from gateway.config.gateway_section import GatewaySection
from gateway.config.health_section import HealthSection
from gateway.config.lines_section import LineSection
from gateway.config.lineside_config import CONFIG_REFERENCES, LinesideConfig
from gateway.config.loading import json_schema, load_config, parse_config
from gateway.config.paths import ConfigFile, ConfigFolder, ConfigPath
from gateway.config.problems import SECRET_KEYS
from gateway.config.rules_section import (
    LineRules,
    ProbeRules,
    ProductRules,
    RulesSection,
    RuleThresholds,
)
from gateway.config.secret import Secret
from gateway.config.store_section import StoreSection
from gateway.config.sync_section import HttpsSync, MqttSync, SyncSection
from gateway.config.tag_limits import TagLimits
from gateway.config.urls import URL_CREDENTIALS, check_url_credentials, redact_url

__all__ = [
    "CHECKWEIGHER_FLAGS",
    "CHECKWEIGHER_SIGNALS",
    "CHECKWEIGHER_WEIGHTS",
    "CONFIG_REFERENCES",
    "IDENTIFIER",
    "INTEGER_TYPES",
    "SECRET_KEYS",
    "URL_CREDENTIALS",
    "ConfigFile",
    "ConfigFolder",
    "ConfigPath",
    "Device",
    "DeviceBase",
    "Erp",
    "ErpBase",
    "GatewaySection",
    "HealthSection",
    "HttpErp",
    "HttpsSync",
    "Identifier",
    "LineRules",
    "LineSection",
    "LinesideConfig",
    "ModbusDeviceBase",
    "ModbusRtuDevice",
    "ModbusTag",
    "ModbusTcpDevice",
    "MqttSync",
    "OpcUaDevice",
    "OpcUaSecurity",
    "OpcUaTag",
    "OpcUaTagGroup",
    "ProbeRules",
    "ProductRules",
    "Role",
    "RuleThresholds",
    "RulesSection",
    "ScannerTcpDevice",
    "Secret",
    "SqlErp",
    "StoreSection",
    "StrictModel",
    "SyncSection",
    "TagLimits",
    "check_url_credentials",
    "json_schema",
    "load_config",
    "parse_config",
    "redact_url",
]
