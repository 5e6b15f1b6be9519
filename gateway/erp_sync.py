"""Polling the ERP for production runs: incremental, read-only, and safe when it misbehaves.

Each poll asks the source for runs changed since the watermark. Accepted runs are appended
as :class:`RunVersion` records together with the new watermark in ONE transaction, so after a
crash the gateway neither skips nor half-applies a poll. Rejected rows are stored as
:class:`RejectedInput` records with the raw row and every reason.

When the ERP is unreachable or answers garbage, the last known runs stay in force; records
joined meanwhile are flagged provisional, and the staleness (age of the last good poll) is
exposed. When a run comes back changed in what matters for traceability (line, batch codes,
products), the change is recorded and an alert raised, so a supervisor can reconcile labels
and paperwork that followed the old version.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from adapters.erp.source import ErpSource
from gateway.config import HttpErp, SqlErp
from gateway.core.backoff import Backoff
from gateway.core.clock import Clock
from gateway.core.errors import ErpError, ErpRefused, StoreInUseError
from gateway.core.link import LinkState
from gateway.core.records import AlertRecord, Record, RejectedInput, Severity
from gateway.core.runs import (
    ProductionRun,
    run_fingerprint,
    run_from_json,
    run_to_json,
    run_version,
)
from gateway.run_sharing import ValueSharing
from gateway.runs import RunIndex
from gateway.store import Store
from rules import ids

log = logging.getLogger(__name__)

WATERMARK_KEY = "erp.watermark"
FAILURES_BEFORE_ALERT = 3
"""Consecutive failed polls before the ERP outage is raised as an alert (one blip is normal)."""


def build_erp_source(config: HttpErp | SqlErp) -> ErpSource:
    """The source for the configured ERP kind."""
    if isinstance(config, HttpErp):
        from adapters.erp.http_source import HttpErpSource  # noqa: PLC0415

        return HttpErpSource(config)
    from adapters.erp.sql_source import SqlErpSource  # noqa: PLC0415

    return SqlErpSource(config)


LOAD_CHUNK_ROWS = 100
"""Stored runs read and parsed at a time at start. The store keeps every run it was ever
told about; what one read holds while it is parsed (the rows' JSON text, about 0.7 KB a
run, and the parsed JSON) stays with the process after it is freed: in one list of all of
them 5.6 MiB more RSS per 10,000 runs, 500 at a time about 0.5 MiB more than 100 at a time.
The extra reads did not show in the time to load 10,000 runs (0.4 to 0.9 s either way, on
a busy machine)."""


async def load_known_runs(store: Store) -> list[ProductionRun]:
    """The newest version of every run the store knows (from the ERP or the line), in the
    order stored; read :data:`LOAD_CHUNK_ROWS` at a time, with equal values and products
    shared between runs (:mod:`gateway.run_sharing`: a plant packs the same products on the
    same lines run after run)."""
    runs: list[ProductionRun] = []
    sharing = ValueSharing()
    last = -(2**63)
    while True:
        rows = await store.fetchall(
            "SELECT seq, payload FROM runs WHERE seq > ? ORDER BY seq LIMIT ?",
            (last, LOAD_CHUNK_ROWS),
        )
        for _, payload in rows:
            runs.append(sharing.run(run_from_json(json.loads(payload))))
        if len(rows) < LOAD_CHUNK_ROWS:
            return runs
        last = int(rows[-1][0])


class ErpPoller:
    """Keeps the run index up to date from the ERP."""

    def __init__(
        self,
        config: HttpErp | SqlErp,
        source: ErpSource,
        store: Store,
        index: RunIndex,
        clock: Clock,
    ) -> None:
        self.config = config
        self.source = source
        self.store = store
        self.index = index
        self.clock = clock
        self.state = LinkState.CONNECTING
        self.last_error = ""
        self.watermark: datetime | None = None
        self.last_good_monotonic: float | None = None
        self.failures = 0
        self.polls = 0
        self._outage_alerted = False

    @property
    def staleness_s(self) -> float | None:
        """Seconds since the last good poll; None before the first."""
        if self.last_good_monotonic is None:
            return None
        return self.clock.monotonic() - self.last_good_monotonic

    @property
    def provisional(self) -> bool:
        """Whether runs are currently taken from the offline cache."""
        staleness = self.staleness_s
        return self.failures > 0 or staleness is None or staleness > self.config.stale_after_s

    async def load(self, *, runs: bool = True) -> None:
        """Restore the runs and the watermark from the store (the offline cache).

        ``runs=False``: the index already holds the store's runs (the gateway loads them
        before it makes the poller), so they are not read and parsed a second time.
        """
        if runs:
            for run in await load_known_runs(self.store):
                self.index.put(run)
        stored = await self.store.get_meta(WATERMARK_KEY)
        if stored and not self.config.full_reload:
            self.watermark = datetime.fromisoformat(stored)
        log.info("erp: %d run(s) from the store, watermark %s", len(self.index), self.watermark)

    async def run(self, *, first_poll_done: bool = False) -> None:
        """Poll until cancelled; ``first_poll_done`` when the caller's first poll succeeded.

        The caller has already called :meth:`load`.
        """
        backoff = Backoff(
            initial=self.config.poll_interval_s, maximum=max(self.config.poll_interval_s * 10, 60)
        )
        try:
            if first_poll_done:
                await asyncio.sleep(self.config.poll_interval_s)
            while True:
                if await self.poll_once():
                    backoff.reset()
                    await asyncio.sleep(self.config.poll_interval_s)
                else:
                    await asyncio.sleep(backoff.next_delay())
        finally:
            await self.source.close()

    async def poll_once(self) -> bool:
        """One poll; returns whether it succeeded. Never raises for ERP trouble."""
        self.polls += 1
        since = self.watermark
        if since is not None:
            since -= timedelta(seconds=self.config.watermark_overlap_s)
        try:
            result = await self.source.fetch_changed(since)
        except ErpError as exc:
            await self._failed(exc)
            return False
        now = self.clock.wall_us()
        records: list[Record] = [
            RejectedInput(
                ts_us=now,
                source="erp",
                tag=rejection.run_number or "(no run number)",
                raw=json.dumps(rejection.raw, default=str, sort_keys=True)[:8000],
                reason="erp_row_invalid",
                detail="; ".join(rejection.reasons),
            )
            for rejection in result.rejected
        ]
        changed: list[ProductionRun] = []
        for run in result.runs:
            previous = self.index.get(run.run_number)
            if previous is not None and run_to_json(previous) == run_to_json(run):
                continue  # a full reload or an overlapping page: nothing new
            changed.append(run)
            records.append(run_version(run, now))
            if previous is not None:
                records.extend(self._reconcile(previous, run, now))
        if self._outage_alerted:
            records.append(self._outage_alert(now, "cleared", "ERP reachable again"))
            self._outage_alerted = False
        # The overlap asked for older rows: never let the watermark move backwards.
        candidates = [w for w in (result.watermark, self.watermark) if w is not None]
        watermark = max(candidates) if candidates else None
        meta = {WATERMARK_KEY: watermark.isoformat()} if watermark else {}
        if records or meta:
            await self.store.commit_with_meta(records, meta)
        for run in changed:
            self.index.put(run)
        self.watermark = watermark
        self.failures = 0
        self.last_error = ""
        self.last_good_monotonic = self.clock.monotonic()
        self.state = LinkState.UP
        for rejection in result.rejected:
            # Named run by run, with every reason: what the ERP team must fix. The row is
            # kept as a rejected input and fetched again once the ERP changes it.
            name = rejection.run_number or "(no run number)"
            log.warning(
                "erp: run %s rejected, not used: %s",
                name,
                "; ".join(rejection.reasons),
                extra={"run": rejection.run_number},
            )
        if changed or result.rejected:
            log.info(
                "erp: %d run(s) changed, %d row(s) rejected, watermark %s",
                len(changed),
                len(result.rejected),
                watermark,
            )
        return True

    async def _failed(self, exc: ErpError) -> None:
        self.failures += 1
        self.last_error = str(exc)
        self.state = LinkState.DOWN
        refused = isinstance(exc, ErpRefused)
        log.error(
            "erp poll failed (%d in a row; last known runs stay in force): %s", self.failures, exc
        )
        if (refused or self.failures >= FAILURES_BEFORE_ALERT) and not self._outage_alerted:
            self._outage_alerted = True
            message = f"ERP {'refused' if refused else 'unreachable'}: {exc}; runs are provisional"
            self.store.submit(self._outage_alert(self.clock.wall_us(), "raised", message))

    def _outage_alert(self, now: int, state: str, message: str) -> AlertRecord:
        return AlertRecord(
            ts_us=now,
            alert_id="erp.unavailable",
            rule=ids.ERP_UNAVAILABLE,
            subject="erp",
            severity=Severity.MAJOR,
            state=state,
            message=message,
            detail={"failures": self.failures, "error": self.last_error},
        )

    def _reconcile(self, previous: ProductionRun, run: ProductionRun, now: int) -> Sequence[Record]:
        before, after = run_fingerprint(previous), run_fingerprint(run)
        if before == after:
            return []
        fields = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        message = f"run {run.run_number} changed in the ERP: {', '.join(fields)}"
        log.warning("erp: %s", message, extra={"run": run.run_number, "line": run.line})
        return [
            AlertRecord(
                ts_us=now,
                alert_id=f"erp.run_changed.{run.run_number}.{run.updated.isoformat()}",
                rule=ids.ERP_RUN_CHANGED,
                subject=run.run_number,
                line=run.line,
                severity=Severity.MAJOR,
                state="raised",
                message=message,
                detail={"fields": fields, "before": before, "after": after},
            )
        ]


def run_erp_sync_once(config_path: Path, *, full: bool) -> int:
    """``lineside erp-sync``: one poll into the store; exit 0 when it succeeded."""
    from gateway.config import load_config  # noqa: PLC0415
    from gateway.core.clock import SystemClock  # noqa: PLC0415

    config = load_config(config_path)
    if config.erp is None:
        log.error("%s has no [erp] section", config_path)
        return 3

    async def once() -> bool:
        clock = SystemClock()
        erp = config.erp
        assert erp is not None
        async with Store(config.store, clock) as store:
            poller = ErpPoller(erp, build_erp_source(erp), store, RunIndex(), clock)
            await poller.load()
            if full:
                poller.watermark = None
            try:
                return await poller.poll_once()
            finally:
                await poller.source.close()

    try:
        return 0 if asyncio.run(once()) else 1
    except StoreInUseError as exc:
        log.error("lineside erp-sync: %s", exc)  # the running gateway polls the ERP itself
        return 1
