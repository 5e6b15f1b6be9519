"""A ``[[devices]]`` entry, chosen by its ``kind``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from gateway.config.device_modbus import ModbusRtuDevice, ModbusTcpDevice
from gateway.config.device_opcua import OpcUaDevice
from gateway.config.device_scanner import ScannerTcpDevice

Device = Annotated[
    OpcUaDevice | ModbusTcpDevice | ModbusRtuDevice | ScannerTcpDevice,
    Field(discriminator="kind"),
]
"""A device, chosen by its ``kind``."""
