"""``lineside modbus-probe`` against the project's pymodbus simulator.

A float32 of 251.5 g is put at holding 300-301 word-swapped (CDAB). The probe's table shows
251.5 on the float32 CDAB line, and something else on the other float32 lines; the picked
interpretation prints a tag that the config loader accepts and that reads the same value.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import tomllib

from gateway.cli import main
from gateway.config import ModbusTag
from gateway.core.codecs.registers import DataType, Table, WordOrder, encode_registers
from tests.support.modbus_harness import CountingSimulator


async def _lineside(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(list(args))

    # The command runs its own event loop; the simulator keeps serving on this one.
    code = await asyncio.to_thread(call)
    return code, out.getvalue(), err.getvalue()


def _float32_lines(output: str) -> dict[str, str]:
    found = re.findall(r"^\s*300\s+float32\s+(\w{4})\s+(\S+)$", output, re.MULTILINE)
    return dict(found)


async def test_probe_shows_the_value_in_its_word_order_and_prints_its_tag() -> None:
    words = encode_registers(251.5, DataType.FLOAT32, WordOrder.CDAB)
    async with CountingSimulator() as sim:
        sim.map_registers(Table.HOLDING, 300, 2)
        sim.set_registers(Table.HOLDING, 300, words, hold=True)
        code, out, err = await _lineside(
            "modbus-probe",
            f"127.0.0.1:{sim.port}",
            "--address",
            "300",
            "--count",
            "2",
            "--type",
            "float32",
            "--order",
            "CDAB",
            "--name",
            "net_weight",
        )
    assert (code, err) == (0, "")
    assert f"0x{words[0]:04X} 0x{words[1]:04X}" in out
    floats = _float32_lines(out)
    assert floats["CDAB"] == "251.5"
    assert set(floats) == {"ABCD", "CDAB", "BADC", "DCBA"}
    assert all(value != "251.5" for order, value in floats.items() if order != "CDAB")
    fragment = out.strip().splitlines()[-1]
    (tag,) = tomllib.loads(f"tags = [{fragment.rstrip(',')}]")["tags"]
    loaded = ModbusTag.model_validate(tag)
    assert (loaded.table, loaded.address, loaded.type, loaded.order) == (
        Table.HOLDING,
        300,
        DataType.FLOAT32,
        WordOrder.CDAB,
    )


async def test_probe_names_the_registers_the_device_refused() -> None:
    async with CountingSimulator() as sim:
        code, out, err = await _lineside(
            "modbus-probe", f"127.0.0.1:{sim.port}", "--input", "--address", "900", "--json"
        )
    assert code == 1
    assert out == ""
    assert "input registers 900..901 of unit 1" in err
    # The device is named once, by the error's own "device HOST:PORT:" prefix.
    assert err.count(f"127.0.0.1:{sim.port}") == 1, err
    assert err.startswith(f"lineside modbus-probe: device 127.0.0.1:{sim.port}: "), err
