"""What the device simulators share: the loop that plays a :class:`ScenarioEngine` against
wall time, and :class:`ScenarioServer`, the life cycle of a simulated device."""

from __future__ import annotations

import asyncio
import contextlib
import math
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import ClassVar, NoReturn

from adapters.simulator_lifecycle import SimulatorLifecycle
from adapters.simulators.scenario import (
    LineSpec,
    ScenarioEngine,
    ScenarioName,
    SimEvent,
    sim_time,
    wall_delay,
)

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


class ScenarioServer(SimulatorLifecycle):
    """A simulated device: a server on a fixed port plus the task playing the scenario on it.

    Subclasses set ``_kind``, call :meth:`_init_scenario` and set ``_server = None`` in
    ``__init__``, and implement
    :meth:`_start_server`, :meth:`_stop_server` and :meth:`_apply`. The port chosen on the
    first start is kept across restarts.
    """

    _kind: ClassVar[str]
    _host: str
    _port: int
    _engine: ScenarioEngine
    _speed: float
    _epoch: float | None
    _drive: bool
    _server: object | None
    _driver: asyncio.Task[None] | None

    def _init_scenario(
        self,
        *,
        host: str,
        port: int,
        seed: int,
        scenario: ScenarioName | str,
        speed: float,
        pack_rate_hz: float,
        line: LineSpec | None,
        drive: bool,
        epoch: float | None,
    ) -> None:
        """Set what every simulated device shares; call it first in ``__init__``."""
        self._host = host
        self._port = port
        self._speed = check_speed(speed)
        self._engine = ScenarioEngine(
            seed=seed,
            scenario=ScenarioName(scenario),
            pack_rate_hz=pack_rate_hz,
            line=line if line is not None else LineSpec(pack_date=local_today()),
        )
        self._drive = drive
        self._epoch = epoch
        self._driver = None

    @property
    def port(self) -> int:
        """The TCP port (0 until the first start when an ephemeral port was asked for)."""
        return self._port

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self._host}:{self._port}"

    @property
    def engine(self) -> ScenarioEngine:
        """The scenario engine (its ``schedule`` says when scripted events happen)."""
        return self._engine

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._server is not None

    @abstractmethod
    async def _start_server(self) -> None:
        """Start listening (on the same port as before, after the first start)."""

    @abstractmethod
    async def _stop_server(self) -> None:
        """Stop listening and drop every client."""

    @abstractmethod
    async def _apply(self, events: Sequence[SimEvent]) -> None:
        """Show the scenario's events on the simulated device."""

    async def _open(self) -> None:
        await self._start_server()

    async def _close(self) -> None:
        await self._stop_server()

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
