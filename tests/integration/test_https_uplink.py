"""Store-and-forward over HTTPS against the REAL central ingest (uvicorn, SQLite warehouse).

The seam we own is a small fault-injecting ASGI middleware in front of the ingest app: for
scripted requests it lets the ingest COMMIT the batch and then answers 500, or 429 with
``Retry-After: 1``, or never answers (the client times out: an ambiguous outcome); or it
refuses a request with 403 without passing it on. It also counts every Idempotency-Key it
sees, so duplicates on the wire are counted by the test, not by the code under test.

Conservation (docs/reference/reliability.md §7 rows 16-17): every committed gateway record is in the
warehouse exactly once (rows counted per seq), and the outbox empties.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.core.backoff import Backoff
from gateway.core.clock import ManualClock
from gateway.core.link import LinkState
from gateway.core.records import Severity
from gateway.store import Store
from sync.https_uplink import HttpsUplink
from sync.ingest import IngestService, IngestSettings
from sync.ingest.http_app import INGEST_PATH
from sync.outbox import Outbox
from tests.support.gateway_tokens import token_for, tokens
from tests.support.uplink_harness import GW, SITE, alert, commit, pack, running_store, telemetry
from tests.support.waiting import wait_for

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CLIENT_TIMEOUT_S = 2.0
"""Long enough that a loaded machine (a second suite alongside) never times out a request
the ingest answers; the "hang" fault waits this long."""


MANUAL_PLUS_1S = email.utils.format_datetime(
    datetime.fromtimestamp(ManualClock().wall_us() / 1_000_000 + 1, UTC), usegmt=True
)
"""An HTTP-date one second after a fresh :class:`ManualClock`."""


@dataclass
class Seen:
    key: str
    at: float
    fault: str | None
    inner_status: int | None = None


@dataclass
class FaultInjector:
    """ASGI middleware: scripted faults per ingest request, in arrival order."""

    app: Any
    script: list[str | None] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    """The most ingest requests that were open at once."""

    @property
    def keys(self) -> Counter[str]:
        return Counter(s.key for s in self.seen)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.keys.values())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != INGEST_PATH:
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self._serve(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        fault = self.script.pop(0) if self.script else None
        seen = Seen(headers.get("idempotency-key", ""), time.monotonic(), fault)
        self.seen.append(seen)
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault == "403":
            await _answer(send, 403, {"error": "forbidden", "reason": "gateway not enrolled"})
            return
        if fault == "422":
            await _answer(send, 422, {"error": "unprocessable", "reason": "unknown stream"})
            return
        # Let the ingest commit, keep its answer to ourselves.
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)
        seen.inner_status = int(captured[0]["status"])
        if fault == "500":
            await _answer(send, 500, {"error": "injected", "reason": "after commit"})
        elif fault == "429":
            await _answer(send, 429, {"error": "slow down"}, {"retry-after": "1"})
        elif fault == "429-date":
            # One second after the gateway's (manual) clock, whatever the wall clock says.
            await _answer(send, 429, {"error": "slow down"}, {"retry-after": MANUAL_PLUS_1S})
        elif fault == "hang":
            # Never answer: wait until the client gives up and closes the connection.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    while (await receive())["type"] != "http.disconnect":
                        pass
        else:
            raise AssertionError(f"unknown fault {fault!r}")


async def _answer(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    raw = json.dumps(body).encode()
    head = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    head += [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw})


@dataclass
class Ingest:
    service: IngestService
    faults: FaultInjector
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

    def payloads(self) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            rows = db.execute("SELECT payload FROM records WHERE gateway = ?", (GW,)).fetchall()
        return [json.loads(payload) for (payload,) in rows]


@pytest.fixture
async def ingest(tmp_path: Path) -> AsyncIterator[Ingest]:
    db_path = tmp_path / "warehouse.db"
    service = IngestService(
        IngestSettings(
            mqtt_enabled=False, http_port=0, sqlite_path=db_path, gateway_tokens=tokens(GW)
        )
    )
    faults = FaultInjector(service.app)
    service.app = faults  # type: ignore[assignment]  # the seam: uvicorn serves service.app
    task = asyncio.create_task(service.run())
    await wait_for(lambda: task.done() or service.ready.is_set(), 10)
    if task.done():
        task.result()
    try:
        yield Ingest(service, faults, db_path)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_uplink(
    store: Store, ingest: Ingest, **options: Any
) -> AsyncIterator[HttpsUplink]:
    settings: dict[str, Any] = {
        "url": ingest.url,
        "site": SITE,
        "gateway": GW,
        "token": token_for(GW),
        "max_records": 10,
        "timeout_s": CLIENT_TIMEOUT_S,
        "poll_interval_s": 0.02,
        "backoff": Backoff(initial=0.05, maximum=0.2),
    }
    settings.update(options)
    uplink = HttpsUplink(store, **settings)
    task = asyncio.create_task(uplink.run())
    try:
        yield uplink
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert task.cancelled(), "run() ended other than by cancellation"
        assert uplink.state is LinkState.DISABLED


async def assert_conserved(store: Store, ingest: Ingest, seqs: list[int]) -> None:
    """Every committed record is in the warehouse exactly once, and the outbox is empty."""
    outbox = Outbox(store, gateway=GW, site=SITE)
    await wait_for(lambda: outbox_empty(outbox), 10)
    per_seq = ingest.rows_per_seq()
    assert set(seqs) <= set(per_seq)
    assert all(per_seq[seq] == 1 for seq in seqs)


async def outbox_empty(outbox: Outbox) -> bool:
    return await outbox.depth() == 0


def workload() -> list[Any]:
    return [*(pack(i) for i in range(25)), *(telemetry(i) for i in range(5)), alert("a1")]


# ---------------------------------------------------------------- happy path, priority


async def test_delivers_the_outbox_in_priority_order_and_acks_delete(
    tmp_path: Path, ingest: Ingest
) -> None:
    async with running_store(tmp_path) as store:
        seqs = await commit(store, workload())
        async with running_uplink(store, ingest) as uplink:
            await assert_conserved(store, ingest, seqs)
            assert uplink.state is LinkState.UP
        assert ingest.faults.duplicates == 0
        first_key = ingest.faults.seen[0].key
        assert first_key.startswith(f"{GW}:alerts:")  # alerts first
        # 1 alert batch, 3 pack batches (10/10/5), 1 telemetry batch.
        assert len(ingest.faults.seen) == 5
        assert uplink.stats.batches_sent == 5
        assert uplink.stats.records_acked == len(seqs)
        assert (uplink.stats.batches_resent, uplink.stats.duplicates_seen) == (0, 0)
        assert uplink.stats.records_quarantined == 0


def first_seq(key: str) -> int:
    """The first sequence number of a batch id ``gateway:stream:first-last:count``."""
    return int(key.split(":")[2].split("-", maxsplit=1)[0])


@pytest.mark.parametrize("script", [[], [None, "500", None, "hang"]])
async def test_one_batch_is_on_the_wire_at_a_time_and_batches_go_in_order(
    tmp_path: Path, ingest: Ingest, script: list[str | None]
) -> None:
    # The next batch is read while one is in flight (also while it is retried after a
    # failure); it must still go only after that one's answer, and in outbox order.
    ingest.faults.script = list(script)
    async with running_store(tmp_path) as store:
        seqs = await commit(store, [pack(i) for i in range(45)])
        async with running_uplink(store, ingest) as uplink:
            await assert_conserved(store, ingest, seqs)
    assert ingest.faults.most_in_flight == 1
    keys = list(dict.fromkeys(seen.key for seen in ingest.faults.seen))
    assert len(keys) == 5  # 10, 10, 10, 10, 5
    assert [first_seq(key) for key in keys] == sorted(first_seq(key) for key in keys)
    resent = [key for key, n in ingest.faults.keys.items() if n > 1]
    assert len(resent) == (2 if script else 0)
    # A resent batch went again before any later batch went at all.
    order = [seen.key for seen in ingest.faults.seen]
    for key in resent:
        first, last = order.index(key), len(order) - 1 - order[::-1].index(key)
        assert set(order[first : last + 1]) == {key}
    assert uplink.stats.records_acked == len(seqs)


# ---------------------------------------------------------------- ambiguous outcomes


@pytest.mark.parametrize("fault", ["500", "hang"])
async def test_commit_then_failure_is_resent_with_the_same_key_and_stored_once(
    tmp_path: Path, ingest: Ingest, fault: str
) -> None:
    ingest.faults.script = [None, fault]  # the second request commits, then fails
    async with running_store(tmp_path) as store:
        seqs = await commit(store, workload())
        async with running_uplink(store, ingest) as uplink:
            await assert_conserved(store, ingest, seqs)
        faulted = ingest.faults.seen[1]
        assert faulted.fault == fault
        assert faulted.inner_status == 200  # the warehouse really committed it
        # The same batch went again under the same key: a duplicate on the wire, stored once.
        assert ingest.faults.keys[faulted.key] == 2
        assert ingest.faults.seen[2].key == faulted.key
        assert ingest.faults.duplicates == 1
        assert uplink.stats.batches_resent == 1
        assert uplink.stats.duplicates_seen == 1
        assert uplink.stats.records_acked == len(seqs)
        if fault == "hang":
            assert "Timeout" in uplink.stats.last_error
        else:
            assert uplink.stats.last_error.startswith("HTTP 500")


async def test_429_honours_retry_after(tmp_path: Path, ingest: Ingest) -> None:
    ingest.faults.script = ["429"]
    async with running_store(tmp_path) as store:
        seqs = await commit(store, workload())
        async with running_uplink(store, ingest) as uplink:
            await wait_for(lambda: uplink.state is LinkState.DEGRADED, 5)
            await assert_conserved(store, ingest, seqs)
        first, second = ingest.faults.seen[:2]
        assert first.key == second.key
        assert second.at - first.at >= 0.95  # Retry-After: 1, not the 0.05 s backoff
        assert ingest.faults.duplicates == 1
        assert uplink.stats.batches_resent == 1
        assert uplink.stats.duplicates_seen == 0  # a 429 says "not processed"
        assert uplink.stats.last_error.startswith("HTTP 429")


async def test_a_retry_after_date_is_read_against_the_gateways_clock(
    tmp_path: Path, ingest: Ingest
) -> None:
    # The HTTP-date is one second after the store's clock (a manual one, far from the wall
    # clock): the wait is that second, not "a date long past, now" nor months.
    ingest.faults.script = ["429-date"]
    async with running_store(tmp_path, ManualClock()) as store:
        seqs = await commit(store, workload())
        async with running_uplink(store, ingest) as uplink:
            await wait_for(lambda: uplink.state is LinkState.DEGRADED, 5)
            await assert_conserved(store, ingest, seqs)
        first, second = ingest.faults.seen[:2]
        assert first.key == second.key
        assert 0.95 <= second.at - first.at < 5  # Retry-After: 1 s by the gateway's clock
        assert uplink.stats.batches_resent == 1


# ---------------------------------------------------------------- refusal


async def test_a_refused_request_keeps_its_records_alerts_and_is_sent_again(
    tmp_path: Path, ingest: Ingest
) -> None:
    # A 4xx refuses the request, not its records (a record-level refusal is a 200 with
    # conflicts): nothing is quarantined, the link is degraded, an alert says so, and the
    # same batch goes again with the backoff until it is accepted.
    ingest.faults.script = ["422"]
    async with running_store(tmp_path) as store:
        packs = await commit(store, [pack(i) for i in range(15)])
        outbox = Outbox(store, gateway=GW, site=SITE)

        def refused_states() -> list[object]:
            return [p.get("state") for p in ingest.payloads() if p.get("rule") == "sync_refused"]

        async with running_uplink(store, ingest) as uplink:
            # The raise and the clear (queued at the first accepted batch) are sent in turn.
            await wait_for(lambda: refused_states() == ["raised", "cleared"], 10)
            await wait_for(lambda: outbox_empty(outbox), 10)
        refused = ingest.faults.seen[0]
        assert refused.key == f"{GW}:packs:{packs[0]}-{packs[9]}:10"
        assert ingest.faults.keys[refused.key] == 2  # sent again, same key
        assert await outbox.quarantined() == []
        assert uplink.stats.records_quarantined == 0
        assert uplink.stats.refusals == 1
        assert uplink.stats.batches_resent == 1
        per_seq = ingest.rows_per_seq()
        assert all(per_seq[seq] == 1 for seq in packs)
        (raised,) = [
            p
            for p in ingest.payloads()
            if p.get("rule") == "sync_refused" and p["state"] == "raised"
        ]
        assert raised["severity"] == Severity.MAJOR.value
        assert "HTTP 422" in raised["message"]
        assert "unknown stream" in raised["message"]


# ---------------------------------------------------------------- link down


async def test_connect_errors_and_tls_failures_never_escape_run(
    tmp_path: Path, ingest: Ingest
) -> None:
    async with running_store(tmp_path) as store:
        (seq,) = await commit(store, [alert("down")])
        refused = "http://127.0.0.1:9/v1/ingest"  # nothing listens: connection refused
        # A TLS handshake against the plain-HTTP ingest fails: never sent, retried with backoff.
        plain = ingest.url.replace("http://", "https://")
        for url in (refused, plain):
            uplink = HttpsUplink(
                store,
                url=url,
                site=SITE,
                gateway=GW,
                timeout_s=CLIENT_TIMEOUT_S,
                backoff=Backoff(initial=0.05, maximum=0.1),
            )
            task = asyncio.create_task(uplink.run())
            await wait_for(lambda u=uplink: u.stats.batches_resent >= 2, 5)  # type: ignore[misc]
            assert uplink.state is LinkState.DOWN
            assert "ConnectError" in uplink.stats.last_error
            assert uplink.stats.duplicates_seen == 0  # nothing was sent
            assert not task.done()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert await Outbox(store, gateway=GW, site=SITE).depth() == 1
        assert seq not in ingest.rows_per_seq()
        assert ingest.faults.seen == []


def test_tls_is_always_verified(tmp_path: Path) -> None:
    uplink = HttpsUplink(
        None,  # type: ignore[arg-type]  # the store is not touched here
        url="https://ingest.example/v1/ingest",
        site=SITE,
        gateway=GW,
    )
    context = uplink.tls_context()
    assert context.check_hostname
    assert context.verify_mode.name == "CERT_REQUIRED"
    with pytest.raises(ValueError, match="https"):
        HttpsUplink(None, url="ftp://x/", site=SITE, gateway=GW)  # type: ignore[arg-type]


async def test_credentials_refused_keep_every_record_and_resume(
    tmp_path: Path, ingest: Ingest
) -> None:
    # A wrong token or an unenrolled gateway is refused whatever the batch: nothing may be
    # quarantined for it; the records wait, an alert says why, and sending resumes.
    ingest.faults.script = ["403", "403"]
    async with running_store(tmp_path) as store:
        packs = await commit(store, [pack(i) for i in range(15)])
        outbox = Outbox(store, gateway=GW, site=SITE)

        def unauthorized_states() -> list[object]:
            return [
                p.get("state") for p in ingest.payloads() if p.get("rule") == "sync_unauthorized"
            ]

        async with running_uplink(store, ingest) as uplink:
            # The clearing alert is queued at the first accepted batch, then sent in turn.
            await wait_for(lambda: unauthorized_states() == ["raised", "cleared"], 15)
            await wait_for(lambda: outbox_empty(outbox), 15)
        assert await outbox.quarantined() == []
        assert uplink.stats.records_quarantined == 0
        per_seq = ingest.rows_per_seq()
        assert all(per_seq[seq] == 1 for seq in packs)
        assert unauthorized_states() == ["raised", "cleared"]
