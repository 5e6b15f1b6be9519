"""Every input kind floods one gateway at once, under a memory limit (docs/reference/
reliability.md §7 row 23).

``lineside run`` is a child process with the shipped store defaults and the health
endpoint. Its peers: a TCP label scanner played by this test (reads written as fast as the
socket takes them, every twentieth one garbage), the project's OPC UA simulator writing packs
and probe temperatures as fast as it can (subscribed to by a checkweigher and a probe
device), and the project's Modbus simulator with 120 temperature registers polled every
10 ms by two devices (tests/support/flood_peers.py). Each floods for :data:`FLOOD_S`.

Memory limit: once the gateway runs, before any flood, its address space (VSZ, with
``MALLOC_ARENA_MAX=2`` so thread arenas do not inflate it) and resident size are measured,
and ``RLIMIT_AS`` is set to the VSZ plus the room the systemd unit leaves the process
(``MemoryMax`` minus the resident size). Every resident page is mapped, so a gateway that
needed more than that room would fail to allocate (MemoryError, or no thread) and exit. The
sampled resident size must also stay under the unit's ``MemoryHigh``, where the kernel
would start throttling it.

During the flood ``/healthz`` and the control socket's ``status`` answer every time they are
asked. Afterwards nothing is missing: every read the scanner sent is a stored label scan, a
stored rejected input or counted in a ``records_shed`` event; every stored pack and
temperature carries exactly the value its peer wrote; whatever was shed is counted per device
and kind the same in the store and in the live status, under an ``intake.shed`` alert that
was cleared again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.control import send_command
from gateway.core.records import RecordFlag
from tests.support import flood_peers, modbus_harness, opcua_harness
from tests.support.flood_peers import MODBUS_TAGS, TARE_G
from tests.support.paths import REPO, repo_pythonpath
from tests.support.ports import free_port
from tests.support.processes import reap
from tests.support.running_gateway import answers, http_get
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

FLOOD_S = 30.0
"""How long every input kind floods the gateway (all kinds at once, one gateway)."""

PROBE_EVERY_S = 1.0
"""Pause between two rounds of health, control-socket and memory probes."""

DRAIN_S = 120.0
"""Longest wait for the gateway to catch up after the flood (generous: a loaded machine)."""

MIB = 2**20
UNIT = REPO / "systemd" / "lineside-gateway.service"

VALID = b"]C1010950110153000317261201101234\x1d21000042\r\n"
BAD = b"]C10109501101530004\r\n"  # a bad check digit: a rejected input
CHUNK_VALID, CHUNK_BAD = 950, 50
CHUNK = (VALID * 19 + BAD) * CHUNK_BAD
"""One write of the scanner: 1000 reads, every twentieth garbage."""

MODBUS_DEVICES = ("MB1", "MB2")


def unit_memory(key: str) -> int:
    """``MemoryMax``/``MemoryHigh`` of the gateway's systemd unit, in bytes."""
    match = re.search(rf"^{key}=(\d+)M$", UNIT.read_text(), re.MULTILINE)
    assert match, f"{key} not found in {UNIT}"
    return int(match.group(1)) * MIB


def memory(pid: int) -> tuple[int, int]:
    """(VSZ, RSS) of a process in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    size = re.search(r"^VmSize:\s+(\d+) kB", status, re.MULTILINE)
    rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert size
    assert rss
    return int(size.group(1)) * 1024, int(rss.group(1)) * 1024


def toml(value: Any) -> str:
    """A value as TOML (inline tables and arrays; strings are JSON-escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(toml(v) for v in value) + "]"


def devices_toml(scanner_port: int, opcua_port: int, modbus_port: int) -> str:
    endpoint = f"opc.tcp://127.0.0.1:{opcua_port}/lineside"
    fast = {"publishing_interval_ms": 10, "sampling_interval_ms": 0}  # every write, at once
    models: list[Any] = []
    for build in (opcua_harness.checkweigher, opcua_harness.probes):
        # A watchdog and timeouts that a gateway busy with a flood meets in time.
        device = build(endpoint, watchdog_interval_s=1.0, timeout_s=5.0)
        groups = tuple(g.model_copy(update=fast) for g in device.groups)
        models.append(device.model_copy(update={"groups": groups}))
    tags = [
        {"name": f"T{a}", "table": "input", "address": a, "type": "int16", "scale": 0.1}
        for a in range(MODBUS_TAGS)
    ]
    for name in MODBUS_DEVICES:
        models.append(
            modbus_harness.device(modbus_port, tags, id=name, poll_interval_ms=10, timeout_s=1.0)
        )
    raw = [m.model_dump(mode="json", exclude_defaults=True) for m in models]
    raw.append(
        {
            "id": "scan1",
            "kind": "scanner_tcp",
            "line": "L1",
            "role": "label_scanner",
            "host": "127.0.0.1",
            "port": scanner_port,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.2,
        }
    )
    out = ""
    for device in raw:
        out += "\n[[devices]]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in device.items())
    return out


class ScannerFlood:
    """A TCP label scanner that, once told to, writes reads as fast as the socket takes them.

    ``valid`` and ``bad`` count the reads handed to the socket. The connection is closed
    gracefully (the transport flushes what it buffered first), so every counted read reaches
    the gateway.
    """

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.connected = asyncio.Event()
        self.valid = 0
        self.bad = 0
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self._flood: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ScannerFlood:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writers:  # one gateway, one connection: a reconnect would break the count
            writer.transport.abort()
            return
        self._writers.append(writer)
        self.connected.set()
        await self.go.wait()
        self._flood = asyncio.current_task()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            while True:
                writer.write(CHUNK)
                self.valid += CHUNK_VALID
                self.bad += CHUNK_BAD
                await writer.drain()

    async def stop(self) -> None:
        """Stop writing; close gracefully and wait until everything written is flushed."""
        if self._flood is not None and not self._flood.done():
            self._flood.cancel()
            await asyncio.gather(self._flood, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(writer.wait_closed(), DRAIN_S)
        self._writers.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


@contextlib.contextmanager
def flood_peer(kind: str, port: int) -> Iterator[subprocess.Popen[str]]:
    """``tests/support/flood_peers.py`` as a child: waiting until a line on its stdin."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.flood_peers", kind, str(port)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": repo_pythonpath()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "waiting", f"{kind} peer did not start"
        yield proc
    finally:
        end_peer(proc)


def end_peer(proc: subprocess.Popen[str]) -> None:
    """Close its stdin (it stops flooding and serving) and wait for it to exit."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    reap(proc)


async def start_flood(peer: subprocess.Popen[str]) -> None:
    assert peer.stdin is not None
    assert peer.stdout is not None
    peer.stdin.write("go\n")
    peer.stdin.flush()
    line = await asyncio.to_thread(peer.stdout.readline)
    assert line.strip() == "flooding"


@contextlib.contextmanager
def gateway(config: Path, log: Path) -> Iterator[subprocess.Popen[str]]:
    """``lineside run`` with its output in ``log`` (a pipe nobody reads would block a gateway
    that logs a lot)."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": repo_pythonpath(), "MALLOC_ARENA_MAX": "2"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            text=True,
        )
        try:
            yield proc
        finally:
            reap(proc, timeout=60)


def tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


@pytest.mark.timeout(FLOOD_S + 3 * DRAIN_S)
async def test_a_flood_of_every_input_kind_stays_bounded_and_accounted(tmp_path: Path) -> None:
    memory_max, memory_high = unit_memory("MemoryMax"), unit_memory("MemoryHigh")
    health_port, opcua_port, modbus_port = free_port(), free_port(), free_port()
    db_path, log = tmp_path / "gw.db", tmp_path / "gateway.log"
    control = tmp_path / "control.sock"
    async with ScannerFlood() as scanner:
        config = tmp_path / "gw.toml"
        config.write_text(
            '[gateway]\nid = "gw-flood"\nsite = "test-site"\nshutdown_timeout_s = 30\n'
            f'control_socket = "{control}"\n\n'
            f'[store]\npath = "{db_path}"\n\n[[lines]]\nid = "L1"\n'
            + devices_toml(scanner.port, opcua_port, modbus_port)
            + f'\n[health]\nhost = "127.0.0.1"\nport = {health_port}\n'
        )
        healthz = f"http://127.0.0.1:{health_port}/healthz"
        with (
            flood_peer("opcua", opcua_port) as opcua,
            flood_peer("modbus", modbus_port) as modbus,
        ):
            with gateway(config, log) as proc:
                await wait_for(lambda: answers(healthz, 200), 30, "the gateway's /healthz")
                await asyncio.wait_for(scanner.connected.wait(), 30)
                vsz, rss = memory(proc.pid)
                limit = vsz + (memory_max - rss)
                resource.prlimit(proc.pid, resource.RLIMIT_AS, (limit, limit))

                await start_flood(opcua)
                await start_flood(modbus)
                scanner.go.set()
                peak_rss, peak_pending, rounds = await probe_while_flooding(
                    proc, log, healthz, control
                )
                # The peers go away (every device's link goes down), the gateway catches
                # up, and then it is stopped.
                await scanner.stop()
                end_peer(opcua)
                end_peer(modbus)
                final = await drained(proc, log, control)
                code = reap(proc, timeout=60)
            assert code == 0, f"the gateway did not stop cleanly ({code}):\n{tail(log)}"
    output = log.read_text(errors="replace")
    assert "MemoryError" not in output
    assert "Traceback" not in output, tail(log)
    report = {
        "baseline_vsz_mib": vsz // MIB,
        "baseline_rss_mib": rss // MIB,
        "limit_as_mib": limit // MIB,
        "peak_rss_mib": peak_rss // MIB,
        "peak_pending": peak_pending,
        "probe_rounds": rounds,
        "scanner_sent": scanner.valid + scanner.bad,
        "shed": final["system"]["intake"]["shed"],
        "readings": final["system"]["readings"],
    }
    print("flood:", json.dumps(report))
    assert peak_rss < memory_high, f"resident size {peak_rss // MIB} MiB: {report}"
    check_the_store(db_path, scanner, final)


async def probe_while_flooding(
    proc: subprocess.Popen[str], log: Path, healthz: str, control: Path
) -> tuple[int, int, int]:
    """Ask /healthz and the control socket every :data:`PROBE_EVERY_S` for :data:`FLOOD_S`;
    each must answer. Returns the peak resident size, the most records seen pending and how
    many rounds of probes were answered."""
    loop = asyncio.get_running_loop()
    peak_rss = 0

    async def sample_memory() -> None:
        nonlocal peak_rss
        while True:
            with contextlib.suppress(OSError):
                peak_rss = max(peak_rss, memory(proc.pid)[1])
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample_memory())
    peak_pending = rounds = 0
    deadline = loop.time() + FLOOD_S
    try:
        while loop.time() < deadline:
            assert proc.poll() is None, f"the gateway exited during the flood:\n{tail(log)}"
            response = await http_get(healthz)
            assert response.status_code == 200, response.text
            snapshot = await send_command(control, {"command": "status"})
            assert snapshot["version"] == 1, snapshot
            peak_pending = max(peak_pending, snapshot["system"]["store"]["pending"])
            rounds += 1
            await asyncio.sleep(PROBE_EVERY_S)
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    assert proc.poll() is None, f"the gateway exited during the flood:\n{tail(log)}"
    return peak_rss, peak_pending, rounds


async def drained(proc: subprocess.Popen[str], log: Path, control: Path) -> dict[str, Any]:
    """Wait until every device is down (the scanner's after reading to the end of its stream),
    nothing is pending and nothing is being shed; then the live status."""

    async def caught_up() -> bool:
        assert proc.poll() is None, f"the gateway exited:\n{tail(log)}"
        system = (await send_command(control, {"command": "status"}))["system"]
        quiet = all(d["state"] in ("down", "connecting") for d in system["devices"])
        return quiet and system["store"]["pending"] == 0 and not system["intake"]["shedding"]

    await wait_for(caught_up, DRAIN_S, "the gateway to catch up after the flood", interval=0.5)
    return await send_command(control, {"command": "status"})


def check_the_store(db_path: Path, scanner: ScannerFlood, final: dict[str, Any]) -> None:
    """Every record stored or counted as shed; every stored value the one its peer wrote."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"

        def count(sql: str) -> int:
            return int(db.execute(sql).fetchone()[0])

        shed: dict[str, Counter[str]] = {}
        for device, detail in db.execute(
            "SELECT device, detail FROM device_events WHERE kind = 'records_shed'"
        ):
            event = json.loads(detail)
            assert event["count"] == sum(event["kinds"].values())
            shed.setdefault(device, Counter()).update(event["kinds"])
        assert {d: dict(c) for d, c in shed.items()} == final["system"]["intake"]["shed"]
        if shed:
            states = [
                row[0]
                for row in db.execute(
                    "SELECT state FROM alerts WHERE alert_id = 'intake.shed' ORDER BY seq"
                )
            ]
            assert states[0] == "raised"
            assert states[-1] == "cleared"

        # The scanner: every read sent is a label scan, a rejected input or counted as shed.
        scanner_shed = shed.get("scan1", Counter())
        scans = count("SELECT count(*) FROM label_scans WHERE device = 'scan1'")
        rejected = count("SELECT count(*) FROM rejected_inputs WHERE source = 'scan1'")
        garbage = count(
            "SELECT count(*) FROM rejected_inputs WHERE source = 'scan1' "
            "AND reason = 'gs1_bad_check_digit'"
        )
        assert rejected == garbage, "nothing but the garbage reads is rejected"
        assert scans + scanner_shed["label_scans"] == scanner.valid
        assert rejected + scanner_shed["rejected_inputs"] == scanner.bad

        # The OPC UA checkweigher: each pack with the weights written with its counter.
        packs = db.execute(
            "SELECT pack_counter, net_g, gross_g, tare_g, flags FROM packs WHERE device = 'CW1'"
        ).fetchall()
        assert packs, "the checkweigher's packs reached the store"
        assert len({counter for counter, *_ in packs}) == len(packs), "no pack stored twice"
        for counter, net, gross, tare, flags in packs:
            if flags & RecordFlag.VALUES_UNCERTAIN:
                continue  # flagged: the adapter could not prove the pairing, and says so
            net_g = flood_peers.pack_net_g(counter)
            assert (net, gross, tare) == (net_g, net_g + TARE_G, TARE_G), f"pack {counter}"

        # Temperatures: the OPC UA probes' follow the pack number; a Modbus register holds a
        # fixed value per address.
        per_device: Counter[str] = Counter()
        for device, probe, celsius in db.execute("SELECT device, probe, celsius FROM temperatures"):
            per_device[device] += 1
            if device in MODBUS_DEVICES:
                tenths = flood_peers.register_tenths(int(probe[1:]))
                assert celsius == pytest.approx(tenths / 10), (device, probe, celsius)
            else:
                assert (device, probe[0]) == ("PT", "P"), (device, probe)
                step = round((celsius - 2.0) * 10)
                assert celsius == flood_peers.probe_celsius(step), (probe, celsius)
        assert set(per_device) == {"PT", *MODBUS_DEVICES}, per_device
        # Rejected: only the tags marked bad when the peers went away at the end.
        reasons = {
            reason
            for (reason,) in db.execute(
                "SELECT DISTINCT reason FROM rejected_inputs WHERE source != 'scan1'"
            )
        }
        assert reasons <= {"quality_bad"}, reasons

        # Everything the gateway queued is stored (the live counts are of queued records).
        readings = final["system"]["readings"]
        assert readings.get("label_scan", 0) == count("SELECT count(*) FROM label_scans")
        assert readings.get("pack", 0) == count("SELECT count(*) FROM packs")
        assert readings.get("temperature", 0) == count("SELECT count(*) FROM temperatures")
    finally:
        db.close()
