"""Modbus TCP/RTU device adapter (pymodbus): poll tags, decode them, hand records to the store.

pymodbus never leaks out of this package: its errors are translated into
:mod:`gateway.core.errors` classes in :mod:`adapters.modbus.client`.
"""

from __future__ import annotations

from adapters.modbus.client import (
    CONFIG_RETRY_S,
    EXCEPTION_NAMES,
    ModbusAdapter,
    classify_exception,
)

__all__ = ["CONFIG_RETRY_S", "EXCEPTION_NAMES", "ModbusAdapter", "classify_exception"]
