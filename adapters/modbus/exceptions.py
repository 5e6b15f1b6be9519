"""Modbus exception responses and read failures: what each one means and how the adapter
handles it (pure: the classification is a function of the code).

Handling of failures (exception codes from the MODBUS Application Protocol Specification
V1.1b3, §7 "MODBUS Exception Responses", cited as MBAP §7):

========================  =====================  =============================================
failure                   class                  handling
========================  =====================  =============================================
01 ILLEGAL FUNCTION       DeviceConfigError      the block's tags are marked bad; one error
02 ILLEGAL DATA ADDRESS                          log and one ``config_error`` event per block;
03 ILLEGAL DATA VALUE                            the block is not read again for
                                                 ``config_retry_s`` (default 10 minutes);
                                                 state DEGRADED. The rest of the cycle goes on.
04 SERVER DEVICE FAILURE  DeviceFailure          block bad, the rest of the cycle skipped, the
(07, 08, unknown codes)                          device is not polled again before a backoff
                                                 delay (growing, capped); state DEGRADED.
05 ACKNOWLEDGE            DeviceBusy             block bad this cycle, read again next cycle;
06 SERVER DEVICE BUSY                            state DEGRADED. The rest of the cycle goes on.
0A GATEWAY PATH           DeviceUnreachable      device offline behind a gateway: rest of the
   UNAVAILABLE                                   cycle skipped, state DOWN, one ``link_down``
0B GATEWAY TARGET DEVICE                         event per outage, next try after
   FAILED TO RESPOND                             ``max(recovery_time_s, backoff)``. The TCP
                                                 connection to the gateway is kept.
timeout, wrong reply id   DeviceUnreachable      as 0A/0B, and the connection is closed (a late
                                                 reply must not be taken for the next one).
connection refused/lost,  DeviceUnreachable      state DOWN, ``link_down`` once, reconnect after
serial port won't open                           a capped, jittered backoff (never a busy loop).
or is lost                                       A connection lost mid-request ends the wait at
                                                 once instead of after the timeout.
short reply               DecodeError            block bad, read again next cycle; DEGRADED.
undecodable tag           DecodeError            that tag bad (e.g. non-ASCII text); DEGRADED.
========================  =====================  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.core.errors import (
    DeviceBusy,
    DeviceConfigError,
    DeviceError,
    DeviceFailure,
    DeviceUnreachable,
)

CONFIG_RETRY_S: Final = 600.0
"""How long a block refused with exception 01-03 is left alone before it is tried again.

The device said the request is wrong as configured; asking again every cycle only fills the
device's error counters and our logs. Every 10 minutes still notices a device that was
reconfigured or replaced, without a gateway restart.
"""

# Exception codes and names, MBAP §7 (MODBUS Application Protocol Specification V1.1b3,
# "MODBUS Exception Codes" table). 07 NEGATIVE ACKNOWLEDGE is not in V1.1b3 but was in the
# older Modicon PI-MBUS-300 reference, and some devices still send it.
EXCEPTION_NAMES: Final[dict[int, str]] = {
    0x01: "ILLEGAL FUNCTION",
    0x02: "ILLEGAL DATA ADDRESS",
    0x03: "ILLEGAL DATA VALUE",
    0x04: "SERVER DEVICE FAILURE",
    0x05: "ACKNOWLEDGE",
    0x06: "SERVER DEVICE BUSY",
    0x07: "NEGATIVE ACKNOWLEDGE",
    0x08: "MEMORY PARITY ERROR",
    0x0A: "GATEWAY PATH UNAVAILABLE",
    0x0B: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}
"""Exception code -> name as the specification spells it (MBAP §7)."""

# MBAP §7: 01-03 mean the request itself is unacceptable to this server (function not
# supported, address range not present, quantity or value not allowed): configuration.
CONFIG_CODES: Final = frozenset({0x01, 0x02, 0x03})

# MBAP §7: 05 "accepted, but needs a long duration"; 06 "engaged in processing a long-duration
# program command; the client should retransmit later".
BUSY_CODES: Final = frozenset({0x05, 0x06})

# MBAP §7: 0A "gateway was unable to allocate a path", 0B "no response was obtained from the
# target device; usually means that the device is not present on the network".
GATEWAY_CODES: Final = frozenset({0x0A, 0x0B})


def classify_exception(device_id: str, code: int, where: str) -> DeviceError:
    """Translate a Modbus exception response code into Lineside's error class (MBAP §7).

    01-03 -> :class:`DeviceConfigError`; 05/06 -> :class:`DeviceBusy`; 0A/0B ->
    :class:`DeviceUnreachable` (the target behind a gateway is offline); 04, 07, 08 and
    codes the specification does not define -> :class:`DeviceFailure`.
    """
    name = EXCEPTION_NAMES.get(code, "UNKNOWN EXCEPTION CODE")
    message = f"Modbus exception 0x{code:02X} {name} reading {where}"
    if code in CONFIG_CODES:
        return DeviceConfigError(device_id, message)
    if code in BUSY_CODES:
        return DeviceBusy(device_id, message)
    if code in GATEWAY_CODES:
        return DeviceUnreachable(device_id, message)
    return DeviceFailure(device_id, message)


@dataclass(frozen=True, slots=True)
class BlockFault:
    """Why one block read failed (:class:`adapters.modbus.client.ModbusAdapter` handles it)."""

    error: DeviceError
    category: str
    """Kind of failure, for the once-per-episode bad samples and log lines."""
    code: int | None = None
    """The Modbus exception code, when the device replied with one."""
    answered: bool = False
    """The device itself replied (so the link works), even if with an exception."""
    drop_connection: bool = False
    """The connection can't be trusted any more (timeout, lost, mismatched reply)."""
