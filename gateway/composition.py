"""The composition root: every part of a running gateway and every connection between them.

:func:`build` is the one place that makes the parts (device adapters, pipeline, rules
engine, uplinks, andon board, control server, live status, health endpoint) and hands each
its collaborators; :mod:`gateway.service` runs what it returns. Reading this module top to
bottom gives the data path of a pack: adapter -> :class:`~gateway.pipeline.Pipeline` (joins
the run, asks the rules) -> :class:`~gateway.store.Store` -> uplinks.

Three connections are mutual and therefore made after construction, here and nowhere else:
the rules engine tells the live status and the andon board of each alert transition while
both read the engine's alert book; the live status shows the device adapters, which feed the
pipeline that feeds the status; and the clock watch, which exists before the store it
stamps, reports a step to the store and the engine built on top of it. The uplinks report
acknowledgement latencies to the live status through their ``ack_observers``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from adapters.base import DeviceAdapter
from gateway import __version__
from gateway.announced_names import announce_names
from gateway.clockwatch import ClockStep, ClockWatch
from gateway.config import LinesideConfig
from gateway.control import (
    AlertControl,
    ControlServer,
    DeadLetterControl,
    ReportControl,
    RunControl,
)
from gateway.core.clock import Clock
from gateway.core.records import DeviceEvent, RecordFlag
from gateway.erp_sync import ErpPoller, build_erp_source, load_known_runs
from gateway.pipeline import Pipeline
from gateway.rules_engine import RulesEngine
from gateway.rules_replay import last_line_modes, rebuild_rules
from gateway.runs import RunIndex
from gateway.shedding import ShedLedger
from gateway.status import GatewayStatus
from gateway.store import Store
from gateway.uplink_factory import build_andon, build_https_uplink, build_uplink
from rules.devices import WatchedDevice
from sync.mqtt_uplink import MqttUplink
from sync.outbox import Outbox, quarantine_alert_at_start

if TYPE_CHECKING:
    from sync.https_uplink import HttpsUplink

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


@dataclasses.dataclass(frozen=True, slots=True)
class Gateway:
    """Every part of one running gateway, connected; :func:`gateway.service.run` runs it."""

    config: LinesideConfig
    store: Store
    clock: ClockWatch
    engine: RulesEngine
    pipeline: Pipeline
    status: GatewayStatus
    adapters: list[DeviceAdapter]
    control: ControlServer
    erp: ErpPoller | None
    mqtt: MqttUplink | None
    https: HttpsUplink | None


class ClockStepRecorder:
    """What a wall-clock step does: a ``clock_step`` event in the store, and the rules'
    timers follow the step (see gateway/clockwatch.py)."""

    def __init__(self, store: Store, engine: RulesEngine) -> None:
        self.store = store
        self.engine = engine

    def __call__(self, step: ClockStep) -> None:
        self.store.submit(clock_step_event(step))
        self.engine.clock_stepped(step.step_s)

    def attach(self, watch: ClockWatch, *, noticed_before: int) -> None:
        """Take ``watch``'s steps from now on; the steps it noticed since the first
        ``noticed_before`` (while the engine was being rebuilt) are recorded at once."""
        for step in watch.steps[noticed_before:]:
            self.store.submit(clock_step_event(step))
        watch.on_step = self


async def build(
    config: LinesideConfig,
    store: Store,
    clock: ClockWatch,
    intake: IntakeFactory = default_intake,
) -> Gateway:
    """Make every part of the gateway over an open ``store`` and connect them.

    Restores what a restart must keep (known runs, the rules' state, the alert book, line
    modes, the sync quarantine alert) before anything records, and records the start.
    """
    steps_before = len(clock.steps)
    started = gateway_event(clock, "gateway_started", started_detail(config))
    store.submit(started)
    await announce_names(config, store, clock)
    # The runs known before this start are in force until the ERP answers.
    index = RunIndex(await load_known_runs(store))
    poller = None
    if config.erp is not None:
        poller = ErpPoller(config.erp, build_erp_source(config.erp), store, index, clock)
        await poller.load(runs=False)
    engine = await restored_engine(config, store, index, clock, started)
    ClockStepRecorder(store, engine).attach(clock, noticed_before=steps_before)
    outbox = await restored_outbox(config, store)
    shedding = ShedLedger()
    board = build_andon(config, engine, clock)
    mqtt = build_uplink(config, store, board, outbox) if board is not None else None
    https = build_https_uplink(config, store, outbox)
    status = GatewayStatus(
        config,
        store=store,
        engine=engine,
        runs=index,
        clock=clock,
        erp=poller,
        uplink=mqtt if mqtt is not None else https,
        shedding=shedding,
    )
    pipeline = Pipeline(
        store,
        index,
        provisional=(lambda: poller.provisional) if poller else lambda: False,
        rules=engine,
        time_uncertain=clock.time_uncertain,
        observers=[status.observe],
        shedding=shedding,
    )
    adapters = intake(config, pipeline, clock)
    status.devices = list(adapters)
    await status.load()
    if board is not None:
        engine.listeners.append(board)
    engine.listeners.append(status.observe_alert)
    for link in (mqtt, https):
        if link is not None:
            link.ack_observers.append(status.observe_ack)
    control = build_control(
        config, store, index=index, clock=clock, engine=engine, outbox=outbox, status=status
    )
    return Gateway(
        config, store, clock, engine, pipeline, status, adapters, control, poller, mqtt, https
    )


async def restored_engine(
    config: LinesideConfig, store: Store, index: RunIndex, clock: Clock, started: DeviceEvent
) -> RulesEngine:
    """The rules engine with the state it had before this start, rebuilt from the store."""
    engine = RulesEngine(
        config.rules,
        index,
        clock,
        programs={d.id: d.programs for d in config.devices if d.programs},
        label_lines={d.line for d in config.devices if d.role == "label_scanner" and d.enabled},
        devices=watched_devices(config),
    )
    # The rules' state (open ℮ batches, giveaway, HACCP, label windows) from the stored
    # records, then the alert book and line modes from the stored transitions.
    await rebuild_rules(store, engine, index, config.rules, clock)
    # This start is an outage's end: a label gap across it names the restart.
    engine.evaluate(started)
    for record in engine.restore(await store.fetchall(ALERT_HISTORY)):
        store.submit(record)
    for record in engine.restore_line_modes(await last_line_modes(store)):
        store.submit(record)
    return engine


async def restored_outbox(config: LinesideConfig, store: Store) -> Outbox:
    """The sync outbox, with the quarantine's alert raised again if records wait there."""
    outbox = Outbox(
        store,
        gateway=config.gateway.id,
        site=config.gateway.site,
        report_backlog=config.sync.report_backlog,
    )
    # Records in the sync quarantine wait for an operator whatever the restart: the alert
    # that says so is raised again now (the engine's restore cleared it).
    quarantined = await quarantine_alert_at_start(outbox)
    if quarantined is not None:
        store.submit(quarantined)
    return outbox


def build_control(
    config: LinesideConfig,
    store: Store,
    *,
    index: RunIndex,
    clock: Clock,
    engine: RulesEngine,
    outbox: Outbox,
    status: GatewayStatus,
) -> ControlServer:
    """The control socket's server with a handler for every operator command."""
    lines = {line.id for line in config.lines}
    runs = RunControl(store, index, clock, lines)
    alerts = AlertControl(engine, store, lines)
    dead_letters = DeadLetterControl(outbox)
    return ControlServer(
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


def watched_devices(config: LinesideConfig) -> list[WatchedDevice]:
    """The enabled devices, for the ``device_down`` rule (rules/devices.py)."""
    return [
        WatchedDevice(d.id, d.line, d.role, d.down_alert_after_s)
        for d in config.devices
        if d.enabled
    ]


def started_detail(config: LinesideConfig) -> dict[str, object]:
    """What the ``gateway_started`` event says about this process."""
    return {"version": __version__, "pid": os.getpid(), "gateway": config.gateway.id}


def gateway_event(clock: Clock, kind: str, detail: dict[str, object]) -> DeviceEvent:
    """An event the gateway records about itself, stamped now."""
    return DeviceEvent(ts_us=clock.wall_us(), device=GATEWAY_SOURCE, kind=kind, detail=detail)


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
