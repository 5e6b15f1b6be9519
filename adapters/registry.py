"""Builds the adapter for each enabled device in a config, chosen by its ``kind``."""

from __future__ import annotations

from adapters.base import DeviceAdapter, RecordSink
from adapters.roles import CheckweigherInterpreter
from gateway.config import (
    DeviceBase,
    LinesideConfig,
    ModbusRtuDevice,
    ModbusTcpDevice,
    OpcUaDevice,
    ScannerTcpDevice,
)
from gateway.core.clock import Clock
from gateway.core.log_context import bind_log_context
from gateway.store import Store


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


async def run_adapter(adapter: DeviceAdapter, store: Store) -> None:
    """Run an adapter, first restoring what it must remember across gateway restarts.

    A checkweigher continues from the pack counter last stored for it, so packs made while
    the gateway was down are recorded as missed packs instead of vanishing into a baseline.

    Every line the adapter logs (and asyncua's or pymodbus' tasks under it) names its device
    and line (docs/operations-logs.md).
    """
    device = getattr(adapter, "device", None)
    line = device.line if isinstance(device, DeviceBase) else None
    bind_log_context(device=adapter.device_id, line=line)
    interpreter = getattr(adapter, "interpreter", None)
    if isinstance(interpreter, CheckweigherInterpreter) and interpreter.last_counter is None:
        interpreter.last_counter = await store.last_pack_counter(adapter.device_id)
    await adapter.run()
