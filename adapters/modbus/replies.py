"""Reading a Modbus reply: its words or bits, or why the block failed (pure).

An exception response is never decoded as data: ``isError()`` is checked first, and its code
is classified by :func:`adapters.modbus.exceptions.classify_exception`.
"""

from __future__ import annotations

from pymodbus.pdu import ExceptionResponse, ModbusPDU

from adapters.modbus.blocks import Block
from adapters.modbus.exceptions import GATEWAY_CODES, BlockFault, classify_exception
from gateway.core.errors import DecodeError, DeviceFailure


def reply_words(
    device_id: str, block: Block, response: ModbusPDU
) -> list[int] | list[bool] | BlockFault:
    """The registers or bits ``response`` carries for ``block``, or the block's fault."""
    # Never decode an exception response as data: check isError() first.
    if response.isError():
        if isinstance(response, ExceptionResponse):
            code = int(response.exception_code)
            return BlockFault(
                classify_exception(device_id, code, block.where),
                f"exception_{code:02x}",
                code=code,
                answered=code not in GATEWAY_CODES,
            )
        failure = DeviceFailure(device_id, f"error reply {response} reading {block.where}")
        return BlockFault(failure, "error_reply", answered=True)
    if block.read.table.is_bit_table:
        bits = list(response.bits)
        if len(bits) < block.read.count:
            return _short(device_id, block, len(bits))
        return bits
    registers = list(response.registers)
    if len(registers) != block.read.count:
        return _short(device_id, block, len(registers))
    return registers


def _short(device_id: str, block: Block, got: int) -> BlockFault:
    error = DecodeError(
        device_id, f"reply to {block.where} had {got} items, {block.read.count} asked"
    )
    return BlockFault(error, "short_reply", answered=True)
