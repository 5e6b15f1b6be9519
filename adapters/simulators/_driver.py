"""The loop that plays a :class:`ScenarioEngine` against wall time (shared by the simulators)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from types import TracebackType
from typing import ClassVar, NoReturn, Self

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


class ScenarioServer(ABC):
    """A simulated device: a server on a fixed port plus the task playing the scenario on it.

    Subclasses set ``_kind``, ``_engine``, ``_speed``, ``_epoch``, ``_drive``, ``_port`` and
    ``_driver = None`` in ``__init__``, and implement :meth:`_open`, :meth:`_close` and
    :meth:`_apply`. The port chosen on the first start is kept across restarts.
    """

    _kind: ClassVar[str]
    _engine: ScenarioEngine
    _speed: float
    _epoch: float | None
    _drive: bool
    _port: int
    _driver: asyncio.Task[None] | None

    @abstractmethod
    async def _open(self) -> None:
        """Start listening (on the same port as before, after the first start)."""

    @abstractmethod
    async def _close(self) -> None:
        """Stop listening and drop every client."""

    @abstractmethod
    async def _apply(self, events: Sequence[SimEvent]) -> None:
        """Show the scenario's events on the simulated device."""

    async def _reopen(self) -> None:
        await self._close()
        await self._open()

    async def start(self) -> None:
        """Start the server and the scenario driver."""
        await self._open()
        if self._drive and self._driver is None:
            if self._epoch is None:
                self._epoch = asyncio.get_running_loop().time()
            self._driver = asyncio.create_task(
                drive_forever(
                    self._engine, speed=self._speed, epoch=self._epoch, apply=self._apply
                ),
                name=f"simulator[{self._kind}:{self._port}].driver",
            )

    async def stop(self) -> None:
        """Stop the scenario driver and the server. Simulated time keeps running."""
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None
        await self._close()

    async def restart(self) -> None:
        """Stop and start the server on the same port: clients are disconnected."""
        await self._reopen()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
