"""``lineside demo``: simulators, gateway and the operator TUI; everything on this machine.

On a terminal, the demo starts the back end (device simulators, the simulated ERP, the
gateway on ``config/demo.toml``, and a loopback broker with the central ingest when
mosquitto is installed) as a child process logging to ``demo.log`` beside the store, and
opens the operator TUI in the foreground, as an operator would run it beside a real
gateway. Quitting the TUI (``q``) stops the back end.

Headless (``--headless``, ``--seconds``, or output not to a terminal) it runs the back end
in this process and prints a status line a second instead, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from adapters.simulators import SimulatorSettings, run_simulators
from gateway.config import LinesideConfig, MqttSync, SyncSection, load_config
from gateway.demo_broker import demo_broker
from gateway.errors import ConfigError
from gateway.logs import configure_logging
from gateway.service import run_gateway
from gateway.store import Store
from sync.ingest import IngestService, IngestSettings

log = logging.getLogger(__name__)

DEMO_OPCUA_PORT = 48400
DEMO_MODBUS_PORT = 50200
DEMO_SCANNER_PORT = 50300
DEMO_ERP_PORT = 48500
"""Where ``config/demo.toml`` expects the simulators."""


def demo_simulator_settings() -> SimulatorSettings:
    """The simulators as ``config/demo.toml`` expects them."""
    return SimulatorSettings(
        opcua_port=DEMO_OPCUA_PORT,
        modbus_port=DEMO_MODBUS_PORT,
        scanner_port=DEMO_SCANNER_PORT,
        erp_port=DEMO_ERP_PORT,
    )


ACTIVE_ALERTS = """
SELECT rule, severity, subject FROM alerts a
WHERE state IN ('raised', 'updated') AND seq = (
    SELECT max(seq) FROM alerts b WHERE b.alert_id = a.alert_id
    AND b.state IN ('raised', 'updated', 'cleared'))
ORDER BY seq
"""
"""Alerts whose condition still holds (their newest raise/update/clear is not a clear)."""


async def _live_view(
    store_ready: asyncio.Future[Store], config: LinesideConfig, warehouse: Path | None
) -> None:
    """A status line per second: what the gateway has recorded so far."""
    queries = {
        "packs": "SELECT count(*) FROM packs",
        "temps": "SELECT count(*) FROM temperatures",
        "labels": "SELECT count(*) FROM label_scans",
        "rejected": "SELECT count(*) FROM rejected_inputs",
        "events": "SELECT count(*) FROM device_events",
        "outbox": "SELECT count(*) FROM outbox",
    }
    store = await store_ready
    print(f"gateway {config.gateway.id}: recording into {config.store.path}", flush=True)
    if config.sync.mqtt is None:
        print("uplink: not configured (no mosquitto here); records stay buffered in the store")
    else:
        mqtt = config.sync.mqtt
        print(f"uplink: MQTT to 127.0.0.1:{mqtt.port}, central ingest into {warehouse}")
    print(
        "alerts: list with 'lineside alerts -c config/demo.toml', acknowledge with "
        "'lineside ack -c config/demo.toml ALERT_ID --operator NAME'"
    )
    while True:
        await asyncio.sleep(1.0)
        counts = {name: (await store.fetchall(sql))[0][0] for name, sql in queries.items()}
        last = await store.fetchall(
            "SELECT net_g, coalesce(run_number, 'no run') FROM packs ORDER BY seq DESC LIMIT 1"
        )
        last_pack = f"{last[0][0]:.1f} g, run {last[0][1]}" if last else "-"
        active = await store.fetchall(ACTIVE_ALERTS)
        synced = ""
        if warehouse is not None:
            synced = f"  in the warehouse {await asyncio.to_thread(_warehouse_count, warehouse)}"
        uplink = "" if config.sync.mqtt else " (uplink not configured)"
        print(
            f"packs {counts['packs']} (last {last_pack})  temperatures {counts['temps']}  "
            f"labels {counts['labels']}  rejected {counts['rejected']}  "
            f"buffered {counts['outbox']}{uplink}{synced}",
            flush=True,
        )
        if active:
            listed = ", ".join(
                f"{severity.upper()} {rule} [{subject}]" for rule, severity, subject in active
            )
            print(f"  active alerts: {listed}", flush=True)


async def _demo(config: LinesideConfig, seconds: float | None) -> None:
    async with demo_broker(config.store.path.parent / "broker") as port:
        if port is None:
            await _demo_with(config, seconds, None)
            return
        # Sync through a local broker to a local warehouse (the central ingest, SQLite).
        warehouse = config.store.path.parent / "warehouse.db"
        ingest = IngestService(
            IngestSettings(
                mqtt_host="127.0.0.1",
                mqtt_port=port,
                client_id="lineside-demo-ingest",
                http_port=0,
                sqlite_path=warehouse,
            )
        )
        ingest_task = asyncio.create_task(ingest.run(), name="demo.ingest")
        try:
            await asyncio.wait_for(ingest.ready.wait(), 30)
            synced = config.model_copy(
                update={"sync": SyncSection(mqtt=MqttSync(host="127.0.0.1", port=port))}
            )
            await _demo_with(synced, seconds, warehouse)
        finally:
            ingest_task.cancel()
            await asyncio.gather(ingest_task, return_exceptions=True)


async def _demo_with(config: LinesideConfig, seconds: float | None, warehouse: Path | None) -> None:
    stop = asyncio.Event()
    started = asyncio.Event()
    store_ready: asyncio.Future[Store] = asyncio.get_running_loop().create_future()
    async with asyncio.TaskGroup() as tasks:
        simulators = tasks.create_task(
            run_simulators(demo_simulator_settings(), on_started=lambda _a: started.set()),
            name="demo.simulators",
        )
        await started.wait()
        gateway = tasks.create_task(
            run_gateway(config, stop=stop, on_ready=store_ready.set_result), name="demo.gateway"
        )
        view = tasks.create_task(_live_view(store_ready, config, warehouse), name="demo.view")
        timer = None
        if seconds is not None:
            timer = tasks.create_task(_stop_after(stop, seconds), name="demo.timer")
        await gateway
        for task in (view, simulators, timer):
            if task is not None:
                task.cancel()


def _warehouse_count(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    try:
        return int(db.execute("SELECT count(*) FROM records").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()


async def _stop_after(stop: asyncio.Event, seconds: float) -> None:
    await asyncio.sleep(seconds)
    stop.set()


def run_demo(args: argparse.Namespace) -> int:
    """Run the whole demo until Ctrl-C; returns the exit code."""
    path: Path = args.config or Path("config/demo.toml")
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 3
    headless = getattr(args, "headless", False) or args.seconds is not None
    if not headless and sys.stdin.isatty() and sys.stdout.isatty():
        return _run_with_tui(path, config)
    configure_logging(level="warning", fmt="plain")
    print("Lineside demo: simulated checkweigher, probes and label scanner. Ctrl-C stops.")
    asyncio.run(_demo(config, args.seconds))
    print("demo stopped cleanly")
    return 0


BACKEND_STOP_S = 30.0
"""How long the back end may take to stop after the TUI quits (it commits and syncs)."""


def _run_with_tui(path: Path, config: LinesideConfig) -> int:
    """The back end as a child process, the TUI in the foreground; stop both on quit."""
    from tui.app import run_tui  # noqa: PLC0415  (Textual loads only with a terminal)

    log_path = config.store.path.parent / "demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        backend = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
            [sys.executable, "-m", "gateway.cli", "demo", "--headless", "--config", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the terminal's Ctrl-C goes to the TUI, not to it
        )
    try:
        run_tui(config.control_socket_path, title=f"{config.gateway.id} (demo)")
    finally:
        backend.send_signal(signal.SIGINT)
        try:
            code = backend.wait(timeout=BACKEND_STOP_S)
        except subprocess.TimeoutExpired:
            backend.kill()
            code = backend.wait()
    if code != 0:
        print(f"the demo back end exited with {code}; see {log_path}", file=sys.stderr)
        return 1
    print(f"demo stopped cleanly (back end log: {log_path})")
    return 0
