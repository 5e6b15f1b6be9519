"""``lineside dead-letter``: records the warehouse refused are listed, shown and re-queued by
an operator through the running gateway, and land exactly once.

A real ingest (uvicorn, SQLite warehouse) refuses two records with its per-record conflict
answer (the warehouse holds other payloads under their ``(gateway, seq)``): they go to the
quarantine. The gateway is then started on that store, the way it runs in production: the
quarantine alert is raised again at start, the CLI (a child process) lists and shows the
records over the control socket, the warehouse rows are corrected, and ``requeue`` sends
them: they land once, the quarantine empties, the alert clears, and who did it and why is
a record of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.core.backoff import Backoff
from gateway.demo import ACTIVE_ALERTS
from sync.https_uplink import HttpsUplink
from sync.ingest import IngestService, IngestSettings
from sync.ingest.http_app import INGEST_PATH
from sync.outbox import Outbox
from tests.support.gateway_tokens import token_for, tokens
from tests.support.paths import REPO
from tests.support.running_gateway import gateway_in_process
from tests.support.uplink_harness import GW, SITE, commit, pack, running_store
from tests.support.waiting import wait_for

CONFLICT_REASON = "ingest: same sequence, different payload"


@dataclass
class Ingest:
    service: IngestService
    db_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}{INGEST_PATH}"

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            rows = db.execute(sql, params).fetchall()
            db.commit()
            return rows

    def rows_per_seq(self) -> dict[int, int]:
        rows = self.query("SELECT seq, count(*) FROM records WHERE gateway = ? GROUP BY seq", (GW,))
        return {int(seq): int(n) for seq, n in rows}


@pytest.fixture
async def ingest(tmp_path: Path) -> AsyncIterator[Ingest]:
    db_path = tmp_path / "warehouse.db"
    service = IngestService(
        IngestSettings(
            mqtt_enabled=False, http_port=0, sqlite_path=db_path, gateway_tokens=tokens(GW)
        )
    )
    task = asyncio.create_task(service.run())
    await wait_for(lambda: task.done() or service.ready.is_set(), 10)
    if task.done():
        task.result()
    try:
        yield Ingest(service, db_path)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def edge(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A read-only query on the gateway's store (the gateway keeps writing)."""
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchall()


async def lineside(*args: str) -> tuple[int, str, str]:
    """The CLI as an operator runs it: a child process, while this loop runs the gateway."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def config_text(tmp_path: Path, ingest_url: str) -> str:
    return (
        f'[gateway]\nid = "{GW}"\nsite = "{SITE}"\n'
        f'control_socket = "{tmp_path / "control.sock"}"\n\n'
        f'[store]\npath = "{tmp_path / "lineside.db"}"\ncommit_interval_ms = 20\n\n'
        '[[lines]]\nid = "L1"\n\n'
        f'[sync.https]\nurl = "{ingest_url}"\ntimeout_s = 5.0\n'
        f'token = {{ file = "{token_file(tmp_path)}" }}\n'
    )


def token_file(tmp_path: Path) -> Path:
    """The gateway's token, where the config names it."""
    path = tmp_path / "ingest-token"
    path.write_text(token_for(GW) + "\n")
    return path


async def test_dead_letter_list_show_requeue_lands_every_record_once(
    tmp_path: Path, ingest: Ingest
) -> None:
    db_path = tmp_path / "lineside.db"
    # -- the warehouse refuses two records (record-level conflicts): quarantined
    async with running_store(tmp_path) as store:
        seqs = await commit(store, [pack(i) for i in range(20)])
        clash = seqs[3:5]
        for seq in clash:
            ingest.query(
                "INSERT INTO records (gateway, site, seq, stream, payload, payload_sha256) "
                "VALUES (?, ?, ?, 'packs', '{\"net_g\": 0}', 'someone else''s record')",
                (GW, SITE, seq),
            )
        outbox = Outbox(store, gateway=GW, site=SITE)
        uplink = HttpsUplink(
            store,
            url=ingest.url,
            site=SITE,
            gateway=GW,
            token=token_for(GW),
            poll_interval_s=0.02,
            backoff=Backoff(initial=0.05, maximum=0.2),
        )
        sending = asyncio.create_task(uplink.run())
        try:

            async def drained() -> bool:
                return await outbox.depth() == 0

            await wait_for(drained, 15, "the outbox drained")
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        assert [(s, r) for s, _, r in await outbox.quarantined()] == [
            (seq, CONFLICT_REASON) for seq in clash
        ]
    expected = {seq: 240.0 + i / 10 for i, seq in enumerate(seqs)}

    config = tmp_path / "gateway.toml"
    config.write_text(config_text(tmp_path, ingest.url))
    socket_arg = ("--socket", str(tmp_path / "control.sock"))
    me = pwd.getpwuid(os.getuid()).pw_name
    async with gateway_in_process(config):
        # -- at start, the quarantine alert stands again (the restore cleared the old one)
        await wait_for(
            lambda: "sync.quarantine" in {a for (a, *_) in edge(db_path, _ACTIVE_IDS)}, 10
        )
        [(message,)] = edge(
            db_path, "SELECT message FROM alerts WHERE alert_id = 'sync.quarantine'"
        )
        assert "2 records wait in the sync quarantine" in message

        code, out, err = await lineside("dead-letter", "list", *socket_arg)
        assert code == 0, err
        assert "2 record(s) in the sync quarantine" in out
        for seq in clash:
            assert str(seq) in out
        assert out.count("same sequence, different payload") == 2

        code, out, err = await lineside("dead-letter", "show", str(clash[0]), *socket_arg)
        assert code == 0, err
        assert "same sequence, different payload" in out
        assert '"net_g": 240.3' in out

        # -- the warehouse's rows are corrected; the operator sends the records again
        ingest.query(
            f"DELETE FROM records WHERE gateway = ? AND seq IN ({clash[0]}, {clash[1]})", (GW,)
        )
        code, out, err = await lineside(
            "dead-letter",
            "requeue",
            f"{clash[0]}-{clash[1]}",
            "--reason",
            "warehouse rows corrected (ticket 42)",
            "--operator",
            "Ann",
            *socket_arg,
        )
        assert code == 0, err
        assert "re-queued 2 record(s)" in out
        assert "0 record(s) left" in out

        await wait_for(lambda: all(ingest.rows_per_seq().get(s) == 1 for s in seqs), 15)
        assert edge(db_path, "SELECT count(*) FROM outbox_quarantine") == [(0,)]
        # The alert cleared (newest transition), attributed to the operator.
        [(state, detail)] = edge(
            db_path,
            "SELECT state, detail FROM alerts WHERE alert_id = 'sync.quarantine' "
            "ORDER BY seq DESC LIMIT 1",
        )
        assert state == "cleared"
        assert json.loads(detail)["os_user"] == me
        assert "sync.quarantine" not in {a for (a, *_) in edge(db_path, _ACTIVE_IDS)}
        # Who did it and why: a record of its own (synced like any other).
        [(event,)] = edge(
            db_path, "SELECT detail FROM device_events WHERE kind = 'dead_letter_requeued'"
        )
        recorded = json.loads(event)
        assert recorded["operator"] == "Ann"
        assert recorded["os_user"] == me
        assert recorded["os_uid"] == os.getuid()
        assert recorded["reason"] == "warehouse rows corrected (ticket 42)"
        assert recorded["records"] == 2
        assert recorded["seqs"] == f"{clash[0]}-{clash[1]}"
        assert recorded["quarantine_reasons"] == {CONFLICT_REASON: 2}

        # -- again: nothing to re-queue, said plainly; nothing else moves
        code, out, err = await lineside(
            "dead-letter", "requeue", str(clash[0]), "--reason", "again", "--operator", "Ann",
            *socket_arg,
        )  # fmt: skip
        assert code == 1
        assert "not in the quarantine" in err
        assert "Traceback" not in err
        code, out, err = await lineside("dead-letter", "list", *socket_arg)
        assert code == 0, err
        assert "the sync quarantine is empty" in out
        # A reason with a terminal escape is refused, and says why.
        code, out, err = await lineside(
            "dead-letter", "requeue", str(clash[0]), "--reason", "ok\x1b[2J", "--operator",
            "Ann", *socket_arg,
        )  # fmt: skip
        assert code == 1
        assert "control character" in err
        assert "\x1b" not in err
    # Every committed pack is in the warehouse exactly once, with its own payload.
    per_seq = ingest.rows_per_seq()
    assert all(per_seq.get(seq) == 1 for seq in seqs)
    for seq in clash:
        [(payload,)] = ingest.query(
            "SELECT payload FROM records WHERE gateway = ? AND seq = ?", (GW, seq)
        )
        assert json.loads(payload)["net_g"] == expected[seq]


_ACTIVE_IDS = ACTIVE_ALERTS.replace("SELECT rule, severity, subject", "SELECT alert_id")
