"""One site's simulated devices and ERP for the warehouse day, as a child process.

    python -m tests.support.day_site SEED FIRST_LABEL SPEED PACK_RATE_HZ

runs the OPC UA, Modbus and scanner simulators on one scenario timeline (the ``demo``
script: underweight drift with packs below T2, probe excursions, a label gap, a dropout)
and the ERP simulator, all on ephemeral loopback ports, and prints their addresses as one
JSON line once everything listens; SIGTERM ends it.

Nothing depends on today's date: the labels carry :data:`PACK_DATE` and the ERP's day is
placed around :data:`ERP_NOW`. Its running runs started then and have no end, so they are
active on the gateway's clock whenever the test runs. The ERP's day is changed so that the
two running runs share :data:`SHARED_BATCH` (the batch the labeller prints), and the L2
run packs a catch-weight product (the Modbus checkweigher tells no nominal quantity, so
its packs are that product, the only one of the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime
from typing import Final

from adapters.erp.simulator import ErpSimulator
from adapters.simulators import ModbusSimulator, OpcUaSimulator, ScannerSimulator
from adapters.simulators.scenario import LineSpec, ScenarioName

ERP_NOW: Final = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
"""The ERP's "now": its day of runs is placed around it."""
PACK_DATE: Final = date(2024, 3, 5)
SHARED_BATCH: Final = "NO-SAL-240305-S01"
"""The batch code of both running runs on each site (so on four runs of two gateways)."""
DAY: Final = ERP_NOW.strftime("%y%m%d")
L1_RUN: Final = f"{DAY}-L1-02"
"""The ERP's run in progress on L1 (fixed weight: CW1's 240 g product, and a 400 g one)."""
L2_RUN: Final = f"{DAY}-L2-01"
"""The ERP's run in progress on L2 (made catch weight here)."""
CATCH_PLU: Final = "49001"


def _catch_weight_product() -> dict[str, object]:
    return {
        "PLU": CATCH_PLU,
        "Description": "SALMON FAMILY PACK",
        "NominalWeight": None,
        "Tier": "GG",
        "CatchWeight": 1,
        "Tare": 15.0,
        "Glaze": 0.0,
    }


def erp_for_the_day() -> ErpSimulator:
    """The ERP simulator with the day's runs changed as the module docstring says."""
    erp = ErpSimulator(now=lambda: ERP_NOW)
    erp.update_run(L1_RUN, BatchCodes=[SHARED_BATCH])
    erp.update_run(
        L2_RUN,
        BatchCodes=[SHARED_BATCH, f"NO-COD-{DAY}-F09"],
        Description="SALMON FAMILY PACKS",
        Products=[_catch_weight_product()],
    )
    return erp


async def serve(seed: int, first_label: int, speed: float, pack_rate_hz: float) -> None:
    """Run the site's simulators until cancelled; print their addresses when listening."""
    line = LineSpec(batch_code=SHARED_BATCH, pack_date=PACK_DATE, first_label_seq=first_label)
    shared = {
        "seed": seed,
        "scenario": ScenarioName.DEMO,
        "speed": speed,
        "pack_rate_hz": pack_rate_hz,
        "line": line,
        "epoch": asyncio.get_running_loop().time(),
    }
    opcua = OpcUaSimulator(**shared)  # type: ignore[arg-type]
    modbus = ModbusSimulator(**shared)  # type: ignore[arg-type]
    scanner = ScannerSimulator(**shared)  # type: ignore[arg-type]
    erp = erp_for_the_day()
    async with AsyncExitStack() as stack:
        for simulator in (opcua, modbus, scanner, erp):
            await stack.enter_async_context(simulator)
        addresses = {
            "opcua": opcua.endpoint,
            "modbus": modbus.address,
            "scanner": scanner.address,
            "erp": erp.url,
        }
        sys.stdout.write(json.dumps(addresses) + "\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


async def _until_terminated(seed: int, first_label: int, speed: float, rate: float) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    await serve(seed, first_label, speed, rate)


def main(argv: list[str]) -> int:
    seed, first_label, speed, rate = int(argv[0]), int(argv[1]), float(argv[2]), float(argv[3])
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(_until_terminated(seed, first_label, speed, rate))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
