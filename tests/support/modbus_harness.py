"""The Modbus simulator and device configs shared by the Modbus tests."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from adapters.simulators import ModbusSimulator
from gateway.config import ModbusTcpDevice

# ----------------------------------------------------------------------------- helpers


class CountingSimulator(ModbusSimulator):
    """The project's simulator, also logging every register request it is sent.

    Requests are counted in the simulator's pymodbus ``action`` hook, which runs for every
    read whether it is answered with data, an exception, or (silent mode) not at all.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(drive=False, **kwargs)
        self.log: list[tuple[float, int, int, int]] = []

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: Any,
    ) -> Any:
        self.log.append((time.monotonic(), function_code, address, count))
        return await super()._action(
            function_code, start_address, address, count, registers, set_values
        )

    def requests(self, function_code: int | None = None, since: float = 0.0) -> list[float]:
        """Arrival times of requests (optionally of one function code) after ``since``."""
        return [t for t, fc, _, _ in self.log if t >= since and function_code in (None, fc)]

    def shapes(self) -> Counter[tuple[int, int, int]]:
        """``(function code, address, count)`` of every request, counted."""
        return Counter((fc, a, c) for _, fc, a, c in self.log)


TT = [
    {"name": f"TT{i + 1}", "table": "input", "address": i, "type": "int16", "scale": 0.1}
    for i in range(4)
]
P3 = {
    "name": "P3",
    "table": "holding",
    "address": 100,
    "type": "float32",
    "order": "CDAB",
    "location": "line 2 product core",
}


def device(
    port: int, tags: Sequence[dict[str, Any]], *, role: str = "temperature_probe", **settings: Any
) -> ModbusTcpDevice:
    """A device on the simulator with test-sized timings (20 ms polls, 0.2 s timeouts)."""
    config: dict[str, Any] = {
        "kind": "modbus_tcp",
        "id": "dev1",
        "line": "L1",
        "role": role,
        "host": "127.0.0.1",
        "port": port,
        "poll_interval_ms": 20,
        "timeout_s": 0.2,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.4,
        "recovery_time_s": 0.3,
        "tags": list(tags),
    }
    return ModbusTcpDevice.model_validate(config | settings)


def socket_fds() -> int:
    """Open sockets of this process (Linux /proc)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def max_attempts(elapsed: float, initial: float, maximum: float, floor: float = 0.1) -> int:
    """Most connection attempts Backoff allows in ``elapsed`` s: one at once, then every delay
    at its smallest possible (jitter floor) value."""
    attempts, spent, n = 1, 0.0, 0
    while True:
        spent += floor * min(maximum, initial * 2**n)
        n += 1
        if spent > elapsed:
            return attempts
        attempts += 1
