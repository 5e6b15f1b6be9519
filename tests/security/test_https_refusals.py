"""Refusals from the HTTPS ingest (or a proxy in front of it) never lose records silently.

A real HTTP server (the project's ingest, uvicorn, a SQLite warehouse) sits behind a small
ASGI "proxy" the test controls: it answers ``404`` for the ingest route (a wrong route in a
reverse proxy) or ``413`` for bodies above its limit, until the test "fixes" it. Only the
ingest's own per-record conflict answer (a ``200`` ack with ``conflicts``) may quarantine a
record; see tests/security/test_dead_letter_requeue.py for what an operator does then.

Each test asserts that nothing was quarantined or lost (every committed record lands in the
warehouse exactly once after the fix), that the refusal was logged once as an error (no
traceback, retries as warnings at the backoff's pace) and that an alert was raised and
cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.core.backoff import Backoff
from gateway.core.link import LinkState
from gateway.store import Store
from sync.https_uplink import HttpsUplink
from sync.ingest import IngestService, IngestSettings
from sync.ingest.http_app import INGEST_PATH
from sync.ingest.warehouse import decode_message
from sync.outbox import Outbox
from tests.support.gateway_tokens import token_for, tokens
from tests.support.uplink_harness import GW, SITE, commit, pack, running_store
from tests.support.waiting import wait_for

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RECORDS = 53
"""As many as the review saw quarantined in 45 s."""


@dataclass
class Proxy:
    """ASGI middleware in front of the ingest: a misconfigured proxy until ``fixed``."""

    app: Any
    fault: str = "404"
    """``404``: every ingest request is answered 404; ``413``: bodies with more than
    ``max_records`` records are answered 413; ``""``: the proxy passes everything on."""
    max_records: int = 4
    refused: list[str] = field(default_factory=list)
    """The Idempotency-Key of each refused request."""
    passed: list[int] = field(default_factory=list)
    """The record count of each request passed on."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != INGEST_PATH:
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        key = headers.get("idempotency-key", "")
        if self.fault == "404":
            self.refused.append(key)
            await _answer(send, 404, b"<html><body><h1>404 Not Found</h1>nginx</body></html>")
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        count = len(decode_message(bytes(body)).records)
        if self.fault == "413" and count > self.max_records:
            self.refused.append(key)
            await _answer(send, 413, b"<html><body>413 Request Entity Too Large</body></html>")
            return
        self.passed.append(count)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


async def _answer(send: Send, status: int, body: bytes) -> None:
    head = [(b"content-type", b"text/html"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Warehouse:
    service: IngestService
    proxy: Proxy
    db_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}{INGEST_PATH}"

    def rows_per_seq(self) -> dict[int, int]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            rows = db.execute(
                "SELECT seq, count(*) FROM records WHERE gateway = ? GROUP BY seq", (GW,)
            ).fetchall()
        return {int(seq): int(n) for seq, n in rows}

    def alert_states(self, rule: str) -> list[str]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            rows = db.execute(
                "SELECT payload FROM records WHERE gateway = ? AND stream = 'alerts' ORDER BY seq",
                (GW,),
            ).fetchall()
        payloads = [json.loads(p) for (p,) in rows]
        return [p["state"] for p in payloads if p.get("rule") == rule]


@pytest.fixture
async def warehouse(tmp_path: Path) -> AsyncIterator[Warehouse]:
    db_path = tmp_path / "warehouse.db"
    service = IngestService(
        IngestSettings(
            mqtt_enabled=False, http_port=0, sqlite_path=db_path, gateway_tokens=tokens(GW)
        )
    )
    proxy = Proxy(service.app)
    service.app = proxy  # type: ignore[assignment]  # uvicorn serves service.app
    task = asyncio.create_task(service.run())
    await wait_for(lambda: task.done() or service.ready.is_set(), 10)
    if task.done():
        task.result()
    try:
        yield Warehouse(service, proxy, db_path)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_uplink(store: Store, url: str) -> AsyncIterator[HttpsUplink]:
    uplink = HttpsUplink(
        store,
        url=url,
        site=SITE,
        gateway=GW,
        token=token_for(GW),
        max_records=10,
        timeout_s=5.0,
        poll_interval_s=0.02,
        backoff=Backoff(initial=0.05, maximum=0.3),
    )
    task = asyncio.create_task(uplink.run())
    try:
        yield uplink
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


async def stored_alert_states(store: Store, rule: str) -> list[str]:
    rows = await store.fetchall("SELECT state FROM alerts WHERE rule = ? ORDER BY seq", (rule,))
    return [str(state) for (state,) in rows]


def link_state(uplink: HttpsUplink) -> LinkState:
    """The link's state now (a plain read, so type narrowing does not carry over)."""
    return uplink.state


def uplink_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sync.https_uplink"]


async def test_a_proxy_answering_404_keeps_every_record_until_it_is_fixed(
    tmp_path: Path, warehouse: Warehouse, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_store(tmp_path) as store:
        seqs = await commit(store, [pack(i) for i in range(RECORDS)])
        outbox = Outbox(store, gateway=GW, site=SITE)
        async with running_uplink(store, warehouse.url) as uplink:
            await wait_for(lambda: len(warehouse.proxy.refused) >= 8, 15, "eight 404s")
            # Nothing quarantined, nothing lost: every record still waits in the outbox.
            assert await outbox.quarantined() == []
            assert await outbox.quarantine_count() == 0
            assert uplink.stats.records_quarantined == 0
            waiting = {s for (s,) in await store.fetchall("SELECT seq FROM outbox")}
            assert set(seqs) <= waiting
            # The same batch again and again (capped backoff), never the next one.
            assert len(set(warehouse.proxy.refused)) == 1
            assert uplink.state is LinkState.DEGRADED
            assert "HTTP 404" in uplink.stats.last_error
            # One alert, not one per attempt; it waits in the outbox with the records.
            assert await stored_alert_states(store, "sync_refused") == ["raised"]
            assert await stored_alert_states(store, "sync_quarantined") == []
            assert warehouse.rows_per_seq() == {}
            # Logged once as an error, then a warning per attempt; never a traceback.
            errors = [r for r in uplink_records(caplog) if r.levelno >= logging.ERROR]
            assert len(errors) == 1
            assert "HTTP 404" in errors[0].getMessage()
            assert "records kept" in errors[0].getMessage()
            assert not any(r.exc_info for r in caplog.records)

            warehouse.proxy.fault = ""  # the proxy's route is fixed
            await wait_for(lambda: _empty(outbox), 15, "the outbox drained")
            assert link_state(uplink) is LinkState.UP
            await wait_for(lambda: _alert_states_are(store, ["raised", "cleared"]), 10)
            # The clearing is a record too: it reaches the warehouse with the next batch.
            await wait_for(
                lambda: warehouse.alert_states("sync_refused") == ["raised", "cleared"],
                15,
                "the alert's clearing in the warehouse",
            )
    per_seq = warehouse.rows_per_seq()
    assert set(seqs) <= set(per_seq)
    assert all(per_seq[seq] == 1 for seq in seqs), "every record exactly once"
    assert warehouse.alert_states("sync_refused") == ["raised", "cleared"]


async def test_a_proxy_body_limit_413_is_met_with_smaller_batches(
    tmp_path: Path, warehouse: Warehouse, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    warehouse.proxy.fault = "413"
    async with running_store(tmp_path) as store:
        seqs = await commit(store, [pack(i) for i in range(RECORDS)])
        outbox = Outbox(store, gateway=GW, site=SITE)
        async with running_uplink(store, warehouse.url) as uplink:
            await wait_for(lambda: _empty(outbox), 20, "the outbox drained")
            assert await outbox.quarantined() == []
            assert uplink.stats.records_quarantined == 0
            assert uplink.stats.refusals >= 1
        # Met by the gateway itself: logged, no alert (a single record too large would be).
        assert await stored_alert_states(store, "sync_refused") == []
    assert warehouse.proxy.refused, "the proxy refused the first, large batch"
    assert max(warehouse.proxy.passed) <= warehouse.proxy.max_records
    per_seq = warehouse.rows_per_seq()
    assert all(per_seq.get(seq) == 1 for seq in seqs), "every record exactly once"
    warnings = [r.getMessage() for r in uplink_records(caplog) if r.levelno == logging.WARNING]
    assert any("HTTP 413" in m and "a smaller batch" in m for m in warnings)
    assert any("batches of at most" in m for m in warnings)
    assert not any(r.exc_info for r in caplog.records)


async def test_a_single_record_too_large_for_the_proxy_is_kept_and_alerted(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    warehouse.proxy.fault = "413"
    warehouse.proxy.max_records = 0  # the proxy takes nothing
    async with running_store(tmp_path) as store:
        seqs = await commit(store, [pack(i) for i in range(3)])
        outbox = Outbox(store, gateway=GW, site=SITE)
        async with running_uplink(store, warehouse.url) as uplink:
            await wait_for(
                lambda: uplink.stats.refusals >= 6 and uplink.state is LinkState.DEGRADED, 15
            )
            assert await stored_alert_states(store, "sync_refused") == ["raised"]
            assert await outbox.quarantine_count() == 0
            warehouse.proxy.fault = ""
            await wait_for(lambda: _empty(outbox), 15, "the outbox drained")
            await wait_for(lambda: _alert_states_are(store, ["raised", "cleared"]), 10)
    per_seq = warehouse.rows_per_seq()
    assert all(per_seq.get(seq) == 1 for seq in seqs), "every record exactly once"


async def test_record_level_conflicts_still_quarantine_and_alert(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    # The ingest's per-record refusal (200 with conflicts) is the one answer that
    # quarantines: the warehouse holds another payload under the same (gateway, seq).
    warehouse.proxy.fault = ""
    async with running_store(tmp_path) as store:
        seqs = await commit(store, [pack(i) for i in range(12)])
        clash = seqs[3]
        with contextlib.closing(sqlite3.connect(warehouse.db_path)) as db:
            db.execute(
                "INSERT INTO records (gateway, site, seq, stream, payload, payload_sha256) "
                "VALUES (?, ?, ?, 'packs', '{}', 'not-the-same')",
                (GW, SITE, clash),
            )
            db.commit()
        outbox = Outbox(store, gateway=GW, site=SITE)
        async with running_uplink(store, warehouse.url) as uplink:
            await wait_for(lambda: _empty(outbox), 15, "the outbox drained")
            assert uplink.state is LinkState.UP
            # The quarantine alert follows the records to the warehouse.
            await wait_for(lambda: warehouse.alert_states("sync_quarantined") == ["raised"], 15)
        quarantined = await outbox.quarantined()
        assert [(seq, stream) for seq, stream, _ in quarantined] == [(clash, "packs")]
        assert "different payload" in quarantined[0][2]
        assert await stored_alert_states(store, "sync_quarantined") == ["raised"]
    per_seq = warehouse.rows_per_seq()
    assert all(per_seq.get(seq) == 1 for seq in seqs if seq != clash)


async def _empty(outbox: Outbox) -> bool:
    return await outbox.depth() == 0


async def _alert_states_are(store: Store, states: list[str]) -> bool:
    return await stored_alert_states(store, "sync_refused") == states
