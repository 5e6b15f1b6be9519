"""Production runs from the ERP's JSON endpoint, read-only, hardened against garbage.

For ERP developers the contract is docs/erp-contract.md, with its JSON Schema in
adapters/erp/erp-runs.schema.json (``lineside erp-check URL`` checks an endpoint against it).

The wire contract (what :class:`HttpErpSource` asks and what it accepts)::

    GET {url}?updated_since=<ISO 8601>&after_run=<RunNumber>&page_size=<k>
    Authorization: Bearer <token>        (only when a token is configured)
    Accept: application/json

    200 OK
    Content-Type: application/json      (or any application/*+json, RFC 6839)

    {"runs": [ {...run...}, ... ],
     "next": {"updated_since": "2026-01-05T09:40:00.000+00:00", "after_run": "260105-L1-02"}}
    {"runs": [ ... ], "next": null}                    the last page
    [ {...run...}, ... ]                                a bare list: the whole answer, no paging

Paging is by KEYSET on the composite key ``(Updated, RunNumber)``, never by page number.
The server returns the runs whose ``(Updated, RunNumber)`` is strictly greater than
``(updated_since, after_run)``; without ``after_run``, those with ``Updated >
updated_since``; without either, every run. They come in ascending ``(Updated, RunNumber)``
order, at most ``page_size`` of them, with ``next`` holding the key of the last run served
(to be sent back as it is), or null when no more runs follow (always when the page was not
full). The first request of a poll sends the stored watermark, in the ERP's time zone with
its UTC offset (``2026-01-05T06:30:00+00:00``), and no ``after_run``; a full reload sends
neither.

Why a keyset: with page numbers, a run of an earlier page that the ERP updates between two
page requests moves to the end of the ordering, every later run shifts one place earlier,
and the first run of the next page is never served; the poll's new watermark is then above
it, so it is lost for good. Runs sharing one ``Updated`` across a page boundary are a second
hazard. A keyset position does not move when rows change: a run updated mid-poll is simply
served again further on (only its newest version is returned, see
:meth:`HttpErpSource.fetch_changed`), and the ``RunNumber`` tie-break resumes exactly
inside a group of equal ``Updated``.

How the client follows pages:

* ``next`` present: it is followed, sent back verbatim (the server reads its own
  date-time format). It must be an object with ``updated_since`` (an ISO 8601 date-time;
  without an offset it is read in the ERP's zone) and ``after_run`` (text or an integer).
* ``next`` absent from the object, and the page full (``page_size`` runs or more): the
  client derives the key itself from the last row's ``Updated`` and ``RunNumber`` (verbatim
  again); a last row without both is :class:`ErpDataError`. Absent and the page not full:
  the last page. The server's ``next`` is preferred whenever it is given.
* ``next_page`` (the former page-number contract) without ``next`` is :class:`ErpDataError`:
  such a server ignores ``after_run`` and would lose runs again.
* Every key must move forward, so a confused server cannot make the poll loop: a key whose
  ``updated_since`` is earlier than the one just sent is :class:`ErpDataError` ("goes
  backwards"); an equal ``updated_since`` is accepted only with an ``after_run`` not already
  sent at that instant, and never after a request without ``after_run`` ("does not move
  forward"). ``after_run`` values are not compared with each other, because the order of
  run numbers is the ERP's collation, which the client does not know.

Each run object is parsed by :func:`gateway.core.runs.parse_run`, which documents the
field names.

What the gateway does with everything else (docs/reference/reliability.md §7 row 15, "ERP returns
garbage"):

* Only GET is ever sent. :meth:`HttpErpSource._get` is the one place a request is made, and
  a request hook on the client refuses any other method before it reaches the wire.
* A redirect is never followed (a login redirect or an https→http downgrade would hand
  the token to someone else): :class:`ErpRefused` naming the ``Location``.
* 401/403: :class:`ErpRefused` (retrying cannot fix a credential). Other 4xx:
  :class:`ErpDataError`. 429, 5xx, timeouts and lost connections: retried with capped,
  jittered exponential backoff, honouring ``Retry-After`` (RFC 9110 §10.2.3), up to
  ``retries`` times per request, then :class:`ErpUnavailable`.
* A TLS failure (unknown CA, wrong host name, expired certificate): :class:`ErpRefused`,
  never retried and never retried without verification.
* The body must be declared JSON (an HTML login page served with 200 is
  :class:`ErpDataError`), at most ``max_response_bytes`` long (``Content-Length`` is checked
  first, then the streamed bytes are counted, so a 10 MB body is never held in memory),
  well-formed JSON without NaN/Infinity, and of the shape above; a wrong top-level shape
  is :class:`ErpDataError`. A wrong row becomes a :class:`RunRejection` with its reasons and
  the good rows are still returned.
* The whole poll (every page, every retry and every wait) has one deadline,
  ``total_timeout_s``: a server dripping one byte a second is cut off there.

No httpx exception leaves this module: each is translated into the
:mod:`gateway.core.errors` tree with ``raise ... from`` so the cause is kept.

The keyset paging is :mod:`adapters.erp.keyset`, the body checks
:mod:`adapters.erp.http_body`, the retry policy :mod:`adapters.erp.http_retry`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from adapters.erp.http_body import HttpErpStats, read_json_body
from adapters.erp.http_retry import RetryAfterWait, StopAtDeadline, _Transient
from adapters.erp.keyset import (
    Page,
    PageKey,
    check_forward,
    key_after,
    newest_only,
    page_of,
    updated_of,
)
from adapters.erp.source import FetchResult
from gateway.config import HttpErp
from gateway.core.backoff import Backoff
from gateway.core.errors import ErpDataError, ErpError, ErpRefused, ErpUnavailable
from gateway.core.retry_after import parse_retry_after
from gateway.core.runs import ProductionRun, RunRejection, parse_run

__all__ = ["HttpErpSource", "HttpErpStats", "RetryAfterWait"]

log = logging.getLogger(__name__)

USER_AGENT: Final = "lineside-erp/0.1"

# Backoff between retries when the ERP gives no Retry-After: the house policy
# (gateway/core/backoff.py), starting at half a second and never above 30 s.
_BACKOFF_INITIAL_S: Final = 0.5
_BACKOFF_MAX_S: Final = 30.0


# --------------------------------------------------------------------------------------
# The source


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _refuse_non_get(request: httpx.Request) -> None:
    """Request hook: the gateway never writes to the ERP, so nothing but GET leaves."""
    if request.method != "GET":
        raise ErpRefused(f"refusing to send {request.method} to the ERP: the gateway is read-only")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The ssl error behind an httpx connect error, if the handshake is what failed."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


class HttpErpSource:
    """Reads changed production runs from the ERP's JSON endpoint (only ever with GET).

    Args:
        config: the ``[erp]`` section (``kind = "http"``).
        transport: an httpx transport to use instead of the network (unit tests).
        sleep: the coroutine that waits between retries (tests inject a recorder to
            observe the computed waits without sleeping).
        now: the wall clock, used only to turn a ``Retry-After`` HTTP-date into seconds.
        rng: the random source of the backoff jitter.

    Raises:
        ErpRefused: a bearer token would be sent in clear text (``http://`` to a host that is
            not the loopback interface).
    """

    def __init__(
        self,
        config: HttpErp,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.stats = HttpErpStats()
        self._sleep = sleep
        self._now = now
        self._rng = rng
        self._tz: tzinfo = ZoneInfo(config.timezone)
        parts = urlsplit(config.url)
        self._host = parts.hostname or ""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if config.token is not None:
            if parts.scheme != "https" and not _is_loopback(self._host):
                raise ErpRefused(
                    f"refusing to send the ERP bearer token in clear text to {self._host}: "
                    "use an https:// url"
                )
            # httpx masks Authorization in its reprs; this module never logs headers.
            headers["Authorization"] = f"Bearer {config.token.get_secret_value()}"
        # Verify against the configured CA, or the system's trust store (not certifi's):
        # the site's IT manages the box's CAs. Python ≥ 3.10 refuses TLS < 1.2 here.
        verify = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file is not None else None
        )
        self._client = httpx.AsyncClient(
            headers=headers,
            verify=verify,
            # Per phase: connect, then between two reads of the response. Sending a GET
            # and waiting for a pooled connection are bounded like connecting.
            timeout=httpx.Timeout(
                connect=config.connect_timeout_s,
                read=config.read_timeout_s,
                write=config.connect_timeout_s,
                pool=config.connect_timeout_s,
            ),
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            # Redirects are answered by us (ErpRefused), never followed.
            follow_redirects=False,
            # No proxies, .netrc credentials or SSL_CERT_FILE from the environment: what is
            # sent, and to whom, is decided by the config file alone.
            trust_env=False,
            event_hooks={"request": [_refuse_non_get]},
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"HttpErpSource(url={self.config.url!r})"

    # ------------------------------------------------------------------ public API

    async def fetch_changed(self, watermark: datetime | None) -> FetchResult:
        """Fetch every page of runs with ``Updated > watermark`` (None: a full reload).

        Returns the parsed runs, the rejected rows with their reasons, and the highest
        ``Updated`` seen (rejected rows included when their ``Updated`` is readable), or the
        watermark passed in when nothing newer came. A run the ERP changed while the poll
        was paging is served twice (before and after its change); only its last, newest
        occurrence is kept, in the position it was served.

        Raises:
            ErpUnavailable: the ERP could not be reached or kept failing (after retries), or
                the whole poll overran ``total_timeout_s``.
            ErpRefused: 401/403, a redirect, a TLS failure: retrying cannot help.
            ErpDataError: the ERP answered with something that is not a valid response.
        """
        if watermark is not None and watermark.tzinfo is None:
            # A naive watermark is read in the ERP's zone, like the ERP's own date-times.
            watermark = watermark.replace(tzinfo=self._tz)
        total = self.config.total_timeout_s
        try:
            async with asyncio.timeout(total) as deadline:
                return await self._poll(watermark, deadline)
        except TimeoutError as exc:
            raise ErpUnavailable(
                f"ERP poll of {self._host} did not finish within its {total:g} s deadline "
                "(slow or stalled response)"
            ) from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    # ------------------------------------------------------------------ internals

    async def _poll(self, watermark: datetime | None, deadline: asyncio.Timeout) -> FetchResult:
        result = FetchResult(watermark=watermark)
        key: PageKey | None = None
        if watermark is not None:
            key = PageKey(watermark.astimezone(self._tz).isoformat(), None, watermark)
        # The after_run values already sent with key.at: an equal updated_since must come
        # with a new one, or the server is leading the poll round in a circle.
        sent_at_instant: set[str] = set()
        while True:
            params = {"page_size": str(self.config.page_size)}
            if key is not None:
                params["updated_since"] = key.updated_since
                if key.after_run is not None:
                    params["after_run"] = key.after_run
            fetched = await self._get_with_retries(params, deadline)
            for row in fetched.rows:
                self._take_row(row, result)
            following = fetched.next
            if following is None:
                if not fetched.derive or len(fetched.rows) < self.config.page_size:
                    break
                following = key_after(fetched.rows[-1], self._tz)
            check_forward(key, following, sent_at_instant)
            if key is None or following.at > key.at:
                sent_at_instant.clear()
            if following.after_run is not None:
                sent_at_instant.add(following.after_run)
            key = following
        result.runs = newest_only(result.runs)
        return result

    def _take_row(self, row: object, result: FetchResult) -> None:
        if not isinstance(row, Mapping):
            result.rejected.append(
                RunRejection(
                    raw={"row": row},
                    reasons=(f"a run must be a JSON object, not {type(row).__name__}",),
                )
            )
            return
        parsed = parse_run(row, tz=self._tz)
        if isinstance(parsed, ProductionRun):
            result.runs.append(parsed)
            updated: datetime | None = parsed.updated
        else:
            result.rejected.append(parsed)
            updated = updated_of(row, self._tz)
        if updated is not None and (result.watermark is None or updated > result.watermark):
            result.watermark = updated

    async def _get_with_retries(self, params: Mapping[str, str], deadline: asyncio.Timeout) -> Page:
        attempts = self.config.retries + 1
        at_deadline = StopAtDeadline(deadline)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts) | at_deadline,
            wait=RetryAfterWait(
                Backoff(initial=_BACKOFF_INITIAL_S, maximum=_BACKOFF_MAX_S, rng=self._rng)
            ),
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            return await retrying(self._get, params)
        except _Transient as exc:
            if at_deadline.tripped and exc.retry_after is not None:
                message = (
                    f"ERP {self._host}: {exc}; it asks to retry after {exc.retry_after:g} s, "
                    "beyond this poll's deadline"
                )
            elif at_deadline.tripped:
                message = f"ERP {self._host}: {exc}; no time left in this poll to retry"
            else:
                message = f"ERP {self._host}: {exc} (gave up after {attempts} attempt(s))"
            raise ErpUnavailable(message) from (exc.__cause__ or exc)

    def _before_retry(self, retry_state: RetryCallState) -> None:
        self.stats.retries += 1
        outcome = retry_state.outcome
        reason = outcome.exception() if outcome is not None else None
        log.warning(
            "ERP %s: %s; retry %d/%d in %.2f s",
            self._host,
            reason,
            retry_state.attempt_number,
            self.config.retries,
            retry_state.upcoming_sleep,
        )

    async def fetch_first_page(self) -> object:
        """The decoded JSON of the first page of a full reload, unchecked (``lineside erp-check``).

        One GET with the poll's client, status handling and size bound, and no retries: a
        contract check wants the first answer as it is. Raises as :meth:`fetch_changed`.
        """
        try:
            async with asyncio.timeout(self.config.total_timeout_s):
                return await self._get_body({"page_size": str(self.config.page_size)})
        except _Transient as exc:
            raise ErpUnavailable(f"ERP {self._host}: {exc}") from (exc.__cause__ or exc)
        except TimeoutError as exc:
            raise ErpUnavailable(
                f"ERP {self._host} did not answer within {self.config.total_timeout_s:g} s"
            ) from exc

    async def _get(self, params: Mapping[str, str]) -> Page:
        """One GET, read as a page of runs."""
        return page_of(await self._get_body(params), self._tz)

    async def _get_body(self, params: Mapping[str, str]) -> object:
        """Send one GET and decode its body: the only place this module makes a request."""
        self.stats.requests += 1
        try:
            async with self._client.stream("GET", self.config.url, params=params) as response:
                self._check_status(response)
                body = await read_json_body(response, self.stats, self.config.max_response_bytes)
        except httpx.TimeoutException as exc:
            raise _Transient(f"timed out ({type(exc).__name__})") from exc
        except httpx.ConnectError as exc:
            tls = _tls_failure(exc)
            if tls is not None:
                why = getattr(tls, "verify_message", None) or tls
                raise ErpRefused(f"TLS with the ERP {self._host} failed: {why}") from exc
            raise _Transient(f"cannot connect ({exc})") from exc
        except httpx.UnsupportedProtocol as exc:
            raise ErpRefused(f"ERP url {self.config.url!r} is not usable: {exc}") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            # The connection dropped or the server broke off mid-message: try again.
            raise _Transient(f"connection lost ({type(exc).__name__}: {exc})") from exc
        except httpx.DecodingError as exc:
            raise ErpDataError(f"ERP body cannot be decoded ({exc})") from exc
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise ErpError(f"ERP request failed ({type(exc).__name__}: {exc})") from exc
        return body

    def _check_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("location", "(no Location)")
            downgrade = (
                " (a downgrade from https to http)"
                if response.url.scheme == "https" and location.lower().startswith("http://")
                else ""
            )
            raise ErpRefused(
                f"ERP answered {status} redirecting to {location}{downgrade}; "
                "redirects are not followed (the token must not go elsewhere)"
            )
        if status in (401, 403):
            raise ErpRefused(f"ERP refused the request: {status} {response.reason_phrase}")
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=self._now())
            raise _Transient(f"{status} {response.reason_phrase}", retry_after=retry_after)
        if status != 200:
            raise ErpDataError(f"ERP answered {status} {response.reason_phrase}, expected 200")
