"""Disk full on the state directory (docs/reference/reliability.md §7 row 6, case ii: another
process fills the file system).

The gateway (``lineside run``, fed by the simulators, syncing to a real mosquitto and the
ingest) runs in its own mount namespace (``unshare -m``) with its state directory on a small
tmpfs mounted there, so the test needs root and ``unshare``/``mount``; without them it fails
(it does not skip). The test reaches the gateway's files through ``/proc/<pid>/root`` and
fills the tmpfs to the last byte with a filler file, then deletes it.

Expected: the store goes to its degraded mode (state ``full``: records wait in memory and
commits are retried with backoff) while the process stays up and keeps answering; the
"edge storage full" alert is stored and reaches the warehouse; when the space returns the
waiting records are committed, the alert clears, and every committed record reaches the
warehouse exactly once. The same process runs from start to end (no crash loop) and stops
cleanly. (The database hitting its own size cap, case i, is covered by
``tests/test_store_budget.py``.)

Then each uplink on its own: when the store cannot delete what the warehouse acknowledged
(the outbox seam reports the full disk), it backs off and sends again later instead of
failing, and the warehouse stores each record once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.simulators import SimulatorSettings, run_simulators
from gateway.config import StoreSection
from gateway.core.backoff import Backoff
from gateway.core.clock import SystemClock
from gateway.core.errors import StoreFullError
from gateway.core.records import PackEvent
from gateway.store import Store
from gateway.store.eviction import ALERT_ID
from gateway.store.schema import RECORD_STREAMS
from sync.https_uplink import HttpsUplink
from sync.ingest import IngestService, IngestSettings
from sync.ingest.http_app import INGEST_PATH
from sync.mqtt_uplink import MqttUplink
from sync.outbox import Outbox
from tests.support.gateway_tokens import token_for, tokens
from tests.support.mosquitto import Mosquitto
from tests.support.paths import REPO, repo_pythonpath
from tests.support.ports import free_port
from tests.support.running_gateway import health_toml, http_get
from tests.support.sync_harness import demo_config, ingest_settings, start_ingest, stop_task
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

TMPFS_MB = 8


class NamespacedGateway:
    """``lineside run`` in a private mount namespace with a tmpfs on ``state``."""

    def __init__(self, config: Path, state: Path, log: Path) -> None:
        for tool in ("unshare", "mount", "nsenter"):
            assert shutil.which(tool), f"{tool} is needed to make a small file system"
        assert os.geteuid() == 0, "mounting a tmpfs in a mount namespace needs root"
        name = f"lineside-disk-{os.getpid()}"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.listener.bind("\0" + name)
        self.listener.setblocking(False)
        self.state = state
        self.log = log
        script = f'mount -t tmpfs -o size={TMPFS_MB}m lineside-test "{state}" && exec "$@"'
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"),
                    *(sys.executable, "-m", "gateway.cli", "run", "--config", str(config)),
                ],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": repo_pythonpath(), "NOTIFY_SOCKET": "@" + name},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )

    def inside(self, path: Path) -> Path:
        """``path`` as the gateway sees it (in its mount namespace)."""
        return Path(f"/proc/{self.proc.pid}/root") / path.relative_to("/")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the gateway exited with {self.proc.returncode}:\n{self.tail()}")
        with contextlib.suppress(BlockingIOError):
            while True:
                if self.listener.recv(4096).startswith(b"READY=1"):
                    return True
        return False

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.listener.close()


QUERY = """
import json, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
print(json.dumps(db.execute(sys.argv[2], sys.argv[3:]).fetchall()))
"""


def query(pid: int, db_path: Path, sql: str, *args: str) -> list[list[Any]]:
    """Rows of a read-only query on a database in ``pid``'s mount namespace.

    SQLite resolves symbolic links in file names, so ``/proc/<pid>/root/...`` would lead it
    back to this namespace; the query runs in the gateway's namespace instead (nsenter).
    """
    enter = ["nsenter", "--target", str(pid), "--mount"]
    found = subprocess.run(
        [*enter, sys.executable, "-c", QUERY, str(db_path), sql, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    rows: list[list[Any]] = json.loads(found.stdout)
    return rows


@contextlib.contextmanager
def read_only(db_path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        yield db
    finally:
        db.close()


def fill(directory: Path) -> int:
    """Write a filler file until the file system is full to the last byte; its size."""
    written = 0
    with (directory / "filler").open("wb", buffering=0) as filler:
        for chunk in (1 << 20, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    written += filler.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    assert shutil.disk_usage(directory).free == 0
    return written


async def readyz(port: int) -> dict[str, Any]:
    response = await http_get(f"http://127.0.0.1:{port}/readyz")
    body: dict[str, Any] = response.json()
    body["status"] = response.status_code
    return body


async def store_check(port: int) -> dict[str, Any]:
    try:
        body = await readyz(port)
    except httpx.HTTPError:
        return {}
    store: dict[str, Any] = body["checks"]["store"]
    return store


async def test_full_state_directory_degrades_alerts_and_recovers_without_a_restart(
    tmp_path: Path, broker: Mosquitto
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db_path = state / "lineside.db"
    warehouse_path = tmp_path / "warehouse.db"
    port = free_port()
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    ingest_task = await start_ingest(ingest)
    wh = ingest.warehouse.stats
    started: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    simulators = asyncio.create_task(
        run_simulators(
            SimulatorSettings(seed=11, speed=8.0, pack_rate_hz=2.0), on_started=started.set_result
        )
    )
    gateway: NamespacedGateway | None = None
    try:
        addresses = await asyncio.wait_for(asyncio.shield(started), 30)
        text = demo_config(addresses, db_path, broker).replace(
            "[store]\n", "[store]\nmax_size_mb = 64\nheadroom_mb = 1\n", 1
        )
        config = tmp_path / "gw.toml"
        config.write_text(text + health_toml(port, require_devices=False, require_uplink=False))
        gateway = NamespacedGateway(config, state, tmp_path / "gateway.log")
        await wait_for(gateway.ready, 30)
        pid = gateway.proc.pid
        seen = gateway.inside(state)
        assert shutil.disk_usage(seen).total <= TMPFS_MB * 1024 * 1024, "on the small tmpfs"
        await wait_for(lambda: wh.inserted >= 100, 30)

        # Another process takes every last byte of the state directory's file system.
        fill(seen)
        await wait_for(lambda: _state_is(port, "full"), 30)
        check = await store_check(port)
        assert check["pending"] > 0, check
        # Degraded, not dead: it keeps answering and recording into memory.
        await wait_for(lambda: _pending_above(port, check["pending"] + 50), 20)
        assert gateway.proc.poll() is None
        assert (await readyz(port))["status"] == 503

        # Space returns.
        (seen / "filler").unlink()
        await wait_for(lambda: _state_is(port, "ok"), 30)
        await wait_for(
            lambda: _alert_states(pid, db_path) >= ["raised", "cleared"], 30, interval=0.2
        )
        assert (await readyz(port))["status"] == 200

        # Stop the line; everything committed reaches the warehouse exactly once.
        await stop_task(simulators)
        await wait_for(lambda: _outbox(pid, db_path) == 0, 60, interval=0.2)
        committed = _committed(pid, db_path)
        await wait_for(lambda: committed <= _warehouse(warehouse_path), 30)
        assert query(pid, db_path, "PRAGMA integrity_check") == [["ok"]]
        alerts = query(
            pid,
            db_path,
            "SELECT state, message FROM alerts WHERE alert_id = ? ORDER BY seq",
            ALERT_ID,
        )
        assert gateway.proc.pid == pid, "no restart: the same process all along"
        gateway.proc.send_signal(signal.SIGTERM)
        await wait_for(lambda: gateway is not None and gateway.proc.poll() is not None, 15)
        assert gateway.proc.returncode == 0, gateway.tail()
    finally:
        if gateway is not None:
            gateway.close()
        await stop_task(simulators)
        await stop_task(ingest_task)

    assert [s for s, _ in alerts][:2] == ["raised", "cleared"]
    assert "edge storage full" in alerts[0][1]
    assert "disk is full" in alerts[0][1]
    with read_only(warehouse_path) as wdb:
        copies = dict(
            wdb.execute(
                "SELECT seq, count(*) FROM records WHERE gateway = 'demo-gw1' GROUP BY seq"
            ).fetchall()
        )
        delivered_alerts = [
            json.loads(p)["state"]
            for (p,) in wdb.execute(
                "SELECT payload FROM records WHERE stream = 'alerts' ORDER BY seq"
            ).fetchall()
            if json.loads(p)["alert_id"] == ALERT_ID
        ]
        conflicts = wdb.execute("SELECT count(*) FROM conflicts").fetchone()[0]
        # (The edge may have evicted its own gateway_started event for space: telemetry.)
        starts = [
            p
            for (p,) in wdb.execute("SELECT payload FROM records WHERE stream = 'device_events'")
            if json.loads(p)["kind"] == "gateway_started"
        ]
    assert delivered_alerts[:2] == ["raised", "cleared"], "the alert reached the warehouse"
    assert len(starts) == 1, "started once: no crash loop"
    assert conflicts == 0
    assert all(n == 1 for n in copies.values())
    assert set(committed) <= set(copies)
    assert wh.conflicts == 0


async def _state_is(port: int, state: str) -> bool:
    return (await store_check(port)).get("state") == state


async def _pending_above(port: int, n: int) -> bool:
    return int((await store_check(port)).get("pending", 0)) > n


def _outbox(pid: int, db_path: Path) -> int:
    return int(query(pid, db_path, "SELECT count(*) FROM outbox")[0][0])


def _committed(pid: int, db_path: Path) -> set[int]:
    union = " UNION ALL ".join(f"SELECT seq FROM {t}" for t in RECORD_STREAMS)
    return {int(s) for (s,) in query(pid, db_path, union)}


def _warehouse(path: Path) -> set[int]:
    with read_only(path) as db:
        return {int(s) for (s,) in db.execute("SELECT seq FROM records")}


def _alert_states(pid: int, db_path: Path) -> list[str]:
    sql = "SELECT state FROM alerts WHERE alert_id = ? ORDER BY seq"
    return [str(s) for (s,) in query(pid, db_path, sql, ALERT_ID)]


# ------------------------------------------------------------------------------------------
# The uplinks, when the store cannot delete what the warehouse acknowledged


class FullOutbox(Outbox):
    """The real outbox, except that the first ``failures`` acknowledgements find the disk
    full (as ``Store.fetchall`` reports it: StoreFullError)."""

    def __init__(self, store: Store, failures: int) -> None:
        super().__init__(store, gateway="gw-test", site="test-site")
        self.failures = failures
        self.refused = 0

    async def acknowledge(self, seqs: Iterable[int]) -> int:
        if self.refused < self.failures:
            self.refused += 1
            raise StoreFullError("database or disk is full (injected)")
        return await super().acknowledge(seqs)


async def committed_packs(store: Store, n: int) -> list[int]:
    return list(
        await asyncio.gather(
            *(
                store.submit(PackEvent(ts_us=1_000 + i, line="L1", device="cw1", net_g=240.5))
                for i in range(n)
            )
        )
    )


@contextlib.asynccontextmanager
async def open_store(path: Path) -> AsyncIterator[Store]:
    async with Store(StoreSection(path=path, commit_interval_ms=10), SystemClock()) as store:
        committer = asyncio.create_task(store.run_committer())
        try:
            yield store
        finally:
            await store.stop_committer()
            await committer


async def test_mqtt_uplink_backs_off_and_resends_when_acks_cannot_be_deleted(
    tmp_path: Path, broker: Mosquitto
) -> None:
    warehouse_path = tmp_path / "warehouse.db"
    ingest = IngestService(ingest_settings(broker, warehouse_path))
    ingest_task = await start_ingest(ingest)
    try:
        async with open_store(tmp_path / "gw.db") as store:
            seqs = await committed_packs(store, 120)
            outbox = FullOutbox(store, failures=3)
            uplink = MqttUplink(
                store,
                host=broker.host,
                port=broker.port,
                site="test-site",
                gateway="gw-test",
                outbox=outbox,
                max_records=40,
                ack_timeout_s=0.5,
                poll_interval_s=0.05,
                backoff=Backoff(initial=0.05, maximum=0.2),
            )
            task = asyncio.create_task(uplink.run())
            try:
                await wait_for(lambda: outbox.refused == 3, 15)
                assert not task.done(), "a full store does not end the uplink (or the gateway)"
                await wait_for(lambda: _outbox_empty(outbox), 20)
            finally:
                await uplink.stop()
                await asyncio.wait_for(task, 10)
    finally:
        await stop_task(ingest_task)
    assert "full" in uplink.stats.last_error
    assert uplink.stats.connect_attempts >= 4, "each refusal: back off, reconnect, resend"
    assert uplink.stats.records_acked == len(seqs)
    stats = ingest.warehouse.stats
    assert stats.inserted == len(seqs)
    assert stats.duplicates > 0, "what could not be deleted was sent again, deduplicated"
    with read_only(warehouse_path) as wdb:
        copies = dict(wdb.execute("SELECT seq, count(*) FROM records GROUP BY seq").fetchall())
    assert sorted(copies) == seqs
    assert set(copies.values()) == {1}


async def test_https_uplink_backs_off_and_resends_when_acks_cannot_be_deleted(
    tmp_path: Path,
) -> None:
    warehouse_path = tmp_path / "warehouse.db"
    service = IngestService(
        IngestSettings(
            mqtt_enabled=False,
            http_port=0,
            sqlite_path=warehouse_path,
            gateway_tokens=tokens("gw-test"),
        )
    )
    ingest_task = asyncio.create_task(service.run())
    await wait_for(lambda: ingest_task.done() or service.ready.is_set(), 10)
    try:
        async with open_store(tmp_path / "gw.db") as store:
            seqs = await committed_packs(store, 60)
            outbox = FullOutbox(store, failures=3)
            uplink = HttpsUplink(
                store,
                url=f"http://127.0.0.1:{service.http_port}{INGEST_PATH}",
                site="test-site",
                gateway="gw-test",
                token=token_for("gw-test"),
                outbox=outbox,
                max_records=20,
                poll_interval_s=0.02,
                backoff=Backoff(initial=0.05, maximum=0.2),
            )
            task = asyncio.create_task(uplink.run())
            try:
                await wait_for(lambda: outbox.refused == 3, 15)
                assert not task.done(), "a full store does not end the uplink (or the gateway)"
                await wait_for(lambda: _outbox_empty(outbox), 20)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await stop_task(ingest_task)
    assert "full" in uplink.stats.last_error
    assert uplink.stats.records_acked == len(seqs)
    stats = service.warehouse.stats
    assert stats.inserted == len(seqs)
    assert stats.duplicates > 0, "what could not be deleted was sent again, deduplicated"


async def _outbox_empty(outbox: Outbox) -> bool:
    return await outbox.depth() == 0
