"""pymodbus as a bare transport: the client for a TCP or RTU device, and the one request per
table it sends.

pymodbus is only a transport here. Its own retries and its automatic reconnect are switched
off (``retries=0``, ``reconnect_delay=0``) so that the adapter's (:mod:`adapters.modbus.client`)
backoff, state and events are the truth; it translates every pymodbus error into
:mod:`gateway.core.errors`, and none leaves it.

Modbus RTU (:class:`~gateway.config.ModbusRtuDevice`) goes through pymodbus'
``AsyncModbusSerialClient`` with the RTU framer, which opens the port with pyserial's
``serial_for_url``: ``serial_port`` is a device path (``/dev/ttyUSB0``, a udev
``/dev/serial/by-id/...`` link) or a pyserial URL such as ``socket://10.20.1.50:4001`` (RTU
frames over a raw TCP socket, for Ethernet-to-serial converters in transparent mode) or
``rfc2217://host:port``. pyserial opens the port with an exclusive lock, so one adapter owns
one port: two RTU devices configured on the same port do not share it, the second one stays
DOWN. Everything after opening the port is the TCP code path: the same requests,
classification, backoff, events and cancellation. "Connection" for RTU means the port is
open; it is lost when pyserial reports an error (a USB adapter unplugged), and closing it after
a timeout also discards any late reply bytes (RTU frames carry no transaction id). Requests
on a serial line are kept at least 3.5 character times apart (Modbus over Serial Line V1.02
§2.5.1.1), which pymodbus does not do by itself.
"""

from __future__ import annotations

from collections.abc import Callable

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from gateway.config import ModbusRtuDevice, ModbusTcpDevice
from gateway.core.codecs.read_plan import ReadBlock
from gateway.core.codecs.registers import Table


def make_client(
    device: ModbusTcpDevice | ModbusRtuDevice, on_connection: Callable[[bool], None]
) -> ModbusBaseClient:
    """A pymodbus client for ``device`` that neither retries nor reconnects by itself."""
    # retries=0: a request is sent once, our cycle decides what happens next.
    # reconnect_delay=0: pymodbus 3.16 then starts no reconnect task of its own
    # (transport.connection_lost only reconnects when the delay is non-zero; older
    # versions busy-looped on 0, pymodbus#1794), so reconnecting is ours, with Backoff.
    if isinstance(device, ModbusTcpDevice):
        return AsyncModbusTcpClient(
            device.host,
            port=device.port,
            name=device.id,
            timeout=device.timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_connect=on_connection,
        )
    # serial_port goes to pyserial's serial_for_url: a device path or a pyserial URL. The
    # serial client's timeout is both the open timeout and the reply timeout, as for TCP.
    return AsyncModbusSerialClient(
        device.serial_port,
        framer=FramerType.RTU,
        baudrate=device.baudrate,
        bytesize=device.bytesize,
        parity=device.parity,
        stopbits=device.stopbits,
        name=device.id,
        timeout=device.timeout_s,
        retries=0,
        reconnect_delay=0,
        trace_connect=on_connection,
    )


async def send_read(client: ModbusBaseClient, read: ReadBlock, unit: int) -> ModbusPDU:
    """Send the read for ``read``'s table (MBAP §6.1-§6.4: FC01, FC02, FC03, FC04)."""
    address, count = read.address, read.count
    if read.table is Table.HOLDING:
        return await client.read_holding_registers(address, count=count, device_id=unit)
    if read.table is Table.INPUT:
        return await client.read_input_registers(address, count=count, device_id=unit)
    if read.table is Table.COIL:
        return await client.read_coils(address, count=count, device_id=unit)
    return await client.read_discrete_inputs(address, count=count, device_id=unit)


def target_of(device: ModbusTcpDevice | ModbusRtuDevice) -> str:
    """Where the device is, for logs and events: ``host:port unit n`` or ``port unit n``."""
    if isinstance(device, ModbusTcpDevice):
        return f"{device.host}:{device.port} unit {device.unit_id}"
    return f"{device.serial_port} unit {device.unit_id}"
