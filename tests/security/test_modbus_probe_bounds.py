"""``lineside modbus-probe`` asked for what one Modbus request cannot carry, against the
project's pymodbus simulator: a count above the protocol's 125 registers, and addresses
outside the 16-bit register address space (a negative one, one past 65535, and a block
running past the end). Each is a clear message and exit code 1, never a traceback.
"""

from __future__ import annotations

import pytest

from tests.integration.test_modbus_probe import _lineside
from tests.support.modbus_harness import CountingSimulator


async def test_a_count_above_one_request_is_refused_clearly() -> None:
    async with CountingSimulator() as sim:
        code, out, err = await _lineside(
            "modbus-probe", f"127.0.0.1:{sim.port}", "--address", "0", "--count", "100000"
        )
    assert (code, out) == (1, "")
    assert "reads 1..125" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("address", "count"), [("-1", "2"), ("65536", "1"), ("65535", "2"), ("99999999", "1")]
)
async def test_an_address_outside_the_register_space_is_refused_clearly(
    address: str, count: str
) -> None:
    async with CountingSimulator() as sim:
        code, out, err = await _lineside(
            "modbus-probe", f"127.0.0.1:{sim.port}", f"--address={address}", "--count", count
        )
    assert (code, out) == (1, ""), err
    assert "addresses 0..65535" in err, err
    assert "Traceback" not in err
