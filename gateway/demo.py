"""``lineside demo``: simulators, gateway and the operator TUI; everything on this machine.

On a terminal, the demo starts the back end (device simulators, the simulated ERP, the
gateway on ``config/demo.toml`` (or the copy shipped in the package, see
``gateway/demo_config.py``), and a loopback broker with the central ingest when
mosquitto is installed) as a child process logging to ``demo.log`` beside the store, and
opens the operator TUI in the foreground, as an operator would run it beside a real
gateway. However the TUI ends (``q``, Ctrl-C, SIGTERM, a closed terminal, even SIGKILL)
the back end stops with it: it watches a pipe from the TUI (the lifeline) and its broker
dies with it. Each start gets a fresh store (``--keep-store`` keeps the last one) and the
demo's folder is locked, so two demos never share one store.

Headless (``--headless``, ``--seconds``, or output not to a terminal) it runs the back end
in this process and prints a status line a second instead, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from adapters.simulators import SimulatorSettings, run_simulators
from gateway.config import LinesideConfig, MqttSync, SyncSection
from gateway.core.errors import ConfigError, StoreError
from gateway.demo_broker import demo_broker
from gateway.demo_config import demo_config_path, load_demo_config, operator_hint
from gateway.demo_site import DemoAlreadyRunning, DemoLock, point_at_simulators, reset_demo_store
from gateway.logs import configure_logging
from gateway.service import run_gateway
from gateway.store import Store
from sync.broker_auth import INGEST_USER
from sync.ingest import IngestService, IngestSettings
from sync.ingest.ack_keys import AckKeys

log = logging.getLogger(__name__)

DEMO_PORTS = {"opcua": 48400, "modbus": 50200, "scanner": 50300, "erp": 48500}
"""The simulators' ports as ``config/demo.toml`` names them; the demo moves the devices and the
ERP to wherever the simulators actually listen (``gateway/demo_site.py`` says why)."""


ACTIVE_ALERTS = """
SELECT rule, severity, subject FROM alerts a
WHERE state IN ('raised', 'updated') AND seq = (
    SELECT max(seq) FROM alerts b WHERE b.alert_id = a.alert_id
    AND b.state IN ('raised', 'updated', 'cleared'))
ORDER BY seq
"""
"""Alerts whose condition still holds (their newest raise/update/clear is not a clear)."""


async def _live_view(
    store_ready: asyncio.Future[Store],
    config: LinesideConfig,
    warehouse: Path | None,
    stop: asyncio.Event,
    hint: str,
) -> None:
    """A status line per second: what the gateway has recorded so far, until the demo stops."""
    store = await store_ready
    print(f"gateway {config.gateway.id}: recording into {config.store.path}", flush=True)
    if config.sync.mqtt is None:
        print("uplink: not configured (no mosquitto here); records stay buffered in the store")
    else:
        mqtt = config.sync.mqtt
        print(f"uplink: MQTT to 127.0.0.1:{mqtt.port}, central ingest into {warehouse}")
    print(f"alerts: {hint}")
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if stop.is_set():
            return  # the gateway is closing its store: nothing more to read
        try:
            line, active = await _status_line(store, config, warehouse)
        except StoreError:
            return  # the store closed under us: the gateway is stopping
        print(line, flush=True)
        if active:
            listed = ", ".join(
                f"{severity.upper()} {rule} [{subject}]" for rule, severity, subject in active
            )
            print(f"  active alerts: {listed}", flush=True)


async def _status_line(
    store: Store, config: LinesideConfig, warehouse: Path | None
) -> tuple[str, list[tuple[Any, ...]]]:
    counts = {name: (await store.fetchall(sql))[0][0] for name, sql in STATUS_QUERIES.items()}
    last = await store.fetchall(
        "SELECT net_g, coalesce(run_number, 'no run') FROM packs ORDER BY seq DESC LIMIT 1"
    )
    last_pack = f"{last[0][0]:.1f} g, run {last[0][1]}" if last else "-"
    active = await store.fetchall(ACTIVE_ALERTS)
    synced = ""
    if warehouse is not None:
        synced = f"  in the warehouse {await asyncio.to_thread(_warehouse_count, warehouse)}"
    uplink = "" if config.sync.mqtt else " (uplink not configured)"
    line = (
        f"packs {counts['packs']} (last {last_pack})  temperatures {counts['temps']}  "
        f"labels {counts['labels']}  rejected {counts['rejected']}  "
        f"buffered {counts['outbox']}{uplink}{synced}"
    )
    return line, [tuple(row) for row in active]


STATUS_QUERIES = {
    "packs": "SELECT count(*) FROM packs",
    "temps": "SELECT count(*) FROM temperatures",
    "labels": "SELECT count(*) FROM label_scans",
    "rejected": "SELECT count(*) FROM rejected_inputs",
    "events": "SELECT count(*) FROM device_events",
    "outbox": "SELECT count(*) FROM outbox",
}


DEMO_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def _demo(
    config: LinesideConfig, seconds: float | None, *, lifeline: bool, hint: str
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl-C, SIGTERM or a closed terminal (SIGHUP) at any moment stops the demo cleanly;
    # while the gateway runs it handles SIGINT and SIGTERM itself, the same way.
    for sig in DEMO_STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as tasks:
            watcher = None
            if lifeline:
                watcher = tasks.create_task(_watch_lifeline(stop), name="demo.lifeline")
            await _demo_with_broker(config, seconds, stop, hint)
            if watcher is not None:
                watcher.cancel()
    finally:
        for sig in DEMO_STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _watch_lifeline(stop: asyncio.Event) -> None:
    """Stop the demo when standard input reaches its end: the TUI that started this back end
    holds the other end of the pipe, so however the TUI ends (q, Ctrl-C, a closed terminal,
    SIGKILL) the back end stops with it and leaves nothing running."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        while await reader.read(4096):
            pass
    finally:
        transport.close()
    log.info("demo: the TUI has gone; stopping")
    stop.set()


async def _demo_with_broker(
    config: LinesideConfig, seconds: float | None, stop: asyncio.Event, hint: str
) -> None:
    async with demo_broker(config.store.path.parent / "broker", config.gateway.id) as broker:
        if broker is None:
            await _demo_with(config, seconds, None, stop, hint)
            return
        # Sync through a local broker to a local warehouse (the central ingest, SQLite), each
        # with its own login under the shipped ACL (config/mosquitto/).
        port = broker.port
        warehouse = config.store.path.parent / "warehouse.db"
        ingest = IngestService(
            IngestSettings(
                mqtt_host="127.0.0.1",
                mqtt_port=port,
                client_id="lineside-demo-ingest",
                username=INGEST_USER,
                password=broker.passwords[INGEST_USER],
                http_enabled=False,
                sqlite_path=warehouse,
                # Signed acks: the gateway below honours only acks signed with this key.
                ack_keys=AckKeys(keys={config.gateway.id: broker.ack_key}),
            )
        )
        ingest_task = asyncio.create_task(ingest.run(), name="demo.ingest")
        try:
            await asyncio.wait_for(ingest.ready.wait(), 30)
            login = MqttSync(
                host="127.0.0.1",
                port=port,
                username=config.gateway.id,
                password=SecretStr(broker.passwords[config.gateway.id]),
                ack_key=SecretStr(broker.ack_key),
            )
            synced = config.model_copy(update={"sync": SyncSection(mqtt=login)})
            await _demo_with(synced, seconds, warehouse, stop, hint)
        finally:
            ingest_task.cancel()
            await asyncio.gather(ingest_task, return_exceptions=True)


async def _demo_with(
    config: LinesideConfig,
    seconds: float | None,
    warehouse: Path | None,
    stop: asyncio.Event,
    hint: str,
) -> None:
    listening: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    store_ready: asyncio.Future[Store] = asyncio.get_running_loop().create_future()
    async with asyncio.TaskGroup() as tasks:
        # Port 0: the kernel picks free ports, so a port held by something else cannot stop
        # the demo; the config is pointed at them below.
        simulators = tasks.create_task(
            run_simulators(SimulatorSettings(), on_started=listening.set_result),
            name="demo.simulators",
        )
        first: list[asyncio.Future[Any]] = [listening, simulators]
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if simulators.done():
            simulators.result()  # the simulators could not start: say why
        config = point_at_simulators(config, DEMO_PORTS, listening.result())
        gateway = tasks.create_task(
            run_gateway(config, stop=stop, on_ready=store_ready.set_result), name="demo.gateway"
        )
        view = tasks.create_task(
            _live_view(store_ready, config, warehouse, stop, hint), name="demo.view"
        )
        timer = None
        if seconds is not None:
            timer = tasks.create_task(_stop_after(stop, seconds), name="demo.timer")
        await gateway
        stop.set()
        for sig in DEMO_STOP_SIGNALS:  # the gateway removed its own on the way out
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
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
    """Run the whole demo until it is stopped; returns the exit code.

    The demo's folder (beside the store) is locked for as long as any part of the demo runs,
    and its store starts fresh unless ``--keep-store`` is given.
    """
    path = demo_config_path(args.config)
    state_dir: Path | None = getattr(args, "state_dir", None)
    try:
        config = load_demo_config(path, state_dir)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 3
    backend_of_tui = getattr(args, "backend", False)
    lock = None
    if not backend_of_tui:  # the TUI that started this back end holds the lock and reset
        try:
            lock = DemoLock(config.store.path.parent)
        except DemoAlreadyRunning as exc:
            print(f"lineside demo: {exc}", file=sys.stderr)
            return 1
        if not getattr(args, "keep_store", False):
            reset_demo_store(config)
    try:
        headless = getattr(args, "headless", False) or args.seconds is not None
        if lock is not None and not headless and sys.stdin.isatty() and sys.stdout.isatty():
            return _run_with_tui(path, state_dir, config, lock)
        configure_logging(level="warning" if not backend_of_tui else "info", fmt="plain")
        print("Lineside demo: simulated checkweigher, probes and label scanner. Ctrl-C stops.")
        hint = operator_hint(path, config)
        asyncio.run(_demo(config, args.seconds, lifeline=backend_of_tui, hint=hint))
        print("demo stopped cleanly", flush=True)
        return 0
    finally:
        if lock is not None:
            lock.release()


BACKEND_STOP_S = 30.0
"""How long the back end may take to stop after the TUI quits (it commits and syncs)."""
BACKEND_START_S = 60.0
"""How long the back end may take until its control socket answers."""


def _run_with_tui(
    path: Path, state_dir: Path | None, config: LinesideConfig, lock: DemoLock
) -> int:
    """The back end as a child process, the TUI in the foreground; stop both on quit."""
    from tui.app import run_tui  # noqa: PLC0415  (Textual loads only with a terminal)

    log_path = config.store.path.parent / "demo.log"
    print("Lineside demo: starting the simulated line, the gateway and the warehouse ...")
    config_args = ["--config", str(path)]
    if state_dir is not None:
        config_args += ["--state-dir", str(state_dir)]
    with log_path.open("wb") as log_file:  # a fresh log for a fresh demo
        backend = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
            [sys.executable, "-m", "gateway.cli", "demo", "--headless", "--backend", *config_args],
            stdin=subprocess.PIPE,  # the lifeline: the back end stops when it closes
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the terminal's Ctrl-C goes to the TUI, not to it
            pass_fds=(lock.fd,),  # the demo folder stays locked until the back end is gone
        )
    # A closed terminal (SIGHUP) or a SIGTERM while the back end starts ends this process
    # through the `finally` below; once the TUI runs, it handles them as `q`. Were this
    # process killed outright, the lifeline would still stop the back end.
    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, _exit_on_signal)
    try:
        problem = _wait_until_answering(backend, config.control_socket_path, log_path)
        if problem is not None:
            print(problem, file=sys.stderr)
            return 1
        run_tui(config.control_socket_path, title=f"{config.gateway.id} (demo)")
    finally:
        code = _stop_backend(backend)
    if code != 0:
        print(f"the demo back end exited with {code}; see {log_path}", file=sys.stderr)
        return 1
    print(f"demo stopped cleanly (back end log: {log_path})")
    return 0


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _wait_until_answering(
    backend: subprocess.Popen[bytes], control_socket: Path, log_path: Path
) -> str | None:
    """Wait until the back end's control socket accepts a connection; what went wrong if the
    back end ended or did not answer in time (with the end of its log, so the reason is on
    the screen and not only in the file)."""
    deadline = time.monotonic() + BACKEND_START_S
    while time.monotonic() < deadline:
        if backend.poll() is not None:
            return f"the demo back end stopped while starting:\n{_tail(log_path)}"
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
            probe.connect(str(control_socket))
            return None
        threading.Event().wait(0.1)
    return f"the demo back end did not answer within {BACKEND_START_S:.0f} s:\n{_tail(log_path)}"


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join("  " + line for line in text.splitlines()[-lines:])


def _stop_backend(backend: subprocess.Popen[bytes]) -> int:
    """Close the lifeline and wait; a back end that does not stop in time is killed with
    everything it started (its own process group)."""
    if backend.stdin is not None:
        with contextlib.suppress(OSError):
            backend.stdin.close()
    try:
        return backend.wait(timeout=BACKEND_STOP_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(backend.pid, signal.SIGKILL)
        return backend.wait()
