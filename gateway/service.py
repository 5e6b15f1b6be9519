"""The gateway service: one TaskGroup tree that owns every task.

Start-up: open the store (quarantining a damaged one), start the committer, the device
adapters and the watchdog, then tell systemd ``READY=1``.

Shutdown on SIGTERM/SIGINT, within ``gateway.shutdown_timeout_s``: stop intake (cancel
the adapters, which close their connections), record the stop, commit the pending batch,
close the store. An unexpected exception in any task cancels the tree and propagates, so the
process exits non-zero and systemd restarts it; known transient faults are retried inside the
task that meets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from gateway import __version__
from gateway.clock import Clock, SystemClock
from gateway.config import LinesideConfig
from gateway.records import DeviceEvent
from gateway.sdnotify import Notifier
from gateway.store import Store

log = logging.getLogger(__name__)

GATEWAY_SOURCE = "gateway"
"""The ``device`` name of events the gateway records about itself."""

IntakeFactory = Callable[
    [LinesideConfig, Store, Clock], list[tuple[str, Coroutine[Any, Any, None]]]
]
"""Builds the named intake coroutines (device adapters) for a config."""


def default_intake(
    config: LinesideConfig, store: Store, clock: Clock
) -> list[tuple[str, Coroutine[Any, Any, None]]]:
    """The device adapters for every enabled device in the config."""
    from adapters.registry import build_adapters, run_adapter  # noqa: PLC0415

    return [
        (f"adapter[{a.device_id}]", run_adapter(a, store))
        for a in build_adapters(config, store, clock)
    ]


async def run_gateway(
    config: LinesideConfig,
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    notifier: Notifier | None = None,
    intake: IntakeFactory = default_intake,
    on_ready: Callable[[Store], None] | None = None,
) -> None:
    """Run the gateway until ``stop`` is set or SIGTERM/SIGINT arrives."""
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    notifier = notifier or Notifier()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        async with Store(config.store, clock) as store:
            store.submit(
                DeviceEvent(
                    ts_us=clock.wall_us(),
                    device=GATEWAY_SOURCE,
                    kind="gateway_started",
                    detail={
                        "version": __version__,
                        "pid": os.getpid(),
                        "gateway": config.gateway.id,
                    },
                )
            )
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(store.run_committer(), name="store.committer")
                intake_tasks = [
                    tasks.create_task(coro, name=name)
                    for name, coro in intake(config, store, clock)
                ]
                watchdog = None
                if notifier.watchdog_interval is not None:
                    watchdog = tasks.create_task(notifier.watchdog(), name="systemd.watchdog")
                notifier.notify(f"READY=1\nSTATUS=recording {len(intake_tasks)} device(s)")
                log.info(
                    "gateway %s running: %d device task(s), store %s",
                    config.gateway.id,
                    len(intake_tasks),
                    config.store.path,
                )
                if on_ready is not None:
                    on_ready(store)
                await stop.wait()
                notifier.notify("STOPPING=1")
                log.info("stopping: intake first, then the pending batch")
                async with asyncio.timeout(config.gateway.shutdown_timeout_s):
                    for task in intake_tasks:
                        task.cancel()
                    await asyncio.gather(*intake_tasks, return_exceptions=True)
                    store.submit(
                        DeviceEvent(
                            ts_us=clock.wall_us(),
                            device=GATEWAY_SOURCE,
                            kind="gateway_stopped",
                            detail={"reason": "signal"},
                        )
                    )
                    await store.stop_committer()
                if watchdog is not None:
                    watchdog.cancel()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    log.info("gateway stopped cleanly")
