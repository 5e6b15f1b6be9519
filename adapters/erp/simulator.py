"""A simulated factory ERP: the JSON run endpoint of :mod:`adapters.erp.http_source`, on loopback.

:class:`ErpSimulator` serves a plain ASGI app (no framework) with uvicorn on 127.0.0.1; port 0
picks a free port, exposed as :attr:`ErpSimulator.port` and :attr:`ErpSimulator.url`. It
serves the keyset contract documented in :mod:`adapters.erp.http_source`::

    GET /api/runs?updated_since=<ISO 8601>&after_run=<RunNumber>&page_size=<k>
    {"runs": [...], "next": {"updated_since": "...", "after_run": "..."} | null}

the runs whose ``(Updated, RunNumber)`` is strictly greater than ``(updated_since,
after_run)`` (without ``after_run``: ``Updated > updated_since``; without either: every
run), in ascending ``(Updated, RunNumber)`` order (run numbers compared as text), at most
``page_size`` (default 500) of them. ``next`` is the key of the last run served, its
``Updated`` with the UTC offset so it is unambiguous in the autumn repeated hour, or null
when no run follows. ``updated_since`` without an offset is read in the ERP's zone. A
``page`` parameter (the former page-number contract), ``after_run`` without
``updated_since`` and a bad value are answered 400. With ``send_next=False`` the simulator
leaves ``next`` out, as a server that expects the client to continue from the last row.
``Updated`` is kept to the millisecond, as it is written, so a key read back from the wire
is exactly the key of its run. Every request is logged (method, path, query) for tests.

The runs look like a fish factory's day (docs/reference/production-pipeline.md): on line L1 a
finished salmon run (one batch, Premium 120 g and 240 g portions, GG 280 g, a catch-weight Family
Pack), a cod loin run in progress on the rubber clock (+1 day shelf life), and a planned
Simply Salmon exception run with three batch codes; on line L2 glazed frozen cod fillets in
progress and a planned smoked salmon run on superchill (+2). Times are placed around the
injected ``now`` and written as the ERP writes them: naive local date-times in its time zone.

Tests and the demo change the ERP while it runs: :meth:`ErpSimulator.update_run` edits a
run and bumps its ``Updated`` (reconciliation), :meth:`ErpSimulator.add_run` adds one,
:meth:`ErpSimulator.set_down` answers 503 (offline), and :meth:`ErpSimulator.set_fault`
serves one of the kinds of garbage listed in :class:`ErpFault` (docs/reference/reliability.md §7 row
15).
:attr:`ErpSimulator.on_request` is called for every request once its answer is settled and
before it is sent, so a test can change the ERP between two page requests of one poll.

The day's runs are :mod:`adapters.erp.simulated_day`, the faults
:mod:`adapters.erp.simulator_faults`, the ASGI and uvicorn plumbing
:mod:`adapters.erp.simulator_asgi`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from adapters.erp.simulated_day import day_of_runs
from adapters.erp.simulator_asgi import (
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    respond,
    respond_json,
    serve_in_background,
)
from adapters.erp.simulator_faults import (
    CHUNK_BYTES,
    DRIP_MAX_S,
    HUGE_BYTES,
    LOGIN_PAGE,
    PAGE_FAULTS,
    ErpFault,
    FaultState,
    serve_page_fault,
)
from adapters.simulator_lifecycle import SimulatorLifecycle
from gateway.core.http_server import QuietServer, bind_tcp

__all__ = ["RUNS_PATH", "ErpFault", "ErpSimulator", "RequestRecord"]

log = logging.getLogger(__name__)

RUNS_PATH: Final = "/api/runs"
"""Where the simulator serves runs."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the simulator received."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None = None
    """The Authorization header as received (tests check the bearer token)."""
    fault: ErpFault | None = None
    """The fault served to this request, if any."""


@dataclass(slots=True)
class _Run:
    raw: dict[str, object]
    updated: datetime
    """Aware, to the millisecond: exactly what ``raw["Updated"]`` says."""

    @property
    def number(self) -> str:
        return str(self.raw["RunNumber"])

    @property
    def key(self) -> tuple[datetime, str]:
        """The keyset ordering: ``(Updated, RunNumber)``."""
        return self.updated, self.number


def _to_ms(moment: datetime) -> datetime:
    """Drop the sub-millisecond part: the ERP writes ``Updated`` to the millisecond."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ErpSimulator(SimulatorLifecycle):
    """A simulated ERP serving a day of fish production runs over HTTP(S) on loopback.

    Use it as an async context manager::

        async with ErpSimulator(now=lambda: fixed) as erp:
            source = HttpErpSource(HttpErp(kind="http", url=erp.url))

    Args:
        host: address to listen on.
        port: TCP port; 0 picks a free one (see :attr:`port`).
        now: the wall clock (aware datetimes); the day's runs are placed around its value
            at construction, and :meth:`update_run` stamps ``Updated`` with it.
        timezone: the ERP's time zone; date-times are served naive in this zone.
        token: when set, requests must carry ``Authorization: Bearer <token>`` (else 401).
        certfile: PEM certificate chain; with ``keyfile`` the simulator serves HTTPS.
        keyfile: PEM private key of ``certfile``.
        drip_interval_s: seconds between the bytes of the :attr:`ErpFault.SLOW_DRIP` fault.
        send_next: serve the ``next`` key (True), or leave it out so the client has to
            continue from the last row of a full page (False).
        on_request: see :attr:`on_request`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], datetime] = _utc_now,
        timezone: str = "Europe/London",
        token: str | None = None,
        certfile: Path | str | None = None,
        keyfile: Path | str | None = None,
        drip_interval_s: float = 0.1,
        send_next: bool = True,
        on_request: Callable[[RequestRecord], object] | None = None,
    ) -> None:
        if (certfile is None) != (keyfile is None):
            raise ValueError("give both certfile and keyfile, or neither")
        self._host = host
        self._port = port
        self._now = now
        self._tz: tzinfo = ZoneInfo(timezone)
        self._token = token
        self._certfile = certfile
        self._keyfile = keyfile
        self._drip_interval_s = drip_interval_s
        self._send_next = send_next
        self._runs: dict[str, _Run] = {}
        self._fault: FaultState | None = None
        self._server: QuietServer | None = None
        self._serving: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.requests: list[RequestRecord] = []
        """Every request received, in order."""
        self.on_request: Callable[[RequestRecord], object] | None = on_request
        """Called with each request's record once the answer is settled (the page of runs
        computed) and before it is sent: what it changes shows from the next request on,
        never in this answer. Tests use it to change the ERP between two pages of a poll."""
        self.bytes_streamed = 0
        """Body bytes sent by the last streamed fault (huge or slow drip) before it stopped."""
        for raw in day_of_runs(self._now(), self._tz):
            self._add(raw)

    # ------------------------------------------------------------------ public API

    @property
    def port(self) -> int:
        """The bound TCP port (0 until started when an ephemeral port was asked for)."""
        return self._port

    @property
    def scheme(self) -> str:
        """``https`` when a certificate was given, else ``http``."""
        return "https" if self._certfile is not None else "http"

    @property
    def base_url(self) -> str:
        """``scheme://host:port``."""
        return f"{self.scheme}://{self._host}:{self._port}"

    @property
    def url(self) -> str:
        """The runs endpoint, e.g. ``http://127.0.0.1:41234/api/runs``."""
        return f"{self.base_url}{RUNS_PATH}"

    @property
    def runs(self) -> list[dict[str, object]]:
        """Copies of the runs as served (ERP field names), in ascending ``(Updated,
        RunNumber)`` order."""
        return [copy.deepcopy(run.raw) for run in self._ordered()]

    def run(self, run_number: str) -> dict[str, object]:
        """A copy of one run as served."""
        return copy.deepcopy(self._runs[run_number].raw)

    def update_run(self, run_number: str, **changes: object) -> dict[str, object]:
        """Change fields of a run (ERP field names) and bump its ``Updated``.

        Datetimes are written as the ERP writes them (naive, local); the new ``Updated`` is
        later than every other run's, so a poll from the last watermark picks the run up.
        A field that does not exist yet is added (schema drift). Returns the new row.
        """
        run = self._runs[run_number]
        for key, value in changes.items():
            run.raw[key] = self._wire(value)
        latest = max(r.updated for r in self._runs.values())
        run.updated = max(_to_ms(self._now()), latest + timedelta(milliseconds=10))
        run.raw["Updated"] = self._local(run.updated, timespec="milliseconds")
        return copy.deepcopy(run.raw)

    def add_run(self, raw: dict[str, object]) -> None:
        """Add a run (ERP field names; ``Updated`` as the ERP would write it, or an aware
        datetime, or absent for "now")."""
        self._add(dict(raw))

    def set_down(self, down: bool) -> None:
        """Answer every request with 503 (``True``) or serve normally again (``False``)."""
        self.set_fault(ErpFault.DOWN if down else None)

    def set_fault(
        self, fault: ErpFault | None, *, times: int | None = None, retry_after: str = "1"
    ) -> None:
        """Serve ``fault`` to the next ``times`` requests (all of them if None); None clears.

        ``retry_after`` is the ``Retry-After`` value of :attr:`ErpFault.RATE_LIMITED`
        (seconds or an HTTP-date, RFC 9110 §10.2.3).
        """
        if fault is None:
            self._fault = None
            return
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        self._fault = FaultState(ErpFault(fault), times, retry_after)

    @property
    def methods_seen(self) -> set[str]:
        """Every HTTP method received so far (the gateway must only ever send GET)."""
        return {record.method for record in self.requests}

    async def start(self) -> None:
        """Bind the port and serve until :meth:`stop`."""
        if self._server is not None:
            return
        sock = bind_tcp(self._host, self._port)
        self._port = int(sock.getsockname()[1])
        self._stopping.clear()
        self._server, self._serving = await serve_in_background(
            self,
            sock,
            certfile=self._certfile,
            keyfile=self._keyfile,
            name=f"simulator[erp:{self._port}].serve",
        )
        log.info("ERP simulator serving %s", self.url)

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        server, serving = self._server, self._serving
        self._server = self._serving = None
        if server is None or serving is None:
            return
        self._stopping.set()
        server.should_exit = True
        await serving

    # ------------------------------------------------------------------ the ASGI app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application (HTTP only)."""
        if scope["type"] != "http":
            return
        method = str(scope["method"])
        path = str(scope["path"])
        query = dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1")))
        authorization = None
        for name, value in scope.get("headers", []):
            if bytes(name).lower() == b"authorization":
                authorization = bytes(value).decode("latin-1")
        fault = self._take_fault()
        record = RequestRecord(method, path, query, authorization, fault.fault if fault else None)
        self.requests.append(record)
        answer = self._answer(record, fault, scope, receive)
        if self.on_request is not None:
            self.on_request(record)
        await answer(send)

    def _answer(
        self, record: RequestRecord, fault: FaultState | None, scope: Scope, receive: Receive
    ) -> Callable[[Send], Awaitable[None]]:
        """Settle the answer to a request (the page of runs is computed here, now)."""
        if record.path != RUNS_PATH:
            missing = {"error": f"no such resource {record.path}"}
            return lambda send: respond_json(send, 404, missing)
        if record.method != "GET":
            return lambda send: respond_json(
                send, 405, {"error": "read-only"}, [(b"allow", b"GET")]
            )
        if self._token is not None and record.authorization != f"Bearer {self._token}":
            return lambda send: respond_json(send, 401, {"error": "unauthorized"})
        if fault is not None and fault.fault not in PAGE_FAULTS:
            return lambda send: self._serve_fault(fault, scope, receive, send)
        try:
            page = self._page(record.query)
        except ValueError as exc:
            problem = {"error": str(exc)}
            return lambda send: respond_json(send, 400, problem)
        if fault is not None:
            return lambda send: serve_page_fault(fault.fault, page, send)
        return lambda send: respond_json(send, 200, page)

    # ------------------------------------------------------------------ internals

    def _take_fault(self) -> FaultState | None:
        state = self._fault
        if state is None:
            return None
        if state.remaining is not None:
            state.remaining -= 1
            if state.remaining <= 0:
                self._fault = None
        return state

    def _page(self, query: dict[str, str]) -> dict[str, object]:
        """One keyset page (a deep copy: later changes to the runs do not reach it)."""
        if "page" in query:
            raise ValueError(
                "page numbers are not served: page with updated_since and after_run (keyset)"
            )
        try:
            page_size = int(query.get("page_size", "500"))
        except ValueError:
            raise ValueError("page_size must be an integer") from None
        if not 1 <= page_size <= 10_000:
            raise ValueError("page_size must be within 1..10000")
        runs = self._ordered()
        since_text = query.get("updated_since")
        after_run = query.get("after_run")
        if after_run is not None and not since_text:
            raise ValueError("after_run needs updated_since")
        if since_text:
            try:
                since = datetime.fromisoformat(since_text)
            except ValueError:
                raise ValueError(f"updated_since {since_text!r} is not ISO 8601") from None
            if since.tzinfo is None:
                since = since.replace(tzinfo=self._tz)
            if after_run is None:
                runs = [run for run in runs if run.updated > since]
            else:
                runs = [run for run in runs if run.key > (since, after_run)]
        chunk = runs[:page_size]
        body: dict[str, object] = {"runs": [copy.deepcopy(run.raw) for run in chunk]}
        if self._send_next:
            last = chunk[-1] if len(runs) > page_size else None
            body["next"] = (
                {
                    "updated_since": last.updated.astimezone(self._tz).isoformat(
                        timespec="milliseconds"
                    ),
                    "after_run": last.number,
                }
                if last is not None
                else None
            )
        return body

    def _ordered(self) -> list[_Run]:
        return sorted(self._runs.values(), key=lambda run: run.key)

    def _add(self, raw: dict[str, object]) -> None:
        stamp = raw.get("Updated")
        if isinstance(stamp, datetime):
            updated = stamp if stamp.tzinfo else stamp.replace(tzinfo=self._tz)
        elif isinstance(stamp, str):
            parsed = datetime.fromisoformat(stamp)
            updated = parsed if parsed.tzinfo else parsed.replace(tzinfo=self._tz)
        else:
            updated = self._now()
        updated = _to_ms(updated)
        wired = {key: self._wire(value) for key, value in raw.items()}
        wired["Updated"] = self._local(updated, timespec="milliseconds")
        self._runs[str(raw["RunNumber"])] = _Run(wired, updated)

    def _local(self, moment: datetime, *, timespec: str = "seconds") -> str:
        """A naive local date-time string, as the ERP writes its columns."""
        return moment.astimezone(self._tz).replace(tzinfo=None).isoformat(timespec=timespec)

    def _wire(self, value: object) -> object:
        if isinstance(value, datetime):
            return self._local(value if value.tzinfo else value.replace(tzinfo=self._tz))
        return value

    async def _serve_fault(
        self, state: FaultState, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A fault whose answer does not depend on the runs."""
        fault = state.fault
        if fault is ErpFault.DOWN:
            await respond_json(send, 503, {"error": "ERP maintenance"})
        elif fault is ErpFault.SERVER_ERROR:
            await respond(send, 500, b"Internal Server Error", b"text/plain")
        elif fault is ErpFault.RATE_LIMITED:
            await respond_json(
                send,
                429,
                {"error": "too many requests"},
                [(b"retry-after", state.retry_after.encode("latin-1"))],
            )
        elif fault is ErpFault.HTML_LOGIN:
            await respond(send, 200, LOGIN_PAGE, b"text/html; charset=utf-8")
        elif fault is ErpFault.WRONG_SHAPE:
            await respond_json(send, 200, {"data": {"items": []}, "version": 2})
        elif fault in (ErpFault.HUGE, ErpFault.HUGE_CHUNKED):
            await self._stream_huge(send, receive, declared=fault is ErpFault.HUGE)
        elif fault is ErpFault.SLOW_DRIP:
            await self._drip(send, receive)
        elif fault is ErpFault.REDIRECT_HTTP:
            server = scope.get("server") or (self._host, self._port)
            location = f"http://{server[0]}:{server[1]}{RUNS_PATH}".encode()
            await respond(send, 302, b"", b"text/plain", [(b"location", location)])

    async def _stream_huge(self, send: Send, receive: Receive, *, declared: bool) -> None:
        headers = [(b"content-type", b"application/json")]
        if declared:
            headers.append((b"content-length", str(HUGE_BYTES).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.bytes_streamed = 0
        async with DisconnectWatch(receive) as gone:
            prefix = b'{"runs": [' + b" " * (CHUNK_BYTES - 10)
            chunk = prefix
            while self.bytes_streamed < HUGE_BYTES and not gone.is_set():
                chunk = chunk[: HUGE_BYTES - self.bytes_streamed]
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self.bytes_streamed += len(chunk)
                chunk = b" " * CHUNK_BYTES
                await asyncio.sleep(0)  # let the disconnect watcher run
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _drip(self, send: Send, receive: Receive) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        self.bytes_streamed = 0
        loop = asyncio.get_running_loop()
        give_up = loop.time() + DRIP_MAX_S
        async with DisconnectWatch(receive) as gone:
            body = b'{"runs": [' + b" " * 1_000_000
            for byte in body:
                if gone.is_set() or self._stopping.is_set() or loop.time() > give_up:
                    break
                await send({"type": "http.response.body", "body": bytes([byte]), "more_body": True})
                self.bytes_streamed += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._drip_interval_s):
                        await gone.wait()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
