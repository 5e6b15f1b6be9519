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
from collections.abc import Callable

from adapters.base import DeviceAdapter
from adapters.registry import run_adapter
from gateway import __version__
from gateway.backoff import Backoff
from gateway.clock import Clock, SystemClock
from gateway.clockwatch import ClockStep, ClockWatch
from gateway.config import LinesideConfig
from gateway.control import (
    AlertControl,
    ControlServer,
    DeadLetterControl,
    ReportControl,
    RunControl,
)
from gateway.erp_sync import ErpPoller, build_erp_source, load_known_runs
from gateway.pipeline import Pipeline
from gateway.records import AlertRecord, DeviceEvent, RecordFlag
from gateway.rules_engine import RulesEngine
from gateway.rules_replay import last_line_modes, rebuild_rules
from gateway.runs import RunIndex
from gateway.sdnotify import Notifier
from gateway.status import GatewayStatus
from gateway.store import Store
from gateway.tls_files import check_tls_files, client_tls_context
from rules.devices import WatchedDevice
from sync.alert_feed import AlertFeed
from sync.andon import AndonPublisher
from sync.https_uplink import HttpsUplink
from sync.mqtt_uplink import MqttUplink
from sync.outbox import Outbox, quarantine_alert_at_start

log = logging.getLogger(__name__)

FIRST_POLL_WAIT_S = 5.0
"""How long start-up waits for the first ERP answer before recording without it."""

RULES_TICK_S = 1.0
"""How often time-based rules run (batch windows, silent probes, shelving ending)."""

ALERT_HISTORY = (
    "SELECT ts_us, alert_id, rule, subject, line, severity, state, message, detail "
    "FROM alerts WHERE alert_id IN (SELECT alert_id FROM alerts WHERE state = 'raised' "
    "ORDER BY seq DESC LIMIT 2000) ORDER BY seq"
)
"""The transitions of the newest alerts, to rebuild the alert book after a restart."""

GATEWAY_SOURCE = "gateway"
"""The ``device`` name of events the gateway records about itself."""

IntakeFactory = Callable[[LinesideConfig, Pipeline, Clock], list[DeviceAdapter]]
"""Builds the device adapters for a config, feeding the pipeline."""


def default_intake(config: LinesideConfig, sink: Pipeline, clock: Clock) -> list[DeviceAdapter]:
    """The device adapters for every enabled device in the config, feeding ``sink``."""
    from adapters.registry import build_adapters  # noqa: PLC0415

    return build_adapters(config, sink, clock)


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
    clock = watch
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
            engine: RulesEngine | None = None

            def on_step(step: ClockStep) -> None:
                store.submit(clock_step_event(step))
                if engine is not None:
                    engine.clock_stepped(step.step_s)

            watch.on_step = on_step
            started = DeviceEvent(
                ts_us=clock.wall_us(),
                device=GATEWAY_SOURCE,
                kind="gateway_started",
                detail={
                    "version": __version__,
                    "pid": os.getpid(),
                    "gateway": config.gateway.id,
                },
            )
            store.submit(started)
            # The runs known before this start are in force until the ERP answers.
            index = RunIndex(await load_known_runs(store))
            poller = None
            if config.erp is not None:
                poller = ErpPoller(config.erp, build_erp_source(config.erp), store, index, clock)
                await poller.load()
            engine = RulesEngine(
                config.rules,
                index,
                clock,
                programs={d.id: d.programs for d in config.devices if d.programs},
                label_lines={
                    d.line for d in config.devices if d.role == "label_scanner" and d.enabled
                },
                devices=watched_devices(config),
            )
            # The rules' state (open ℮ batches, giveaway, HACCP, label windows) from the
            # stored records, then the alert book and line modes from the stored transitions.
            await rebuild_rules(store, engine, index, config.rules, clock)
            # This start is an outage's end: a label gap across it names the restart.
            engine.evaluate(started)
            for record in engine.restore(await store.fetchall(ALERT_HISTORY)):
                store.submit(record)
            for record in engine.restore_line_modes(await last_line_modes(store)):
                store.submit(record)
            # Records in the sync quarantine wait for an operator whatever the restart: the
            # alert that says so is raised again now (the restore above cleared it).
            outbox = Outbox(store, gateway=config.gateway.id, site=config.gateway.site)
            quarantined = await quarantine_alert_at_start(outbox)
            if quarantined is not None:
                store.submit(quarantined)
            pipeline = Pipeline(
                store,
                index,
                provisional=(lambda: poller.provisional) if poller else lambda: False,
                rules=engine,
                time_uncertain=watch.time_uncertain,
            )
            lines = {line.id for line in config.lines}
            uplink = build_uplink(config, store, engine, clock)
            https = build_https_uplink(config, store)
            adapters = intake(config, pipeline, clock)
            status = GatewayStatus(
                config,
                store=store,
                engine=engine,
                runs=index,
                clock=clock,
                devices=adapters,
                erp=poller,
                uplink=uplink if uplink is not None else https,
                shedding=pipeline.shedding,
            )
            await status.load()
            pipeline.observers.append(status.observe)
            engine.listeners.append(status.observe_alert)
            for link in (uplink, https):
                if link is not None:
                    link.ack_observers.append(status.observe_ack)
            runs = RunControl(store, index, clock, lines)
            alerts = AlertControl(engine, store, lines)
            dead_letters = DeadLetterControl(outbox)
            server = ControlServer(
                config.control_socket_path,
                {
                    "start_run": runs.start_run,
                    "end_run": runs.end_run,
                    "acknowledge": alerts.acknowledge,
                    "shelve": alerts.shelve,
                    "line_mode": alerts.line_mode,
                    "alerts": alerts.list_alerts,
                    "report": ReportControl(config.store.path).report,
                    "dead_letter_list": dead_letters.list_records,
                    "dead_letter_show": dead_letters.show_record,
                    "dead_letter_requeue": dead_letters.requeue,
                    "status": lambda _request: status.snapshot(),
                },
                max_connections=config.gateway.control_max_connections,
                idle_timeout_s=config.gateway.control_idle_timeout_s,
                group=config.gateway.control_socket_group,
                mode=config.gateway.control_socket_mode,
            )
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(store.run_committer(), name="store.committer")
                # The first ERP poll is awaited (briefly) before the devices start, so the first
                # packs already join their run; a slow ERP must not hold up recording.
                first_poll_done = False
                if poller is not None:
                    try:
                        async with asyncio.timeout(FIRST_POLL_WAIT_S):
                            first_poll_done = await poller.poll_once()
                    except TimeoutError:
                        log.warning("erp: first poll still running after %ss", FIRST_POLL_WAIT_S)
                intake_tasks = [
                    tasks.create_task(run_adapter(a, store), name=f"adapter[{a.device_id}]")
                    for a in adapters
                ]
                device_count = len(intake_tasks)
                intake_tasks.append(tasks.create_task(server.serve(), name="control.server"))
                intake_tasks.append(
                    tasks.create_task(_tick_rules(engine, pipeline, status), name="rules.tick")
                )
                if uplink is not None:
                    # Stopped with the intake: it publishes "offline" and leaves what the
                    # warehouse has not acknowledged in the outbox for the next start.
                    intake_tasks.append(tasks.create_task(uplink.run(), name="sync.mqtt"))
                if https is not None:
                    intake_tasks.append(tasks.create_task(https.run(), name="sync.https"))
                if poller is not None:
                    intake_tasks.append(
                        tasks.create_task(
                            poller.run(first_poll_done=first_poll_done), name="erp.poller"
                        )
                    )
                if config.health is not None:
                    # uvicorn and prometheus-client load only when the endpoint is configured.
                    from gateway.health import HealthServer  # noqa: PLC0415

                    health = HealthServer(config.health, status, secrets=config.secrets())
                    intake_tasks.append(tasks.create_task(health.serve(), name="health.http"))
                watchdog = None
                if notifier.watchdog_interval is not None:
                    watchdog = tasks.create_task(notifier.watchdog(), name="systemd.watchdog")
                notifier.notify(f"READY=1\nSTATUS=recording {device_count} device(s)")
                log.info(
                    "gateway %s running: %d device(s), %s, store %s",
                    config.gateway.id,
                    device_count,
                    f"ERP {config.erp.kind}" if config.erp else "no ERP (runs from the line)",
                    config.store.path,
                )
                if on_ready is not None:
                    on_ready(store)
                if on_status is not None:
                    on_status(status)
                await stop.wait()
                notifier.notify("STOPPING=1")
                log.info("stopping: intake first, then the pending batch")
                async with asyncio.timeout(config.gateway.shutdown_timeout_s):
                    for task in intake_tasks:
                        task.cancel()
                    await asyncio.gather(*intake_tasks, return_exceptions=True)
                    # Open ℮ batches stay open: the next start rebuilds them from the store,
                    # so a planned restart does not split an hourly batch (docs/restarts.md).
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


async def _tick_rules(engine: RulesEngine, pipeline: Pipeline, status: GatewayStatus) -> None:
    """Run the time-based rules once a second, and sample the live status's trends."""
    while True:
        await asyncio.sleep(RULES_TICK_S)
        pipeline.submit_all(engine.tick())
        status.sample()


def watched_devices(config: LinesideConfig) -> list[WatchedDevice]:
    """The enabled devices, for the ``device_down`` rule (rules/devices.py)."""
    return [
        WatchedDevice(d.id, d.line, d.role, d.down_alert_after_s)
        for d in config.devices
        if d.enabled
    ]


def build_uplink(
    config: LinesideConfig, store: Store, engine: RulesEngine, clock: Clock
) -> MqttUplink | None:
    """The MQTT uplink when ``[sync.mqtt]`` is configured: the andon state from the alert
    book, the alert transitions from the store (sync/alert_feed.py)."""
    settings = config.sync.mqtt
    if settings is None:
        return None
    andon = AndonPublisher(site=config.gateway.site, gateway=config.gateway.id, clock=clock)
    for line in config.lines:
        andon.update(line.id, engine.andon(line.id), engine.summary(line.id))

    def on_alert(record: AlertRecord) -> None:
        # Only the board's state: the transition itself is published once it is stored.
        if record.line is None:
            return
        andon.update(record.line, engine.andon(record.line), engine.summary(record.line))

    engine.listeners.append(on_alert)
    tls = None
    if settings.ca_file is not None:
        tls = client_tls_context(
            "sync.mqtt", settings.ca_file, settings.cert_file, settings.key_file
        )
    return MqttUplink(
        store,
        host=settings.host,
        port=settings.port,
        site=config.gateway.site,
        gateway=config.gateway.id,
        andon=andon,
        alerts=AlertFeed(store, site=config.gateway.site, gateway=config.gateway.id),
        backoff=Backoff(initial=settings.reconnect_min_s, maximum=settings.reconnect_max_s),
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        tls_context=tls,
        keepalive_s=settings.keepalive_s,
        max_records=settings.batch_records,
        max_bytes=settings.batch_bytes,
        window=settings.window,
        ack_key=settings.ack_key.get_secret_value().encode() if settings.ack_key else None,
    )


def build_https_uplink(config: LinesideConfig, store: Store) -> HttpsUplink | None:
    """The HTTPS uplink when ``[sync.https]`` is configured."""
    settings = config.sync.https
    if settings is None:
        return None
    client_cert = None
    if settings.cert_file is not None and settings.key_file is not None:
        client_cert = (settings.cert_file, settings.key_file)
    return HttpsUplink(
        store,
        url=settings.url,
        site=config.gateway.site,
        gateway=config.gateway.id,
        ca_file=settings.ca_file,
        client_cert=client_cert,
        token=settings.token.get_secret_value() if settings.token else None,
        max_records=settings.batch_records,
        max_bytes=settings.batch_bytes,
        timeout_s=settings.timeout_s,
    )


def clock_step_event(step: ClockStep) -> DeviceEvent:
    """The ``clock_step`` event recorded when the wall clock was stepped."""
    return DeviceEvent(
        ts_us=step.after_us,
        device=GATEWAY_SOURCE,
        kind="clock_step",
        detail={
            "step_s": step.step_s,
            "before_us": step.before_us,
            "uncertain_s": step.uncertain_s,
        },
        flags=RecordFlag.TIME_UNCERTAIN,
    )
