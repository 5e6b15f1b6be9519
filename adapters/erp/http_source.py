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

Each run object is parsed by :func:`adapters.erp.model.parse_run`, which documents the
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
:mod:`adapters.erp.errors` tree with ``raise ... from`` so the cause is kept.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Final, NoReturn
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from adapters.erp.errors import ErpDataError, ErpError, ErpRefused, ErpUnavailable
from adapters.erp.model import ProductionRun, RunRejection, coerce_datetime, parse_run
from adapters.erp.source import FetchResult
from gateway.backoff import Backoff
from gateway.config import HttpErp

__all__ = ["HttpErpSource", "HttpErpStats", "RetryAfterWait", "parse_retry_after"]

log = logging.getLogger(__name__)

USER_AGENT: Final = "lineside-erp/0.1"

# Backoff between retries when the ERP gives no Retry-After: the house policy
# (gateway/backoff.py), starting at half a second and never above 30 s.
_BACKOFF_INITIAL_S: Final = 0.5
_BACKOFF_MAX_S: Final = 30.0

# How much of a non-JSON body is read to describe it in the error (it is never parsed).
_SNIFF_BYTES: Final = 2048

_HTML_LOGIN_HINTS: Final = (b"login", b"log in", b"sign in", b"signin", b"password", b"sso")

# RFC 9110 §10.2.3: delay-seconds = 1*DIGIT (ASCII digits only; str.isdigit accepts more).
_DELAY_SECONDS = re.compile(r"[0-9]+")

# parse_run matches keys on their lower-case letters and digits only ("Updated", "UPDATED").
_KEY_NOISE = re.compile(r"[^0-9a-z]+")


# --------------------------------------------------------------------------------------
# Retry-After and the retry wait


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header, or None if absent or invalid.

    RFC 9110 §10.2.3: the value is either ``delay-seconds`` (a non-negative integer) or an
    ``HTTP-date`` (always GMT); a date in the past means "now" (0 s). ``now`` must be aware.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # An HTTP-date is GMT by definition (RFC 9110 §5.6.7); "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class _Transient(Exception):
    """One attempt failed in a way another attempt may not: 429, 5xx, timeout, lost link.

    Internal to this module: the retry loop turns the last one into :class:`ErpUnavailable`.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryAfterWait(wait_base):
    """A tenacity wait: the server's ``Retry-After`` when it gave one, else jittered backoff.

    Honouring ``Retry-After`` is what RFC 9110 §10.2.3 (and RFC 6585 §4 for 429) asks of a
    client; without it, the capped exponential backoff with jitter of
    :class:`gateway.backoff.Backoff` spreads the retries of many gateways.

    Args:
        backoff: the backoff used when the server did not say how long to wait.
    """

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        """The delay before the next attempt."""
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        # Advance the backoff either way, so a later failure without Retry-After still
        # waits longer than the one before it.
        delay = self.backoff.next_delay()
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        return delay


class _StopAtDeadline(stop_base):
    """Stop retrying when the next wait would end after the poll's deadline.

    Sleeping into the deadline would only turn an honest "ERP asks to wait N s" into a
    vague timeout, so the poll gives up at once with the server's answer.
    """

    def __init__(self, deadline: asyncio.Timeout) -> None:
        self.deadline = deadline
        self.tripped = False

    def __call__(self, retry_state: RetryCallState) -> bool:
        when = self.deadline.when()
        if when is None:
            return False
        remaining = when - asyncio.get_running_loop().time()
        self.tripped = retry_state.upcoming_sleep >= remaining
        return self.tripped


# --------------------------------------------------------------------------------------
# The source


@dataclass(slots=True)
class HttpErpStats:
    """Counters for diagnostics and tests."""

    requests: int = 0
    """GET requests sent (each page and each retry counts)."""
    retries: int = 0
    """Retries after a transient failure."""
    last_body_bytes: int = 0
    """Body bytes read from the last response (the memory the body could take)."""
    max_body_bytes: int = 0
    """The most body bytes read from any one response."""


@dataclass(frozen=True, slots=True)
class _Key:
    """A keyset position ``(Updated, RunNumber)``: everything after it is asked for next."""

    updated_since: str
    """``Updated`` as it goes on the wire (the server's own text, sent back verbatim)."""
    after_run: str | None
    """The run number tie-break; None only for the watermark a poll starts from."""
    at: datetime
    """``updated_since`` read as an aware date-time, to check that paging moves forward."""

    def __str__(self) -> str:
        return f"(updated_since={self.updated_since!r}, after_run={self.after_run!r})"


@dataclass(frozen=True, slots=True)
class _Page:
    rows: list[object]
    next: _Key | None
    """The server's ``next`` key, or None: the last page, or (``derive``) unsaid."""
    derive: bool = False
    """The server said nothing about paging: a full page continues after its last row."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _newest_only(runs: list[ProductionRun]) -> list[ProductionRun]:
    """Keep the last occurrence of each run number: later in keyset order is newer."""
    last = {run.run_number: index for index, run in enumerate(runs)}
    if len(last) == len(runs):
        return runs
    return [run for index, run in enumerate(runs) if last[run.run_number] == index]


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


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json_media_type(media_type: str) -> bool:
    # application/json, or a structured syntax suffix such as application/problem+json
    # (RFC 6839 §3.1).
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _reject_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON (RFC 8259 §6); Python's json accepts them by default.
    raise ValueError(f"{name} is not a JSON number")


def _describe_non_json(media_type: str, head: bytes) -> str:
    """A short, operator-friendly description of a body that should have been JSON."""
    lowered = head.lower()
    shown = media_type or "(none)"
    if media_type in ("text/html", "application/xhtml+xml") or lowered.lstrip().startswith(
        (b"<!doctype html", b"<html", b"<")
    ):
        title = re.search(rb"<title[^>]*>(.*?)</title>", head, re.IGNORECASE | re.DOTALL)
        titled = ""
        if title:
            text = title.group(1).decode("utf-8", "replace").strip()[:80]
            titled = f", title {text!r}"
        what = (
            "an HTML login page"
            if any(hint in lowered for hint in _HTML_LOGIN_HINTS)
            else "an HTML page"
        )
        return f"not JSON: looks like {what} (Content-Type {shown}{titled})"
    return f"not JSON: Content-Type is {shown}"


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
        key: _Key | None = None
        if watermark is not None:
            key = _Key(watermark.astimezone(self._tz).isoformat(), None, watermark)
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
                following = self._key_after(fetched.rows[-1])
            self._check_forward(key, following, sent_at_instant)
            if key is None or following.at > key.at:
                sent_at_instant.clear()
            if following.after_run is not None:
                sent_at_instant.add(following.after_run)
            key = following
        result.runs = _newest_only(result.runs)
        return result

    @staticmethod
    def _check_forward(key: _Key | None, following: _Key, sent_at_instant: set[str]) -> None:
        """Refuse a next key that does not lie after the one just sent."""
        if key is None:
            return
        if following.at < key.at:
            raise ErpDataError(f"ERP paging goes backwards: next {following} after {key}")
        if following.at == key.at and (
            key.after_run is None
            or following.after_run is None
            or following.after_run in sent_at_instant
        ):
            raise ErpDataError(
                f"ERP paging does not move forward: next {following} after {key}; "
                "stopping so the poll cannot loop"
            )

    def _key_after(self, row: object) -> _Key:
        """The key of a page's last row, when the server gave no ``next`` (see module doc)."""
        updated: object = None
        run_number: object = None
        if isinstance(row, Mapping):
            for name, value in row.items():
                normal = _KEY_NOISE.sub("", str(name).lower())
                if normal == "updated":
                    updated = value
                elif normal == "runnumber":
                    run_number = value
        try:
            return self._key_of(updated, run_number)
        except ErpDataError as exc:
            raise ErpDataError(
                f"ERP sent a full page without 'next', and its last row gives no key to "
                f"continue from: {exc}"
            ) from None

    def _key_of(self, updated: object, run_number: object) -> _Key:
        if not isinstance(updated, str) or not updated.strip():
            raise ErpDataError(f"updated_since must be an ISO 8601 date-time, not {updated!r}")
        try:
            at = coerce_datetime(updated, self._tz)
        except (ValueError, TypeError, OverflowError):
            raise ErpDataError(f"updated_since {updated!r} is not an ISO 8601 date-time") from None
        if isinstance(run_number, int) and not isinstance(run_number, bool):
            after_run = str(run_number)
        elif isinstance(run_number, str) and run_number.strip():
            after_run = run_number
        else:
            raise ErpDataError(f"after_run must be a run number, not {run_number!r}")
        return _Key(updated, after_run, at)

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
            updated = self._updated_of(row)
        if updated is not None and (result.watermark is None or updated > result.watermark):
            result.watermark = updated

    def _updated_of(self, row: Mapping[str, object]) -> datetime | None:
        """The readable ``Updated`` of a rejected row, so the watermark moves past it.

        The ErpSource contract: a garbage row is not fetched again on every poll; it comes
        back when the ERP changes it (and bumps its ``Updated``).
        """
        for key, value in row.items():
            if _KEY_NOISE.sub("", str(key).lower()) == "updated":
                try:
                    return coerce_datetime(value, self._tz)
                except (ValueError, TypeError, OverflowError):
                    return None
        return None

    async def _get_with_retries(
        self, params: Mapping[str, str], deadline: asyncio.Timeout
    ) -> _Page:
        attempts = self.config.retries + 1
        at_deadline = _StopAtDeadline(deadline)
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

    async def _get(self, params: Mapping[str, str]) -> _Page:
        """One GET, read as a page of runs."""
        return self._page_of(await self._get_body(params))

    async def _get_body(self, params: Mapping[str, str]) -> object:
        """Send one GET and decode its body: the only place this module makes a request."""
        self.stats.requests += 1
        try:
            async with self._client.stream("GET", self.config.url, params=params) as response:
                self._check_status(response)
                body = await self._read_json_body(response)
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

    async def _read_json_body(self, response: httpx.Response) -> object:
        limit = self.config.max_response_bytes
        media_type = _media_type(response.headers.get("content-type"))
        if not _is_json_media_type(media_type):
            head = await self._read_bounded(response, _SNIFF_BYTES, truncate=True)
            raise ErpDataError(_describe_non_json(media_type, head))
        declared = response.headers.get("content-length")
        if declared is not None and declared.isascii() and declared.strip().isdigit():
            size = int(declared)
            if size > limit:
                self.stats.last_body_bytes = 0
                raise ErpDataError(
                    f"ERP response of {size} bytes exceeds max_response_bytes {limit}; not read"
                )
        body = await self._read_bounded(response, limit, truncate=False)
        try:
            return json.loads(body, parse_constant=_reject_constant)
        except UnicodeDecodeError as exc:
            raise ErpDataError(f"not JSON: the body is not UTF-8 text ({exc.reason})") from exc
        except RecursionError as exc:
            # json.loads recurses per nesting level: "[[[[..." a few hundred kB long is
            # enough to exhaust the stack, and must not crash the poller.
            raise ErpDataError("ERP body is JSON nested too deeply to be a run list") from exc
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            hint = " (truncated?)" if "Expecting" in str(exc) or "Unterminated" in str(exc) else ""
            if body.lstrip().startswith(b"<"):
                raise ErpDataError(_describe_non_json("text/html", body[:_SNIFF_BYTES])) from exc
            raise ErpDataError(
                f"ERP body is not valid JSON{hint}: {exc} ({len(body)} bytes)"
            ) from exc

    async def _read_bounded(self, response: httpx.Response, limit: int, *, truncate: bool) -> bytes:
        """Read at most ``limit`` decoded bytes; past it, stop (``truncate``) or refuse.

        Counting decoded bytes also bounds a compressed body that inflates (a gzip bomb).
        """
        chunks: list[bytes] = []
        count = 0
        try:
            async for chunk in response.aiter_bytes():
                count += len(chunk)
                self.stats.last_body_bytes = count
                self.stats.max_body_bytes = max(self.stats.max_body_bytes, count)
                if count > limit:
                    if truncate:
                        chunks.append(chunk[: len(chunk) - (count - limit)])
                        break
                    raise ErpDataError(
                        f"ERP response exceeds max_response_bytes {limit}; "
                        f"stopped reading after {count} bytes"
                    )
                chunks.append(chunk)
        finally:
            # Leaving the stream early closes the connection instead of draining it.
            self.stats.last_body_bytes = count
        return b"".join(chunks)

    def _page_of(self, body: object) -> _Page:
        if isinstance(body, list):
            return _Page(rows=body, next=None)
        if not isinstance(body, dict):
            raise ErpDataError(
                f"ERP response must be an object with 'runs' or a list, not {type(body).__name__}"
            )
        rows = body.get("runs")
        if not isinstance(rows, list):
            keys = ", ".join(sorted(map(str, body))[:10]) or "none"
            raise ErpDataError(
                f"ERP response has no 'runs' list (keys: {keys}; runs is {type(rows).__name__})"
            )
        if "next" not in body:
            next_page = body.get("next_page")
            if next_page is not None:
                raise ErpDataError(
                    f"ERP pages by number (next_page {next_page!r}); the gateway needs keyset "
                    "paging ('next' with updated_since and after_run), which cannot lose runs"
                )
            return _Page(rows=rows, next=None, derive=True)
        following = body["next"]
        if following is None:
            return _Page(rows=rows, next=None)
        if not isinstance(following, dict):
            raise ErpDataError(
                f"ERP next must be an object with updated_since and after_run, or null, "
                f"not {type(following).__name__}"
            )
        try:
            key = self._key_of(following.get("updated_since"), following.get("after_run"))
        except ErpDataError as exc:
            raise ErpDataError(f"ERP next key is unusable: {exc}") from None
        return _Page(rows=rows, next=key)
