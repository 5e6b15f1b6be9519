"""The gateway service: runs what :func:`gateway.composition.build` made, as one task tree.

Start-up: open the store (quarantining a damaged one), build the gateway over it, then run
two nested TaskGroups and tell systemd ``READY=1``::

    outer: store.committer, systemd.watchdog
      intake: adapter[...], control.server, rules.tick, sync.mqtt, sync.https,
              erp.poller, health.http

Shutdown on SIGTERM/SIGINT, within ``gateway.shutdown_timeout_s``: the intake group is
cancelled and left (the adapters close their connections, the uplink publishes "offline"),
then the stop is recorded, the pending batch committed and the outer group left. The order
is the nesting: nothing in the intake can submit after the committer has stopped. An
unexpected exception in any task cancels the tree and propagates, so the process exits
non-zero and systemd restarts it; known transient faults are retried inside the task that
meets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

from adapters.registry import run_adapter
from gateway.clockwatch import ClockWatch
from gateway.composition import (
    ALERT_HISTORY,
    Gateway,
    IntakeFactory,
    build,
    default_intake,
    gateway_event,
)
from gateway.config import LinesideConfig
from gateway.core.clock import Clock, SystemClock
from gateway.sdnotify import Notifier
from gateway.status import GatewayStatus
from gateway.store import Store
from gateway.tls_files import check_tls_files

log = logging.getLogger(__name__)

FIRST_POLL_WAIT_S = 5.0
"""How long start-up waits for the first ERP answer before recording without it."""

RULES_TICK_S = 1.0
"""How often time-based rules run (batch windows, silent probes, shelving ending)."""

__all__ = ["ALERT_HISTORY", "run", "run_gateway"]


async def run_gateway(
    config: LinesideConfig,
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    notifier: Notifier | None = None,
    intake: IntakeFactory = default_intake,
    on_ready: Callable[[Store], None] | None = None,
    on_status: Callable[[GatewayStatus], None] | None = None,
) -> None:
    """Run the gateway until ``stop`` is set or SIGTERM/SIGINT arrives."""
    check_tls_files(config)
    # Every wall-clock read checks for a step (NTP, an operator): see gateway.clockwatch.
    watch = ClockWatch(clock or SystemClock())
    stop = stop or asyncio.Event()
    with _stop_on_signals(stop):
        async with Store(config.store, watch) as store:
            gateway = await build(config, store, watch, intake)
            await run(gateway, stop, notifier or Notifier(), on_ready, on_status)
    log.info("gateway stopped cleanly")


async def run(
    gateway: Gateway,
    stop: asyncio.Event,
    notifier: Notifier,
    on_ready: Callable[[Store], None] | None = None,
    on_status: Callable[[GatewayStatus], None] | None = None,
) -> None:
    """Run a built gateway until ``stop`` is set, then stop it in order."""
    store, config = gateway.store, gateway.config
    async with asyncio.TaskGroup() as outer:
        outer.create_task(store.run_committer(), name="store.committer")
        watchdog = None
        if notifier.watchdog_interval is not None:
            watchdog = outer.create_task(notifier.watchdog(), name="systemd.watchdog")
        first_poll_done = await _first_poll(gateway)
        async with asyncio.timeout(None) as shutdown:
            async with asyncio.TaskGroup() as intake:
                tasks = _start_intake(intake, gateway, first_poll_done)
                _announce(gateway, notifier)
                if on_ready is not None:
                    on_ready(store)
                if on_status is not None:
                    on_status(gateway.status)
                await stop.wait()
                notifier.notify("STOPPING=1")
                log.info("stopping: intake first, then the pending batch")
                shutdown.reschedule(asyncio.get_running_loop().time() + _grace(config))
                for task in tasks:
                    task.cancel()
        async with asyncio.timeout_at(shutdown.when()):
            # Open ℮ batches stay open: the next start rebuilds them from the store, so a
            # planned restart does not split an hourly batch (docs/restarts.md).
            store.submit(gateway_event(gateway.clock, "gateway_stopped", {"reason": "signal"}))
            await store.stop_committer()
        if watchdog is not None:
            watchdog.cancel()


def _grace(config: LinesideConfig) -> float:
    return config.gateway.shutdown_timeout_s


async def _first_poll(gateway: Gateway) -> bool:
    """The first ERP poll, awaited for a short while before the devices start, so that the first
    packs already join their run; a slow ERP must not hold up recording."""
    if gateway.erp is None:
        return False
    try:
        async with asyncio.timeout(FIRST_POLL_WAIT_S):
            return await gateway.erp.poll_once()
    except TimeoutError:
        log.warning("erp: first poll still running after %ss", FIRST_POLL_WAIT_S)
        return False


def _start_intake(
    group: asyncio.TaskGroup, gateway: Gateway, first_poll_done: bool
) -> list[asyncio.Task[None]]:
    """Start everything that takes records in or sends them out, in ``group``."""
    store = gateway.store
    tasks = [
        group.create_task(run_adapter(a, store), name=f"adapter[{a.device_id}]")
        for a in gateway.adapters
    ]
    tasks.append(group.create_task(gateway.control.serve(), name="control.server"))
    tasks.append(group.create_task(_tick_rules(gateway), name="rules.tick"))
    if gateway.mqtt is not None:
        # Stopped with the intake: it publishes "offline" and leaves what the warehouse has
        # not acknowledged in the outbox for the next start.
        tasks.append(group.create_task(gateway.mqtt.run(), name="sync.mqtt"))
    if gateway.https is not None:
        tasks.append(group.create_task(gateway.https.run(), name="sync.https"))
    if gateway.erp is not None:
        poll = gateway.erp.run(first_poll_done=first_poll_done)
        tasks.append(group.create_task(poll, name="erp.poller"))
    config = gateway.config
    if config.health is not None:
        # uvicorn and prometheus-client load only when the endpoint is configured.
        from gateway.health import HealthServer  # noqa: PLC0415

        health = HealthServer(config.health, gateway.status, secrets=config.secrets())
        tasks.append(group.create_task(health.serve(), name="health.http"))
    return tasks


def _announce(gateway: Gateway, notifier: Notifier) -> None:
    """Tell systemd and the log that the gateway records."""
    config, devices = gateway.config, len(gateway.adapters)
    notifier.notify(f"READY=1\nSTATUS=recording {devices} device(s)")
    log.info(
        "gateway %s running: %d device(s), %s, store %s",
        config.gateway.id,
        devices,
        f"ERP {config.erp.kind}" if config.erp else "no ERP (runs from the line)",
        config.store.path,
    )


async def _tick_rules(gateway: Gateway) -> None:
    """Run the time-based rules once a second, and sample the live status's trends."""
    while True:
        await asyncio.sleep(RULES_TICK_S)
        gateway.pipeline.submit_all(gateway.engine.tick())
        gateway.status.sample()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM/SIGINT while inside (where the loop can handle signals)."""
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        yield
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
