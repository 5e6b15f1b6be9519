"""Store-and-forward to the warehouse over HTTPS: ``POST /v1/ingest``, one batch at a time.

Delivery rule (the same as the MQTT uplink's)
---------------------------------------------
A record leaves the outbox only when the ingest's ``200`` answer (an
:func:`sync.protocol.encode_ack` JSON body) lists it as committed. Batches are taken from the
outbox in priority order (alerts → compliance → telemetry) and POSTed as
:func:`~sync.protocol.encode_batch` bytes with ``Content-Encoding: deflate`` and
``Idempotency-Key: <batch_id>`` (docs/reference/reliability.md §3.4). Until a batch is answered, it
is the only thing sent: a failed attempt is retried as the **same bytes with the same key**, so an
ambiguous outcome (timeout after sending, connection lost, ``5xx`` after a commit) costs at
most a duplicate on the wire, which the warehouse dedupes on ``(gateway, seq)``.

Answers:

* ``200`` + ack: ``committed`` → :meth:`Outbox.acknowledge` (only seqs the batch carried);
  ``conflicts`` → :meth:`Outbox.quarantine` with the ingest's reason and a
  ``sync_quarantined`` alert. A malformed ack is ambiguous: retried. The per-record conflict
  is the ingest's only refusal of a *record*, and the only answer that quarantines (an
  operator re-queues with ``lineside dead-letter requeue``).
* Connect errors, timeouts, a lost connection, ``408``, ``429``, ``5xx`` (and anything else
  that is not a final answer): retried after :class:`gateway.core.backoff.Backoff` (capped
  exponential, jittered), or after ``Retry-After`` when the server says how long (capped at
  :data:`MAX_RETRY_AFTER_S`) (docs/reference/reliability.md §7 rows 16-17).
* ``401``/``403``: the ingest refuses this gateway (token, enrolment): records kept, link
  DOWN, one ``sync_unauthorized`` alert, retried with the backoff until it accepts again.
* Any other ``4xx`` (``404`` from a proxy with a wrong route, ``400``, ``413``, ``422``...):
  a refusal of the *request*, not of its records, and nothing says which record could be at
  fault, so nothing is quarantined: the records stay in the outbox, the link is DEGRADED,
  one ``sync_refused`` alert is stored, and the same batch is retried with the capped
  backoff until the ingest (or the proxy in front of it) is fixed; the first ``200`` clears
  the alert. A ``413`` (a proxy's body limit below ``batch_bytes``) first halves the batch
  size for the rest of the run, with a warning, down to a single record; a single record
  refused as too large is a refusal like the others.

httpx errors are translated at this boundary: none leaves :meth:`HttpsUplink.run`, which
returns only when cancelled. TLS is always verified (``ca_file`` or the system trust store);
there is no switch to turn verification off.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from gateway.core.backoff import Backoff
from gateway.core.errors import StoreError, StoreFullError
from gateway.core.link import LinkState
from gateway.core.records import AlertRecord, Severity
from gateway.core.retry_after import parse_retry_after, utc_from_us
from gateway.store import Store
from sync.delivery_pace import DeliveryPace
from sync.outbox import Outbox, batch_seqs, only_quarantine_alerts, quarantine_with_alert
from sync.protocol import Ack, Batch, ProtocolError, decode_ack, encode_batch

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429})
"""4xx answers that mean "not now" rather than "never": retried like a 5xx."""
UNAUTHORIZED_STATUS = frozenset({401, 403})
"""The ingest refuses this gateway (token, certificate, enrolment): a link problem, not a
problem of the batch, so nothing is quarantined."""
TOO_LARGE_STATUS = 413
"""The body is above a limit (often a proxy's): the batch is retried smaller."""

MAX_RETRY_AFTER_S = 300.0
"""A longer ``Retry-After`` is capped: the gateway keeps trying at least this often."""

MAX_RESPONSE_BYTES = 1024 * 1024
"""Response bodies are read up to this size (an ack for 500 records is a few KiB)."""

EXCERPT_CHARS = 200
"""How much of a refusal's body goes into the quarantine reason."""


@dataclass
class HttpsUplinkStats:
    """Counters for metrics and the TUI (the shared names of :class:`sync.uplink.UplinkCounters`
    and the HTTPS uplink's own)."""

    batches_sent: int = 0
    """Batches POSTed for the first time."""
    records_acked: int = 0
    """Records the ingest acknowledged as committed (deleted from the outbox)."""
    batches_resent: int = 0
    """POSTs of a batch again, with the same Idempotency-Key, after a failed attempt."""
    duplicates_seen: int = 0
    """Retries after an attempt that may have been committed (timeout or connection lost
    after sending, 5xx, malformed ack): each may be a duplicate on the wire, deduped by the
    ingest on its Idempotency-Key and ``(gateway, seq)``."""
    records_quarantined: int = 0
    """Records moved to the outbox quarantine (per-record conflicts, unencodable records)."""
    refusals: int = 0
    """Attempts the ingest (or a proxy) answered with a 4xx other than 401/403/408/429;
    the records stayed in the outbox and were sent again."""
    last_error: str = ""


class _Retry(Exception):
    """This attempt failed; send the same batch again later."""

    def __init__(
        self,
        reason: str,
        *,
        ambiguous: bool,
        down: bool,
        retry_after: float | None = None,
        refused: bool = False,
        too_large: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ambiguous = ambiguous
        """The ingest may have committed the batch."""
        self.down = down
        """No answer from the ingest at all (link DOWN rather than DEGRADED)."""
        self.retry_after = retry_after
        self.refused = refused
        """A 4xx refusal of the request (not 401/403/408/429)."""
        self.too_large = too_large
        """A 413: a smaller batch may pass."""


class HttpsUplink:
    """POSTs the outbox to the central ingest and deletes what it acknowledges.

    Run :meth:`run` as a task and cancel it to stop; the outbox keeps whatever is unacked.
    """

    kind = "https"
    """The transport (:class:`sync.uplink.Uplink`)."""

    def __init__(
        self,
        store: Store,
        *,
        url: str,
        site: str,
        gateway: str,
        outbox: Outbox | None = None,
        ca_file: Path | None = None,
        client_cert: tuple[Path, Path] | None = None,
        token: str | None = None,
        max_records: int = 2000,
        max_bytes: int = 1024 * 1024,
        timeout_s: float = 10.0,
        poll_interval_s: float = 0.5,
        backoff: Backoff | None = None,
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("https", "http"):
            raise ValueError(f"the ingest URL must be https:// (or http:// for tests): {url!r}")
        if max_records < 1 or max_bytes < 1 or timeout_s <= 0 or poll_interval_s <= 0:
            raise ValueError("max_records, max_bytes, timeout_s, poll_interval_s must be positive")
        if scheme == "http" and (token is not None or client_cert is not None):
            log.warning("https uplink: credentials configured for a plain http:// URL %s", url)
        self.store = store
        self.outbox = outbox or Outbox(store, gateway=gateway, site=site)
        self.url = url
        self.site = site
        self.gateway = gateway
        self.ca_file = ca_file
        self.client_cert = client_cert
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.backoff = backoff or Backoff(initial=0.5, maximum=60.0)
        self.state = LinkState.DISABLED
        self.stats = HttpsUplinkStats()
        self.ack_observers: list[Callable[[float], None]] = []
        """Called with the seconds from a batch's first POST to the ingest's ack."""
        self._unauthorized_alerted = False
        self._refused_alerted = False
        # One batch in flight by design; its size follows how quickly the ingest answers,
        # up to max_records and max_bytes (or less once a 413 has said how much fits).
        self.pace = DeliveryPace(
            max_records=max_records, max_bytes=max_bytes, max_window=1, target_s=timeout_s / 4
        )
        self._headers = {
            "content-type": "application/json",
            "content-encoding": "deflate",
            "accept": "application/json",
        }
        if token is not None:
            self._headers["authorization"] = f"Bearer {token}"

    def tls_context(self) -> ssl.SSLContext:
        """Verification always on: the given CA (or the system's), hostname checked."""
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.client_cert is not None:
            cert, key = self.client_cert
            context.load_cert_chain(certfile=str(cert), keyfile=str(key))
        return context

    # ---------------------------------------------------------------- the loop

    async def run(self) -> None:
        """Send the outbox until cancelled. Only cancellation ends it."""
        self.state = LinkState.CONNECTING
        try:
            async with httpx.AsyncClient(
                verify=self.tls_context(),
                timeout=httpx.Timeout(self.timeout_s),
                follow_redirects=False,
                trust_env=False,
            ) as client:
                ahead: Batch | None = None
                while True:
                    batch = ahead if ahead is not None else await self._next_batch()
                    ahead = None
                    if batch is None:
                        await asyncio.sleep(self.poll_interval_s)
                        continue
                    try:
                        ahead = await self._deliver(client, batch)
                    except StoreFullError as exc:
                        # Acknowledged but not deletable: sent again later, deduplicated.
                        self.state = LinkState.DEGRADED
                        self.stats.last_error = f"outbox: {exc}"
                        log.error("https uplink: the store is full: %s", exc)
                        await asyncio.sleep(self.backoff.next_delay())
        finally:
            self.state = LinkState.DISABLED

    async def _next_batch(self, exclude: Sequence[int] = ()) -> Batch | None:
        try:
            limits = self.pace.limits
            return await self.outbox.next_batch(limits.records, limits.bytes, exclude=exclude)
        except StoreError as exc:
            self.stats.last_error = f"outbox: {exc}"
            log.error("https uplink: cannot read the outbox: %s", exc)
            return None

    async def _deliver(self, client: httpx.AsyncClient, batch: Batch) -> Batch | None:
        """POST ``batch`` until it is acknowledged or refused (same bytes, same key).

        Returns the next batch when one was cut while this one's first POST was in flight
        (:meth:`_post_reading_ahead`), else None.
        """
        try:
            payload = encode_batch(batch)
        except ValueError as exc:  # the outbox checks this; defence in depth
            await self._refuse(batch, f"not encodable: {exc}")
            return None
        ahead: Batch | None = None
        attempts = 0
        ambiguous = False
        full = self.pace.is_full(batch)
        first_sent = time.monotonic()
        while True:
            attempts += 1
            if attempts == 1:
                self.stats.batches_sent += 1
            else:
                self.stats.batches_resent += 1
                if ambiguous:
                    self.stats.duplicates_seen += 1
            try:
                if attempts == 1:
                    ack, ahead = await self._post_reading_ahead(client, batch, payload)
                else:
                    ack = await self._post(client, batch, payload)
            except _Retry as exc:
                self.pace.overdue()
                ambiguous = ambiguous or exc.ambiguous
                self.state = LinkState.DOWN if exc.down else LinkState.DEGRADED
                self.stats.last_error = exc.reason
                delay = self.backoff.next_delay()
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                shrink = exc.too_large and len(batch.records) > 1
                if exc.refused and not shrink:
                    self._request_refused(exc.reason)
                log.warning(
                    "https uplink: batch %s attempt %d failed (%s); %s in %.2f s",
                    batch.batch_id,
                    attempts,
                    exc.reason,
                    "a smaller batch" if shrink else "retry",
                    delay,
                )
                await asyncio.sleep(delay)
                if shrink:
                    # Never committed (refused before the ingest took it): its records are
                    # still in the outbox and go again in smaller batches of their own.
                    self._shrink(batch)
                    return None  # the next batch is cut again, at the smaller size
                continue
            self.backoff.reset()
            self.state = LinkState.UP
            latency = time.monotonic() - first_sent
            for observe in self.ack_observers:
                observe(latency)
            self.pace.acked(latency, full=full)
            await self._on_ack(batch, ack)
            return ahead

    async def _post_reading_ahead(
        self, client: httpx.AsyncClient, batch: Batch, payload: bytes
    ) -> tuple[Ack, Batch | None]:
        """:meth:`_post`, and while it is in flight, the next batch cut from the records not
        in this one.

        Still one batch on the wire at a time; only the outbox read of the next one overlaps
        this one's round trip, which a backlog drain otherwise spent waiting: the gateway's
        read and the ingest's commit took turns (docs/architecture.md, "Delivery pace"). The
        records read ahead stay in the outbox until their own ack, as any unsent records do.
        An alert stored during the round trip goes after the batch read ahead, so at most one
        batch later than before.
        """
        async with asyncio.TaskGroup() as group:
            post = group.create_task(
                self._post_answer(client, batch, payload), name="sync.https.post"
            )
            ahead = await self._next_batch(exclude=batch_seqs(batch))
        answer = post.result()
        if isinstance(answer, _Retry):
            raise answer
        return answer, ahead

    async def _post_answer(
        self, client: httpx.AsyncClient, batch: Batch, payload: bytes
    ) -> Ack | _Retry:
        """:meth:`_post` with a retry returned rather than raised: raised inside the task
        group, it would cancel the read ahead and come out wrapped in an ExceptionGroup."""
        try:
            return await self._post(client, batch, payload)
        except _Retry as exc:
            return exc

    async def _post(self, client: httpx.AsyncClient, batch: Batch, payload: bytes) -> Ack:
        """One attempt; :class:`_Retry` or :class:`_Refused` unless the batch is acked."""
        headers = {**self._headers, "idempotency-key": batch.batch_id}
        try:
            async with client.stream("POST", self.url, content=payload, headers=headers) as resp:
                body = await _read_limited(resp, MAX_RESPONSE_BYTES)
                status = resp.status_code
                retry_after = parse_retry_after(
                    resp.headers.get("retry-after"),
                    now=utc_from_us(self.store.clock.wall_us()),
                    maximum=MAX_RETRY_AFTER_S,
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing was sent (includes TLS handshake failures: a clear error, with backoff).
            raise _Retry(_describe(exc), ambiguous=False, down=True) from exc
        except httpx.TimeoutException as exc:
            raise _Retry(_describe(exc), ambiguous=True, down=True) from exc
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            # Connection lost mid-request (reset after the body, protocol error, ...).
            raise _Retry(_describe(exc), ambiguous=True, down=True) from exc
        if status == 200:
            self._authorized()
            self._requests_accepted()
            try:
                ack = decode_ack(body)
            except ProtocolError as exc:
                raise _Retry(f"200 with {exc}", ambiguous=True, down=False) from exc
            if ack.batch_id != batch.batch_id or ack.gateway != self.gateway:
                raise _Retry(
                    f"ack for {ack.gateway}/{ack.batch_id}, not this batch",
                    ambiguous=True,
                    down=False,
                )
            return ack
        reason = f"HTTP {status}: {_excerpt(body)}"
        if status in UNAUTHORIZED_STATUS:
            # Our credentials are refused, not this batch: every batch would be. Keep the
            # records, say so once, and retry slowly (a fixed token or enrolment resumes).
            self._unauthorized(reason)
            raise _Retry(reason, ambiguous=False, down=True)
        if status in RETRYABLE_STATUS:
            raise _Retry(reason, ambiguous=False, down=False, retry_after=retry_after)
        if 400 <= status < 500:
            # The request is refused, not its records (a record-level refusal is a 200 with
            # conflicts): keep them, say so once, retry with the backoff until it is fixed.
            self.stats.refusals += 1
            raise _Retry(
                reason,
                ambiguous=False,
                down=False,
                retry_after=retry_after,
                refused=True,
                too_large=status == TOO_LARGE_STATUS,
            )
        # 5xx (the ingest may have committed before failing), or an unexpected 1xx/2xx/3xx.
        raise _Retry(reason, ambiguous=True, down=False, retry_after=retry_after)

    # ---------------------------------------------------------------- outcomes

    async def _on_ack(self, batch: Batch, ack: Ack) -> None:
        # Only what this batch carried: an ack never deletes records it did not cover.
        mine = set(batch_seqs(batch))
        committed = [seq for seq in ack.committed if seq in mine]
        self.stats.records_acked += await self.outbox.acknowledge(committed)
        by_reason: dict[str, list[int]] = {}
        for seq, reason in ack.conflicts:
            if seq in mine:
                by_reason.setdefault(reason, []).append(seq)
        for reason, seqs in by_reason.items():
            await self._quarantine(batch.batch_id, batch.stream, seqs, f"ingest: {reason}")

    def _unauthorized(self, reason: str) -> None:
        if self._unauthorized_alerted:
            return
        self._unauthorized_alerted = True
        log.error("https uplink: the ingest refuses this gateway: %s", reason)
        self._alert(
            "unauthorized",
            "raised",
            f"the central ingest refuses this gateway ({reason}); records kept",
        )

    def _authorized(self) -> None:
        if self._unauthorized_alerted:
            self._unauthorized_alerted = False
            self._alert("unauthorized", "cleared", "the central ingest accepts this gateway again")

    def _request_refused(self, reason: str) -> None:
        if self._refused_alerted:
            return
        self._refused_alerted = True
        log.error(
            "https uplink: the ingest (or a proxy before it) refuses the batches: %s; "
            "records kept in the outbox, retried with backoff (check [sync.https] url)",
            reason,
        )
        self._alert(
            "refused",
            "raised",
            f"the central ingest refuses the batches ({reason}); records kept, retrying",
        )

    def _requests_accepted(self) -> None:
        if self._refused_alerted:
            self._refused_alerted = False
            log.info("https uplink: the ingest accepts batches again")
            self._alert("refused", "cleared", "the central ingest accepts batches again")

    def _shrink(self, batch: Batch) -> None:
        self.pace.lower_ceiling(
            max(1, len(batch.records) // 2), max(1024, self.pace.limits.bytes // 2)
        )
        log.warning(
            "https uplink: the ingest refused a body as too large; batches of at most %d "
            "records and %d bytes from now on",
            self.pace.ceiling.records,
            self.pace.ceiling.bytes,
        )

    def _alert(self, kind: str, state: str, message: str) -> None:
        record = AlertRecord(
            ts_us=self.store.clock.wall_us(),
            alert_id=f"sync.https.{kind}",
            rule=f"sync_{kind}",
            subject=self.url,
            severity=Severity.MAJOR,
            state=state,
            message=message,
        )
        try:
            self.store.submit(record)
        except StoreError as exc:
            log.error("https uplink: cannot store the alert: %s", exc)

    async def _refuse(self, batch: Batch, reason: str) -> None:
        await self._quarantine(
            batch.batch_id,
            batch.stream,
            batch_seqs(batch),
            reason,
            alert=not only_quarantine_alerts(batch),
        )

    async def _quarantine(
        self, batch_id: str, stream: str, seqs: Sequence[int], reason: str, *, alert: bool = True
    ) -> None:
        self.stats.records_quarantined += await quarantine_with_alert(
            self.outbox, batch_id, stream, seqs, reason, alert=alert
        )


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    """The (decoded) body, up to ``limit`` bytes: a huge answer cannot exhaust memory."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


def _excerpt(body: bytes) -> str:
    text = body[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = ["HttpsUplink", "HttpsUplinkStats"]
