"""The life cycle every simulated peer shares: ``start``, ``stop`` and ``async with``.

The device simulators (:class:`adapters.simulators._driver.ScenarioServer`) and the ERP
simulator (:class:`adapters.erp.simulator.ErpSimulator`) are started and stopped the same way
by the demo and the tests; this base gives them one context-manager implementation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class SimulatorLifecycle(ABC):
    """A simulated peer that serves between :meth:`start` and :meth:`stop`."""

    @abstractmethod
    async def start(self) -> None:
        """Start serving (a second call while serving does nothing)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop serving and drop every client (a second call does nothing)."""

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
