"""The loop that plays a :class:`ScenarioEngine` against wall time (shared by the simulators)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import NoReturn

from adapters.simulators.scenario import ScenarioEngine, SimEvent, sim_time, wall_delay

# Upper bound on one sleep, so the apply callback also runs as a heartbeat when the scenario
# is quiet (slow speeds) and a changed speed or epoch would be picked up promptly.
_MAX_SLEEP_S = 0.5
# Wake a little after the next event rather than a hair before it (loop clock granularity).
_LATE_S = 0.001


async def drive_forever(
    engine: ScenarioEngine,
    *,
    speed: float,
    epoch: float,
    apply: Callable[[Sequence[SimEvent]], Awaitable[None]],
) -> NoReturn:
    """Advance ``engine`` to the current simulated time and ``apply`` its events, forever.

    ``epoch`` is the ``loop.time()`` at which simulated time was 0. ``apply`` is called at
    least every half second, with an empty sequence when nothing happened.
    """
    loop = asyncio.get_running_loop()
    while True:
        now = max(sim_time(loop.time() - epoch, speed), engine.now_s or 0.0)
        await apply(engine.advance(now))
        upcoming = engine.next_event_time()
        delay = _MAX_SLEEP_S
        if math.isfinite(upcoming):
            delay = min(_MAX_SLEEP_S, wall_delay(upcoming - now, speed) + _LATE_S)
        await asyncio.sleep(delay)


def check_speed(speed: float) -> float:
    """Validate a speed factor (positive, finite) and return it."""
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed must be a positive number, got {speed!r}")
    return speed


def local_today() -> date:
    """Today's date on this machine's local clock: the date a label printer would print."""
    return datetime.now(UTC).astimezone().date()
