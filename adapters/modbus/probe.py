"""One read of a block of registers, for ``lineside modbus-probe``: the socket part.

The registers come back as read; :mod:`gateway.core.codecs.register_views` decodes them every
way. Errors are translated into :mod:`gateway.core.errors` here, like the adapter's
(:func:`adapters.modbus.client.classify_exception` for exception responses).
"""

from __future__ import annotations

import asyncio

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from adapters.modbus.client import classify_exception
from gateway.core.codecs.registers import ADDRESS_SPACE, MAX_READ_COUNT, Table
from gateway.core.errors import DeviceFailure, DeviceUnreachable

__all__ = ["read_block"]


async def read_block(
    host: str,
    port: int,
    *,
    unit: int,
    table: Table,
    address: int,
    count: int,
    timeout_s: float,
) -> list[int]:
    """``count`` holding or input registers from 0-based ``address`` of unit ``unit``.

    Raises:
        ValueError: a bit table, a count beyond one request's limit (125), or a block
            outside the register addresses 0..65535.
        DeviceError: no connection, no reply, or an exception response (named).
    """
    if table.is_bit_table or not 1 <= count <= MAX_READ_COUNT[table]:
        raise ValueError(f"reads 1..{MAX_READ_COUNT[Table.HOLDING]} holding or input registers")
    # The block must fit the 16-bit address space (gateway/core/codecs/registers.py,
    # ADDRESS_SPACE): refused here, with the range, instead of by pymodbus or the device.
    if address < 0 or address + count > ADDRESS_SPACE:
        raise ValueError(
            f"registers {address}..{address + count - 1} are outside the register "
            f"addresses 0..{ADDRESS_SPACE - 1}"
        )
    peer = f"{host}:{port}"
    # The error names the peer already ("device HOST:PORT: ..."): the block and unit only.
    where = f"{table} registers {address}..{address + count - 1} of unit {unit}"
    client = AsyncModbusTcpClient(host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0)
    try:
        async with asyncio.timeout(timeout_s * 2):
            if not await client.connect():
                raise DeviceUnreachable(peer, "cannot connect")
            response: ModbusPDU
            if table is Table.HOLDING:
                response = await client.read_holding_registers(address, count=count, device_id=unit)
            else:
                response = await client.read_input_registers(address, count=count, device_id=unit)
    except (TimeoutError, ModbusException, OSError) as exc:
        raise DeviceUnreachable(peer, f"no reply reading {where} ({exc})") from None
    finally:
        client.close()
    if isinstance(response, ExceptionResponse):
        raise classify_exception(peer, int(response.exception_code), where)
    if response.isError():
        raise DeviceFailure(peer, f"error reply {response} reading {where}")
    registers = list(response.registers)
    if len(registers) != count:
        raise DeviceFailure(peer, f"reply to {where} had {len(registers)} registers")
    return registers
