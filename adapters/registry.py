"""Builds the adapter for each enabled device in a config, chosen by its ``kind``."""

from __future__ import annotations

from adapters.base import DeviceAdapter, RecordSink
from gateway.clock import Clock
from gateway.config import (
    LinesideConfig,
    ModbusRtuDevice,
    ModbusTcpDevice,
    OpcUaDevice,
    ScannerTcpDevice,
)


def build_adapters(config: LinesideConfig, sink: RecordSink, clock: Clock) -> list[DeviceAdapter]:
    """One adapter per enabled device; protocol modules are imported only when used."""
    adapters: list[DeviceAdapter] = []
    for device in config.devices:
        if not device.enabled:
            continue
        if isinstance(device, OpcUaDevice):
            from adapters.opcua import OpcUaAdapter  # noqa: PLC0415

            adapters.append(OpcUaAdapter(device, sink, clock))
        elif isinstance(device, ModbusTcpDevice | ModbusRtuDevice):
            from adapters.modbus import ModbusAdapter  # noqa: PLC0415

            adapters.append(ModbusAdapter(device, sink, clock))
        elif isinstance(device, ScannerTcpDevice):
            from adapters.scanner import ScannerAdapter  # noqa: PLC0415

            adapters.append(ScannerAdapter(device, sink, clock))
    return adapters
