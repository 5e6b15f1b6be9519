"""The soak run: the demo's simulated site under random faults, then the conservation check.

``make soak`` (or ``python -m bench.soak --minutes 30``). Not part of CI.

What runs, all on loopback:

* the simulators (OPC UA checkweigher and probes, Modbus transmitters, TCP label scanner, the
  ERP) in this process, at real time (speed 1) on the ``normal`` scenario;
* a :class:`tests.faultproxy.FaultProxy` in front of each device and in front of the broker;
* mosquitto (persistence on), the central ingest (``lineside ingest``, a child process, into
  SQLite or, with ``--postgres-dsn``, a fresh PostgreSQL database ``lineside_soak``);
* the gateway: ``lineside run`` on ``config/demo.toml`` (pointed at the proxies), a child
  process with its own store in the work folder.

Every ``--gap-min``..``--gap-max`` seconds one fault is drawn at random and lasts a random
while: the broker hung (SIGSTOP/SIGCONT) or crashed (SIGKILL, restart), the broker's route
black-holed, the gateway SIGKILLed and restarted, a device's route black-holed (half-open) or
reset, the ingest SIGKILLed and restarted. Meanwhile the gateway's RSS and open file
descriptors are sampled every ``--sample-s`` seconds.

At the end everything is healed, the simulators stop, the gateway drains its outbox and stops
on SIGTERM, what it recorded while stopping is delivered by an in-process uplink, and the
gateway's store is compared with the warehouse: records produced (committed at the edge),
delivered, lost (committed and not in the warehouse: must be 0), invented (in the warehouse
and never committed: must be 0), stored twice, sequence conflicts; duplicates on the wire are
counted from the ingest's log. The report goes to ``bench/results/soak-latest.md`` and
``.json``; the exit status is 0 when nothing was lost or invented and memory and descriptors
stayed flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adapters.simulators import SimulatorSettings, run_simulators
from adapters.simulators.scenario import ScenarioName
from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.store import Store
from gateway.store.schema import RECORD_STREAMS
from sync.mqtt_uplink import MqttUplink
from tests.support.faultproxy import FaultProxy
from tests.support.mosquitto import Mosquitto

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
GATEWAY_ID = "demo-gw1"
SITE = "demo-site"
SOAK_DB = "lineside_soak"
DUPLICATES = re.compile(r": (\d+) duplicate record\(s\) already stored")

DEVICES = ("opcua", "modbus", "scanner")
WARM_UP_S = 60.0
"""Samples before this much uptime of the first gateway process are not the "start" figure."""
RSS_GROWTH_LIMIT_MB = 16.0
FD_GROWTH_LIMIT = 4


def log(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[soak {stamp}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------ processes


class Child:
    """A child process whose output goes to a log file; restartable."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            out.write(f"---- start {self.starts + 1} at {time.time():.3f}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    async def wait(self, within: float) -> int | None:
        deadline = time.monotonic() + within
        while self.proc is not None and self.proc.poll() is None:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)
        return None if self.proc is None else self.proc.returncode

    async def kill(self) -> None:
        self.send(signal.SIGKILL)
        await self.wait(10)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, within: float = 20) -> int | None:
        self.send(sig)
        code = await self.wait(within)
        if code is None and self.alive:
            await self.kill()
        return code


class GatewayChild(Child):
    """``lineside run``, with READY=1 read from a NOTIFY_SOCKET."""

    def __init__(self, config: Path, log_path: Path) -> None:
        name = f"lineside-soak-{os.getpid()}"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.listener.bind("\0" + name)
        self.listener.setblocking(False)
        env = {**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": "@" + name}
        super().__init__(
            "gateway",
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
            log_path,
            env,
        )
        self.started_at = 0.0

    def _drain_notifications(self) -> bool:
        ready = False
        with contextlib.suppress(BlockingIOError):
            while True:
                ready |= self.listener.recv(4096).startswith(b"READY=1")
        return ready

    async def start_ready(self, within: float = 60) -> None:
        self._drain_notifications()
        self.start()
        self.started_at = time.monotonic()
        deadline = time.monotonic() + within
        while not self._drain_notifications():
            if not self.alive:
                raise RuntimeError(f"the gateway exited at start; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway was not READY in {within} s")
            await asyncio.sleep(0.05)


async def until(condition: Callable[[], bool], within: float) -> str:
    """Poll ``condition`` every second for at most ``within`` s; say how it ended."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return f"not within {within:.0f} s"
        await asyncio.sleep(1)
    return "done"


def proc_sample(pid: int) -> tuple[int, int] | None:
    """(RSS in kB, open file descriptors) of a process, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return (int(found.group(1)) if found else 0), fds


def outbox_depth(db_path: Path) -> int | None:
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return None
    try:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        db.close()


# ------------------------------------------------------------------------ the run


@dataclass
class Sample:
    t_s: float
    run: int
    pid: int
    uptime_s: float
    rss_kb: int
    fds: int
    outbox: int | None


@dataclass
class Fault:
    t_s: float
    kind: str
    target: str
    duration_s: float
    note: str = ""


@dataclass
class Soak:
    """Everything one soak run owns."""

    args: argparse.Namespace
    work: Path
    rng: random.Random
    t0: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    gateway_runs: list[dict[str, Any]] = field(default_factory=list)
    proxies: dict[str, FaultProxy] = field(default_factory=dict)
    broker: Mosquitto | None = None
    ingest: Child | None = None
    gateway: GatewayChild | None = None
    broker_stopped: bool = False
    bag: list[tuple[str, str]] = field(default_factory=list)
    warehouse_dsn: str | None = None

    @property
    def db_path(self) -> Path:
        return self.work / "gw" / "lineside.db"

    @property
    def warehouse_path(self) -> Path:
        return self.work / "warehouse.db"

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    # ---------------------------------------------------------------- set-up

    def gateway_config(self, addresses: dict[str, str]) -> str:
        def port(address: str) -> int:
            found = re.search(r":(\d+)(?:/|$)", address)
            assert found, address
            return int(found.group(1))

        opcua, modbus, scanner = (
            self.proxies["opcua"].port,
            self.proxies["modbus"].port,
            self.proxies["scanner"].port,
        )
        text = (
            (REPO / "config" / "demo.toml")
            .read_text()
            .replace("opc.tcp://127.0.0.1:48400/lineside", f"opc.tcp://127.0.0.1:{opcua}/lineside")
            .replace("port = 50200", f"port = {modbus}")
            .replace("port = 50300", f"port = {scanner}")
            .replace("127.0.0.1:48500", f"127.0.0.1:{port(addresses['erp'])}")
            .replace('path = "../var/demo/lineside.db"', f'path = "{self.db_path}"')
            .replace('log_level = "info"', 'log_level = "warning"')
        )
        assert f'path = "{self.db_path}"' in text
        mqtt = self.proxies["mqtt"].port
        return text + f'\n[sync.mqtt]\nhost = "127.0.0.1"\nport = {mqtt}\n'

    def ingest_child(self) -> Child:
        assert self.broker is not None
        argv = [
            sys.executable,
            "-m",
            "gateway.cli",
            "ingest",
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            str(self.broker.port),
            "--client-id",
            "lineside-soak-ingest",
            "--http-port",
            str(free_port()),
            "--log-level",
            "info",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        if self.warehouse_dsn is not None:
            argv += ["--postgres-dsn-env", "LINESIDE_SOAK_DSN"]
            env["LINESIDE_SOAK_DSN"] = self.warehouse_dsn
        else:
            argv += ["--sqlite", str(self.warehouse_path)]
        return Child("ingest", argv, self.work / "ingest.log", env)

    def prepare_postgres(self, admin_dsn: str) -> str:
        import psycopg  # noqa: PLC0415
        from psycopg.conninfo import make_conninfo  # noqa: PLC0415

        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SOAK_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {SOAK_DB}")
        return make_conninfo(admin_dsn, dbname=SOAK_DB)

    # ---------------------------------------------------------------- sampling

    async def sample_loop(self) -> None:
        while True:
            gateway = self.gateway
            if gateway is not None and gateway.alive:
                found = await asyncio.to_thread(proc_sample, gateway.pid)
                depth = await asyncio.to_thread(outbox_depth, self.db_path)
                if found is not None:
                    rss, fds = found
                    self.samples.append(
                        Sample(
                            self.now(),
                            gateway.starts,
                            gateway.pid,
                            round(time.monotonic() - gateway.started_at, 1),
                            rss,
                            fds,
                            depth,
                        )
                    )
            await asyncio.sleep(self.args.sample_s)

    # ---------------------------------------------------------------- faults

    async def start_gateway(self) -> None:
        assert self.gateway is not None
        await self.gateway.start_ready()
        self.gateway_runs.append(
            {"run": self.gateway.starts, "pid": self.gateway.pid, "started_s": self.now()}
        )

    def end_gateway_run(self, how: str) -> None:
        if self.gateway_runs:
            self.gateway_runs[-1].update(ended_s=self.now(), ended_by=how)

    async def hold(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def fault_broker_hang(self, seconds: float) -> str:
        assert self.broker is not None
        assert self.broker._process is not None
        self.broker._process.send_signal(signal.SIGSTOP)
        self.broker_stopped = True
        try:
            await self.hold(seconds)
        finally:
            self.broker._process.send_signal(signal.SIGCONT)
            self.broker_stopped = False
        return "SIGSTOP, then SIGCONT"

    async def fault_broker_crash(self, seconds: float) -> str:
        assert self.broker is not None
        await asyncio.to_thread(self.broker.kill)
        await self.hold(seconds)
        await asyncio.to_thread(self.broker.start)
        return "SIGKILL, restarted on the same port (persistence on)"

    async def fault_broker_blackhole(self, seconds: float) -> str:
        proxy = self.proxies["mqtt"]
        proxy.blackhole()
        await self.hold(seconds)
        proxy.pass_through()
        return "gateway-broker route black-holed"

    async def fault_gateway_kill(self, seconds: float) -> str:
        assert self.gateway is not None
        await self.gateway.kill()
        self.end_gateway_run("SIGKILL")
        await self.hold(seconds)
        await self.start_gateway()
        return "SIGKILL, restarted"

    async def fault_ingest_kill(self, seconds: float) -> str:
        assert self.ingest is not None
        await self.ingest.kill()
        await self.hold(seconds)
        self.ingest.start()
        return "SIGKILL, restarted"

    async def fault_device(self, seconds: float, target: str, mode: str) -> str:
        proxy = self.proxies[target]
        if mode == "blackhole":
            proxy.blackhole()
        else:
            proxy.reset()
        await self.hold(seconds)
        if mode == "blackhole":
            # The device "comes back" without the old connection's state: RST what hung.
            proxy.reset_connections()
        proxy.pass_through()
        return f"{mode} on the {target} route"

    def next_fault(self) -> tuple[str, str]:
        """(kind, target) from a shuffled bag holding every fault, so all of them happen."""
        if not self.bag:
            self.bag = [
                ("broker_hang", "broker"),
                ("broker_crash", "broker"),
                ("broker_route_blackhole", "broker"),
                ("gateway_sigkill", "gateway"),
                ("gateway_sigkill", "gateway"),
                ("ingest_sigkill", "ingest"),
                *(("device_blackhole", d) for d in DEVICES),
                *(("device_reset", d) for d in DEVICES),
            ]
            self.rng.shuffle(self.bag)
        return self.bag.pop()

    async def one_fault(self) -> None:
        kind, target = self.next_fault()
        long = kind in ("broker_hang", "broker_route_blackhole", "device_blackhole")
        duration = self.rng.uniform(10, 45) if long else self.rng.uniform(2, 10)
        actions: dict[str, Callable[[], Any]] = {
            "broker_hang": lambda: self.fault_broker_hang(duration),
            "broker_crash": lambda: self.fault_broker_crash(duration),
            "broker_route_blackhole": lambda: self.fault_broker_blackhole(duration),
            "gateway_sigkill": lambda: self.fault_gateway_kill(duration),
            "ingest_sigkill": lambda: self.fault_ingest_kill(duration),
            "device_blackhole": lambda: self.fault_device(duration, target, "blackhole"),
            "device_reset": lambda: self.fault_device(duration, target, "reset"),
        }
        started = self.now()
        log(f"fault {len(self.faults) + 1}: {kind} ({target}) for {duration:.1f} s")
        note = await actions[kind]()
        self.faults.append(Fault(started, kind, target, round(duration, 1), note))

    async def fault_loop(self, until: float) -> None:
        while True:
            gap = self.rng.uniform(self.args.gap_min, self.args.gap_max)
            if time.monotonic() + gap >= until:
                await asyncio.sleep(max(0.0, until - time.monotonic()))
                return
            await asyncio.sleep(gap)
            await self.one_fault()
            assert self.gateway is not None
            if not self.gateway.alive:
                # It is never supposed to die by itself: record it, restart it, go on.
                code = self.gateway.proc.returncode if self.gateway.proc else None
                log(f"the gateway exited by itself ({code}); restarting")
                self.end_gateway_run(f"exited by itself ({code})")
                await self.start_gateway()

    # ---------------------------------------------------------------- the end

    async def drain(self) -> None:
        """Deliver what the stopped gateway committed after its uplink stopped."""
        assert self.broker is not None
        store = Store(StoreSection(path=self.db_path, commit_interval_ms=50), SystemClock())
        await store.open()
        committer = asyncio.create_task(store.run_committer())
        uplink = MqttUplink(
            store,
            host=self.broker.host,
            port=self.broker.port,
            site=SITE,
            gateway=GATEWAY_ID,
            ack_timeout_s=2.0,
            poll_interval_s=0.1,
        )
        running = asyncio.create_task(uplink.run())
        try:
            deadline = time.monotonic() + 120
            while True:
                rows = await store.fetchall("SELECT count(*) FROM outbox")
                if int(rows[0][0]) == 0:
                    break
                if time.monotonic() > deadline:
                    log(f"the final drain left {rows[0][0]} records in the outbox")
                    break
                await asyncio.sleep(0.2)
        finally:
            await uplink.stop()
            await asyncio.wait_for(running, 20)
            await store.stop_committer()
            await committer
            await store.close()

    def warehouse_rows(self) -> tuple[dict[int, tuple[str, int]], int]:
        """{seq: (stream, copies)} for the gateway, and the number of conflicts."""
        if self.warehouse_dsn is not None:
            import psycopg  # noqa: PLC0415

            with psycopg.connect(self.warehouse_dsn) as conn:
                rows = conn.execute(
                    "SELECT seq, min(stream), count(*) FROM records WHERE gateway = %s "
                    "GROUP BY seq",
                    (GATEWAY_ID,),
                ).fetchall()
                conflicts = conn.execute("SELECT count(*) FROM conflicts").fetchone()
        else:
            db = sqlite3.connect(f"file:{self.warehouse_path}?mode=ro", uri=True)
            try:
                rows = db.execute(
                    "SELECT seq, min(stream), count(*) FROM records WHERE gateway = ? GROUP BY seq",
                    (GATEWAY_ID,),
                ).fetchall()
                conflicts = db.execute("SELECT count(*) FROM conflicts").fetchone()
            finally:
                db.close()
        return {int(s): (str(st), int(n)) for s, st, n in rows}, int(
            conflicts[0] if conflicts else 0
        )

    def edge_rows(self) -> tuple[dict[int, str], int, int, str, dict[str, int]]:
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            committed: dict[int, str] = {}
            per_stream: dict[str, int] = {}
            for stream in RECORD_STREAMS:
                seqs = [int(s) for (s,) in db.execute(f"SELECT seq FROM {stream}")]
                per_stream[stream] = len(seqs)
                for seq in seqs:
                    committed[seq] = stream
            left = int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
            has_quarantine = db.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'outbox_quarantine'"
            ).fetchone()[0]
            quarantined = (
                int(db.execute("SELECT count(*) FROM outbox_quarantine").fetchone()[0])
                if has_quarantine
                else 0
            )
            integrity = str(db.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            db.close()
        return committed, left, quarantined, integrity, per_stream

    def duplicates_on_wire(self) -> int:
        try:
            text = (self.work / "ingest.log").read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return sum(int(n) for n in DUPLICATES.findall(text))


def memory_summary(samples: list[Sample], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Start/end figures and per-process growth after warm-up."""
    warm = [s for s in samples if s.uptime_s >= WARM_UP_S]
    if not warm:
        return {"samples": len(samples)}
    start, end = warm[0], warm[-1]
    per_run = []
    for run in runs:
        mine = [s for s in warm if s.run == run["run"]]
        if len(mine) < 2:
            continue
        rss = [s.rss_kb for s in mine]
        fds = [s.fds for s in mine]
        # Compare the first and last fifth, medians: one sample taken mid-reconnect is noise.
        k = max(1, len(mine) // 5)
        per_run.append(
            {
                "run": run["run"],
                "pid": run["pid"],
                "samples": len(mine),
                "uptime_s": [mine[0].uptime_s, mine[-1].uptime_s],
                "rss_mb_first_last": [round(rss[0] / 1024, 1), round(rss[-1] / 1024, 1)],
                "rss_mb_growth": round(
                    (statistics.median(rss[-k:]) - statistics.median(rss[:k])) / 1024, 1
                ),
                "rss_mb_growth_second_half": round(
                    (statistics.median(rss[-k:]) - statistics.median(rss[len(rss) // 2 :][:k]))
                    / 1024,
                    1,
                ),
                "rss_mb_max": round(max(rss) / 1024, 1),
                "fds_first_last": [fds[0], fds[-1]],
                "fds_growth": statistics.median(fds[-k:]) - statistics.median(fds[:k]),
                "fds_max": max(fds),
            }
        )
    longest = max(per_run, key=lambda r: r["uptime_s"][1] - r["uptime_s"][0], default=None)
    return {
        "rss_mb_start": round(start.rss_kb / 1024, 1),
        "rss_mb_end": round(end.rss_kb / 1024, 1),
        "fds_start": start.fds,
        "fds_end": end.fds,
        "start_sample": asdict(start),
        "end_sample": asdict(end),
        "per_run": per_run,
        "longest_run": longest,
        "flat_memory": bool(
            end.rss_kb - start.rss_kb <= RSS_GROWTH_LIMIT_MB * 1024
            and all(r["rss_mb_growth"] <= RSS_GROWTH_LIMIT_MB for r in per_run)
        ),
        "flat_fds": bool(
            end.fds - start.fds <= FD_GROWTH_LIMIT
            and all(r["fds_growth"] <= FD_GROWTH_LIMIT for r in per_run)
        ),
    }


async def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="lineside-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "gw").mkdir(exist_ok=True)
    soak = Soak(args, work, random.Random(args.seed))
    log(f"work folder {work}; {args.minutes} min, faults every {args.gap_min}-{args.gap_max} s")
    if args.postgres_dsn:
        soak.warehouse_dsn = soak.prepare_postgres(args.postgres_dsn)

    addresses: dict[str, str] = {}
    started = asyncio.Event()

    def on_started(found: dict[str, str]) -> None:
        addresses.update(found)
        started.set()

    simulators = asyncio.create_task(
        run_simulators(
            SimulatorSettings(
                seed=args.seed,
                scenario=ScenarioName(args.scenario),
                speed=1.0,
                pack_rate_hz=args.pack_rate_hz,
            ),
            on_started=on_started,
        )
    )
    sampler: asyncio.Task[None] | None = None
    result: dict[str, Any] = {}
    try:
        await asyncio.wait_for(started.wait(), 60)

        def device_port(address: str) -> int:
            return int(re.search(r":(\d+)(?:/|$)", address).group(1))  # type: ignore[union-attr]

        for name in ("opcua", "modbus", "scanner"):
            soak.proxies[name] = FaultProxy(device_port(addresses[name]))
            await soak.proxies[name].start()
        soak.broker = Mosquitto(work / "broker", persistence=True)
        await asyncio.to_thread(soak.broker.start)
        soak.proxies["mqtt"] = FaultProxy(soak.broker.port)
        await soak.proxies["mqtt"].start()
        soak.ingest = soak.ingest_child()
        soak.ingest.start()
        config = work / "gw.toml"
        config.write_text(soak.gateway_config(addresses))
        soak.gateway = GatewayChild(config, work / "gateway.log")
        await soak.start_gateway()
        sampler = asyncio.create_task(soak.sample_loop())
        log(f"running: gateway pid {soak.gateway.pid}, broker port {soak.broker.port}")

        end_at = time.monotonic() + args.minutes * 60
        await soak.fault_loop(end_at)

        log("time is up: healing, stopping the devices, draining")
        for proxy in soak.proxies.values():
            proxy.pass_through()
        if not soak.broker.running:
            await asyncio.to_thread(soak.broker.start)
        if not soak.ingest.alive:
            soak.ingest.start()
        if not soak.gateway.alive:
            soak.end_gateway_run("exited by itself")
            await soak.start_gateway()
        final = proc_sample(soak.gateway.pid)
        simulators.cancel()
        await asyncio.gather(simulators, return_exceptions=True)
        # The devices are gone: link_down events are recorded; let the outbox empty.
        await asyncio.sleep(5)
        depth = await until(lambda: outbox_depth(soak.db_path) == 0, 300)
        log(f"outbox after the drain wait: {outbox_depth(soak.db_path)} ({depth})")
        code = await soak.gateway.stop(signal.SIGTERM)
        soak.end_gateway_run(f"SIGTERM (exit {code})")
        sampler.cancel()
        await soak.drain()
        await soak.ingest.stop(signal.SIGINT)

        committed, left, quarantined, integrity, per_stream = soak.edge_rows()
        warehouse, conflicts = soak.warehouse_rows()
        lost = sorted(set(committed) - set(warehouse))
        invented = sorted(set(warehouse) - set(committed))
        twice = sorted(s for s, (_, n) in warehouse.items() if n != 1)
        wrong_stream = sorted(
            s for s, st in committed.items() if s in warehouse and warehouse[s][0] != st
        )
        memory = memory_summary(soak.samples, soak.gateway_runs)
        if final is not None:
            memory["final_sample_before_stop"] = {
                "rss_mb": round(final[0] / 1024, 1),
                "fds": final[1],
            }
        result = {
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": "python -m bench.soak " + " ".join(sys.argv[1:]),
            "minutes": args.minutes,
            "seed": args.seed,
            "scenario": args.scenario,
            "pack_rate_hz": args.pack_rate_hz,
            "warehouse": "postgresql" if soak.warehouse_dsn else "sqlite",
            "host": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}",
            "records_produced": len(committed),
            "records_per_stream": per_stream,
            "delivered": len(set(committed) & set(warehouse)),
            "warehouse_rows": len(warehouse),
            "duplicates_on_wire": soak.duplicates_on_wire(),
            "lost": len(lost),
            "lost_first": lost[:20],
            "invented": len(invented),
            "stored_twice": len(twice),
            "wrong_stream": len(wrong_stream),
            "conflicts": conflicts,
            "outbox_left": left,
            "outbox_quarantined": quarantined,
            "edge_integrity": integrity,
            "gateway_starts": soak.gateway.starts,
            "ingest_starts": soak.ingest.starts,
            "gateway_runs": soak.gateway_runs,
            "faults": [asdict(f) for f in soak.faults],
            "memory": memory,
            "proxy_stats": {name: asdict(p.stats) for name, p in soak.proxies.items()},
            "max_outbox_depth": max((s.outbox or 0 for s in soak.samples), default=0),
            "work_folder": str(work),
        }
        result["passed"] = bool(
            result["lost"] == 0
            and result["invented"] == 0
            and result["stored_twice"] == 0
            and result["conflicts"] == 0
            and result["outbox_left"] == 0
            and result["outbox_quarantined"] == 0
            and integrity == "ok"
            and memory.get("flat_memory")
            and memory.get("flat_fds")
        )
        result["samples"] = [asdict(s) for s in soak.samples]
    finally:
        if sampler is not None:
            sampler.cancel()
        simulators.cancel()
        await asyncio.gather(simulators, return_exceptions=True)
        for child in (soak.gateway, soak.ingest):
            if child is not None and child.alive:
                await child.kill()
        if soak.gateway is not None:
            soak.gateway.listener.close()
        for proxy in soak.proxies.values():
            await proxy.close()
        if soak.broker is not None:
            if soak.broker._process is not None:
                with contextlib.suppress(ProcessLookupError):
                    soak.broker._process.send_signal(signal.SIGCONT)
            await asyncio.to_thread(soak.broker.kill)
    if not args.keep and result.get("passed"):
        shutil.rmtree(work, ignore_errors=True)
        result["work_folder"] += " (removed)"
    return result


def markdown(result: dict[str, Any]) -> str:
    memory = result["memory"]
    fault_counts: dict[str, int] = {}
    for fault in result["faults"]:
        fault_counts[fault["kind"]] = fault_counts.get(fault["kind"], 0) + 1
    lines = [
        f"# Soak run: {result['minutes']} min under random faults",
        "",
        f"`{result['command']}`, {result['started']}, {result['host']}; scenario "
        f"`{result['scenario']}` at real time, {result['pack_rate_hz']} packs/s; warehouse "
        f"{result['warehouse']}. **{'PASSED' if result['passed'] else 'FAILED'}**.",
        "",
        "## Records (conservation invariant)",
        "",
        "| | |",
        "|---|---|",
        f"| records produced (committed at the edge) | {result['records_produced']} |",
        f"| delivered (in the warehouse, once) | {result['delivered']} |",
        f"| duplicates on the wire (deduplicated by the ingest) | {result['duplicates_on_wire']} |",
        f"| **lost** (committed, not in the warehouse) | **{result['lost']}** |",
        f"| invented (in the warehouse, never committed) | {result['invented']} |",
        f"| stored twice / under another stream | {result['stored_twice']} / "
        f"{result['wrong_stream']} |",
        f"| sequence conflicts (same seq, other content) | {result['conflicts']} |",
        f"| left in the outbox / quarantined | {result['outbox_left']} / "
        f"{result['outbox_quarantined']} |",
        f"| edge store integrity_check | {result['edge_integrity']} |",
        f"| largest outbox backlog seen | {result['max_outbox_depth']} |",
        "",
        "Per stream: "
        + ", ".join(f"{k} {v}" for k, v in result["records_per_stream"].items() if v),
        "",
        "## Gateway process: memory and file descriptors",
        "",
        f"{result['gateway_starts']} gateway processes (restarts are faults: "
        f"{sum(1 for f in result['faults'] if f['kind'] == 'gateway_sigkill')} SIGKILLs). "
        f"Samples after {WARM_UP_S:.0f} s of uptime.",
        "",
        "| | start | end |",
        "|---|---|---|",
        f"| RSS (MB) | {memory.get('rss_mb_start')} | {memory.get('rss_mb_end')} |",
        f"| open file descriptors | {memory.get('fds_start')} | {memory.get('fds_end')} |",
        "",
        f"Flat memory: {memory.get('flat_memory')}; flat descriptors: {memory.get('flat_fds')} "
        f"(limits: +{RSS_GROWTH_LIMIT_MB:.0f} MB RSS, +{FD_GROWTH_LIMIT} descriptors, start to "
        "end and within each process, medians of the first and last fifth of its samples).",
        "",
        "| process | pid | uptime sampled (s) | RSS first → last (MB) | RSS growth (MB) | "
        "of which in the second half | RSS max | FDs first → last | FD growth |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in memory.get("per_run", []):
        lines.append(
            f"| {run['run']} | {run['pid']} | {run['uptime_s'][0]:.0f}–{run['uptime_s'][1]:.0f} | "
            f"{run['rss_mb_first_last'][0]} → {run['rss_mb_first_last'][1]} | "
            f"{run['rss_mb_growth']} | {run['rss_mb_growth_second_half']} | {run['rss_mb_max']} | "
            f"{run['fds_first_last'][0]} → {run['fds_first_last'][1]} | {run['fds_growth']} |"
        )
    longest = memory.get("longest_run")
    if longest is not None:
        trail = [x for x in result["samples"] if x["run"] == longest["run"]]
        marks, next_mark = [], 0.0
        for x in trail:
            if x["uptime_s"] >= next_mark:
                marks.append(f"{x['uptime_s'] / 60:.0f} min {x['rss_kb'] / 1024:.1f}")
                next_mark = x["uptime_s"] + 300
        lines += ["", f"RSS (MB) of process {longest['run']} by uptime: " + ", ".join(marks) + "."]
    lines += [
        "",
        "## Faults",
        "",
        ", ".join(f"{k} × {v}" for k, v in sorted(fault_counts.items())),
        "",
        "| t (s) | fault | target | lasted (s) | what |",
        "|---|---|---|---|---|",
    ]
    for fault in result["faults"]:
        lines.append(
            f"| {fault['t_s']:.0f} | {fault['kind']} | {fault['target']} | "
            f"{fault['duration_s']} | {fault['note']} |"
        )
    lines += [
        "",
        "Proxy counters: "
        + "; ".join(
            f"{name}: {s['connections']} connections, {s['resets']} resets"
            for name, s in result["proxy_stats"].items()
        ),
        "",
        "The samples (every RSS/FD/outbox reading) are in `soak-latest.json`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument(
        "--gap-min", type=float, default=60.0, help="shortest gap between faults (s)"
    )
    parser.add_argument(
        "--gap-max", type=float, default=150.0, help="longest gap between faults (s)"
    )
    parser.add_argument("--seed", type=int, default=1, help="fault schedule and simulator seed")
    parser.add_argument("--scenario", default="normal", help="simulator scenario")
    parser.add_argument("--pack-rate-hz", type=float, default=2.0, help="packs per second")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS/FD sampling interval")
    parser.add_argument(
        "--postgres-dsn", default=None, help="PostgreSQL to hold the warehouse (else SQLite)"
    )
    parser.add_argument("--workdir", default=None, help="work folder (default: a new temporary)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder after a pass")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the report goes")
    parser.add_argument("--name", default="soak-latest", help="report file name (no suffix)")
    args = parser.parse_args(argv)
    result = asyncio.run(run_soak(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(result))
    log(
        f"produced {result['records_produced']}, delivered {result['delivered']}, "
        f"lost {result['lost']}, duplicates on the wire {result['duplicates_on_wire']}: "
        f"{'PASSED' if result['passed'] else 'FAILED'}; report {args.out / args.name}.md"
    )
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
