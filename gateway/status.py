"""The gateway's live status: what the operator TUI shows and the metrics export.

Most of what an operator needs lives only in this process: device link states and their
last errors, the open ℮ batch, the probes' last values, the label sequence, the alert book,
the uplink's connection. :class:`GatewayStatus` collects it into one JSON-ready snapshot
(see :data:`SNAPSHOT_VERSION` for its shape), which the control socket serves to any number
of TUIs (``{"command": "status"}``).

Cost to the gateway is bounded whatever the number of viewers: a snapshot is built at most
once per :data:`SNAPSHOT_MAX_AGE_S` and shared, and it reads the store only for two small
aggregate queries (outbox depth and, once per run, the packs stored before this process
started). Everything else comes from memory.

The alarm load (ISA-18.2 / EEMUA 191 figures: alerts raised per line per 10 minutes, the
average over the last 24 hours, the share of 10-minute periods in flood, stale alerts;
docs/alarms.md §3) is computed by :func:`rules.alarm_rates.alarm_load` from the raises of
the last :data:`ALARM_WINDOW_US`, read from the store once at start and then taken from
the rules engine as they happen.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapters.base import DeviceAdapter
from gateway import __version__
from gateway.config import LinesideConfig
from gateway.core.clock import Clock
from gateway.core.records import (
    AlertRecord,
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    RejectedInput,
    TemperatureReading,
)
from gateway.core.runs import ProductionRun
from gateway.erp_sync import ErpPoller
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex
from gateway.shedding import ShedLedger
from gateway.status_counters import Counters, LatencyHistogram
from gateway.status_views import (
    alert_json,
    devices_json,
    labels_json,
    num,
    probe_json,
    probe_severity,
    probe_tags,
    run_json,
)
from gateway.store import Store
from rules.alarm_rates import AlarmReport, Raise, alarm_load
from rules.alert_refs import short_refs
from rules.alerts import Alert
from rules.emark import limits
from sync.uplink import Uplink

SNAPSHOT_VERSION = 1
"""Bumped when a key is removed or changes meaning (added keys do not bump it)."""

SNAPSHOT_MAX_AGE_S = 0.5
"""Viewers asking within this long of the last snapshot get the same one."""

RECENT_PACKS = 120
"""Pack weights kept per line for the live histogram and sparkline."""

TREND_POINTS = 120
"""Giveaway samples kept per line (one per :meth:`GatewayStatus.sample`, i.e. per second)."""

RECENT_ALERTS = 50
"""Alerts listed in the snapshot besides the active ones."""

ALARM_WINDOW_US = 24 * 3600 * 1_000_000
"""The span of the live alarm load figures (the warehouse judges longer spans, with the same
function: ISA-18.2 assesses at least 30 days)."""

OUTBOX_SQL = "SELECT count(*), min(enqueued_us) FROM outbox"
RAISED_SQL = "SELECT ts_us, line, rule, state FROM alerts WHERE state = 'raised' AND ts_us >= ?"
RUN_TALLY_SQL = (
    "SELECT count(*), coalesce(sum(net_g), 0) FROM packs WHERE run_number = ? AND seq <= ?"
)
LAST_PACK_SQL = "SELECT coalesce(max(seq), 0) FROM packs"

STORE_QUERY_TIMEOUT_S = 0.5
"""A snapshot's store reads together do not wait longer than this (the store busy evicting,
say): it shows the last figures it had, marked stale, so it is answered well within the
second a TUI allows before it calls the gateway not answering (``tui.app.ANSWER_DUE_S``),
and a TUI never mistakes a busy gateway for a dead one."""


@dataclass(slots=True)
class _RunTally:
    """Packs weighed in one run: seeded from the store once, then counted live."""

    packs: int = 0
    sum_g: float = 0.0
    seeded: bool = False


class GatewayStatus:
    """Collects the live state of one running gateway into snapshots."""

    def __init__(
        self,
        config: LinesideConfig,
        *,
        store: Store,
        engine: RulesEngine,
        runs: RunIndex,
        clock: Clock,
        devices: Sequence[DeviceAdapter] = (),
        erp: ErpPoller | None = None,
        uplink: Uplink | None = None,
        shedding: ShedLedger | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.runs = runs
        self.clock = clock
        self.devices = list(devices)
        self.erp = erp
        self.uplink = uplink
        self.shedding = shedding if shedding is not None else ShedLedger()
        """The pipeline's count of device records shed under intake pressure."""
        self.started_us = clock.wall_us()
        self.readings: Counter[str] = Counter()
        """Records seen per kind since start (packs, temperatures, label scans, ...)."""
        self.rejected: Counter[tuple[str, str]] = Counter()
        """Rejected device inputs per (device, reason) since start."""
        self.link_down: Counter[str] = Counter({d.id: 0 for d in config.devices if d.enabled})
        """Device outages since start (``link_down`` events), per device."""
        self.reconnects: Counter[str] = Counter({d.id: 0 for d in config.devices if d.enabled})
        """Device recoveries since start (``link_up`` after an outage), per device."""
        self.ack_latency = LatencyHistogram()
        """Seconds from a batch's first send to the warehouse's acknowledgement."""
        self._device_line = {d.id: d.line for d in config.devices}
        self._probe_tags = probe_tags(config)
        self._recent: dict[str, deque[tuple[int, float, bool | None]]] = {
            line.id: deque(maxlen=RECENT_PACKS) for line in config.lines
        }
        self._last_nominal: dict[str, float | None] = {}
        self._trend: dict[str, deque[tuple[int, float]]] = {
            line.id: deque(maxlen=TREND_POINTS) for line in config.lines
        }
        self._tallies: dict[str, _RunTally] = {}
        self._stored_before = 0
        self._outbox: tuple[int, Any, bool] = (0, None, True)
        self.builds = 0
        """Snapshots built since start (however many viewers asked)."""
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._store_deadline: float | None = None
        """When the snapshot being built stops waiting for the store (event loop time)."""
        self._building: asyncio.Lock = asyncio.Lock()
        self._raised: deque[Raise] = deque()
        """Alerts raised in the last :data:`ALARM_WINDOW_US`, oldest first."""

    # ------------------------------------------------------------------ feeding

    def observe(self, record: Record) -> None:
        """Note one record as the pipeline queues it (registered as a pipeline observer)."""
        self.readings[_KINDS.get(type(record), type(record).__name__)] += 1
        if isinstance(record, RejectedInput):
            self.rejected[record.source, record.reason] += 1
        elif isinstance(record, DeviceEvent):
            if record.kind == "link_down":
                self.link_down[record.device] += 1
            elif record.kind == "link_up" and "down_for_s" in record.detail:
                # The first connection carries no down_for_s: only recoveries count.
                self.reconnects[record.device] += 1
        if isinstance(record, PackEvent):
            recent = self._recent.get(record.line)
            if recent is not None:
                recent.append((record.ts_us, record.net_g, record.accepted))
            self._last_nominal[record.line] = record.nominal_g
            if record.run_number is not None:
                tally = self._tallies.setdefault(record.run_number, _RunTally())
                tally.packs += 1
                tally.sum_g += record.net_g

    def observe_alert(self, record: AlertRecord) -> None:
        """Note one alert transition (registered as a rules engine listener)."""
        if record.state == "raised":
            self._raised.append(Raise(record.ts_us, record.line, record.rule))
            # Bounded without any viewer too: only the window's raises are kept.
            while self._raised and self._raised[0].ts_us < record.ts_us - ALARM_WINDOW_US:
                self._raised.popleft()

    def observe_ack(self, seconds: float) -> None:
        """Note one acknowledgement latency (registered as an uplink ack observer)."""
        self.ack_latency.observe(seconds)

    def counters(self) -> Counters:
        """The counts since start that the snapshot does not carry (read by the metrics)."""
        alerts: Counter[tuple[str, str]] = Counter()
        book = self.engine.book
        standing = {a.id: a for a in book.active()}
        standing.update({a.id: a for a in book.unacknowledged()})
        for alert in standing.values():
            alerts[str(alert.severity), str(alert.state)] += 1
        link = self.uplink.stats if self.uplink is not None else None
        return Counters(
            rejected=dict(self.rejected),
            link_down=dict(self.link_down),
            reconnects=dict(self.reconnects),
            alerts=dict(alerts),
            ack_latency=self.ack_latency.cumulative(),
            ack_latency_sum_s=self.ack_latency.sum_s,
            ack_latency_count=self.ack_latency.total,
            records_acked=link.records_acked if link is not None else 0,
            records_quarantined=link.records_quarantined if link is not None else 0,
            batches_sent=link.batches_sent if link is not None else 0,
            batches_resent=link.batches_resent if link is not None else 0,
            store_commits=self.store.stats.batches_committed,
            records_committed=self.store.stats.records_committed,
            shed=dict(self.shedding.totals),
        )

    def sample(self) -> None:
        """Take one giveaway sample per line (called once a second with the rules tick)."""
        now = self.clock.wall_us()
        for line, trend in self._trend.items():
            pct = self._giveaway_pct(line)
            if pct is not None:
                trend.append((now, pct))

    # ------------------------------------------------------------------ snapshots

    async def snapshot(self) -> dict[str, Any]:
        """The whole live status as a JSON-ready dict (shared for ``SNAPSHOT_MAX_AGE_S``)."""
        async with self._building:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < SNAPSHOT_MAX_AGE_S:
                return self._cached[1]
            snapshot = await self._build()
            self.builds += 1
            self._cached = (time.monotonic(), snapshot)
            return snapshot

    async def _build(self) -> dict[str, Any]:
        now_us = self.clock.wall_us()
        self._store_deadline = asyncio.get_running_loop().time() + STORE_QUERY_TIMEOUT_S
        # The alerts first, as one view: the lines' awaits below must not split it.
        active = self.engine.book.active()
        active_ids = {a.id for a in active}
        recent = [a for a in self.engine.book.recent(RECENT_ALERTS) if a.id not in active_ids]
        refs = {**short_refs(a.id for a in recent), **self.engine.refs()}
        load = self._alarm_load(now_us)
        lines = []
        for line in self.config.lines:
            entry = await self._line(line.id, line.name, now_us)
            entry["active_alerts"] = [self._json(a, refs) for a in active if a.line == line.id]
            entry["alarm_load"] = load.lines[line.id].as_dict()
            lines.append(entry)
        return {
            "version": SNAPSHOT_VERSION,
            "gateway": {
                "id": self.config.gateway.id,
                "site": self.config.gateway.site,
                "software": __version__,
                "pid": os.getpid(),
                "started_us": self.started_us,
                "now_us": now_us,
            },
            "lines": lines,
            "alerts": {
                "active": [self._json(a, refs) for a in active],
                "recent": [self._json(a, refs) for a in recent],
                "load": load.total.as_dict(),
            },
            "system": await self._system(now_us),
        }

    async def _line(self, line: str, name: str, now_us: int) -> dict[str, Any]:
        run = self.runs.active_us(line, now_us)
        batch = next((b for b in self.engine.emark.open_batches() if b.line == line), None)
        qn = self._last_nominal.get(line)
        if batch is not None:
            band = batch.limits
        elif qn is not None and qn > 0:
            band = limits(Decimal(str(qn)))
        else:
            band = None
        tally = await self._tally(run.run_number) if run is not None else None
        probes = self._probes(line, now_us)
        worst = max(probes, key=probe_severity, default=None)
        labels = self._labels(line, run)
        return {
            "id": line,
            "name": name,
            "mode": str(self.engine.book.line_mode(line)),
            "andon": self.engine.andon(line),
            "run": self._run_json(run) if run is not None else None,
            "packs": tally.packs if tally is not None else 0,
            "mean_g": (tally.sum_g / tally.packs) if tally and tally.packs else None,
            "giveaway_pct": self._giveaway_pct(line),
            "emark": {
                "qn_g": num(band.qn) if band else None,
                "t1_g": num(band.t1) if band else None,
                "t2_g": num(band.t2) if band else None,
                "batch_packs": batch.n if batch is not None else 0,
                "below_t1": batch.below_t1 if batch is not None else 0,
                "below_t2": batch.below_t2 if batch is not None else 0,
                "batch_started_us": batch.start_us if batch is not None else None,
            },
            "recent_packs": [
                {"ts_us": ts, "net_g": net, "accepted": ok} for ts, net, ok in self._recent[line]
            ],
            "giveaway_trend": [pct for _ts, pct in self._trend[line]],
            "probes": probes,
            "worst_probe": worst,
            "labels": labels,
        }

    def _json(self, alert: Alert, refs: dict[str, str]) -> dict[str, Any]:
        return alert_json(alert, refs.get(alert.id, ""), self.engine.config.action(alert.rule))

    def _alarm_load(self, now_us: int) -> AlarmReport:
        """The alarm load of the last :data:`ALARM_WINDOW_US` (rules/alarm_rates.py)."""
        start = now_us - ALARM_WINDOW_US
        while self._raised and self._raised[0].ts_us < start:
            self._raised.popleft()
        return alarm_load(
            self._raised,
            start_us=start,
            end_us=now_us + 1,  # the span is half-open; a raise at this very moment counts
            active=[(a.raised_us, a.line) for a in self.engine.book.active()],
            lines=[line.id for line in self.config.lines],
        )

    def _run_json(self, run: ProductionRun) -> dict[str, Any]:
        return run_json(
            run,
            base_days=self.engine.config.shelf_life_base_days,
            provisional=self.erp.provisional if self.erp is not None else False,
        )

    async def load(self) -> None:
        """Note where this process's packs begin in the store (call once, before intake).

        The live counts take every pack this process sees; a run's packs stored by earlier
        processes (sequence numbers up to this mark) are added once, from the store.
        """
        rows = await self.store.fetchall(LAST_PACK_SQL)
        self._stored_before = int(rows[0][0]) if rows else 0
        since = self.clock.wall_us() - ALARM_WINDOW_US
        stored = await self.store.fetchall(RAISED_SQL, (since,))
        self._raised.extendleft(
            Raise(int(ts), line, str(rule)) for ts, line, rule, _ in reversed(stored)
        )

    async def _tally(self, run_number: str) -> _RunTally:
        tally = self._tallies.setdefault(run_number, _RunTally())
        if not tally.seeded:
            rows = await self._query(RUN_TALLY_SQL, (run_number, self._stored_before))
            if rows is not None:
                tally.seeded = True
                tally.packs += int(rows[0][0])
                tally.sum_g += float(rows[0][1])
        return tally

    async def _query(self, sql: str, parameters: tuple[object, ...] = ()) -> Any:
        """Rows of a small store query, or None when the store is busy for too long."""
        deadline = self._store_deadline
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + STORE_QUERY_TIMEOUT_S
        try:
            async with asyncio.timeout_at(deadline):
                return await self.store.fetchall(sql, parameters)
        except TimeoutError:
            return None

    def _giveaway_pct(self, line: str) -> float | None:
        # The product on the checkweigher now: the giveaway figures updated last on the line.
        stats = [s for s in self.engine.giveaway.values() if s.line == line and s.last_ts_us]
        if not stats:
            return None
        newest = max(stats, key=lambda s: s.last_ts_us or 0)
        return num(newest.giveaway_pct)

    def _probes(self, line: str, now_us: int) -> list[dict[str, Any]]:
        links = {adapter.device_id: str(adapter.state) for adapter in self.devices}
        out = []
        for rules, monitor in self.engine.probes.values():
            if (monitor.line or self._device_line.get(rules.device)) != line:
                continue
            location, interval_s = self._probe_tags.get((rules.device, rules.probe), ("", None))
            link = links.get(rules.device, "disabled")
            out.append(probe_json(rules, monitor, (location, interval_s), link, now_us))
        return out

    def _labels(self, line: str, run: ProductionRun | None) -> dict[str, Any]:
        return labels_json(
            [
                m
                for (device, run_number), m in self.engine.labels.items()
                if self._device_line.get(device) == line
                and (run is None or run_number == run.run_number)
            ]
        )

    async def _system(self, now_us: int) -> dict[str, Any]:
        devices = devices_json(self.config, self.devices)
        rows = await self._query(OUTBOX_SQL)
        if rows is not None:
            self._outbox = (int(rows[0][0]), rows[0][1], False)
        else:
            self._outbox = (self._outbox[0], self._outbox[1], True)
        depth, oldest, outbox_stale = self._outbox
        stats = self.store.stats
        page = self.store.page_size
        erp = None
        if self.erp is not None:
            erp = {
                "kind": self.config.erp.kind if self.config.erp else "",
                "state": str(self.erp.state),
                "staleness_s": self.erp.staleness_s,
                "stale_after_s": self.config.erp.stale_after_s if self.config.erp else None,
                "provisional": self.erp.provisional,
                "last_error": self.erp.last_error,
            }
        uplink = None
        if self.uplink is not None:
            uplink = {
                "kind": self.uplink.kind,
                "endpoint": self._endpoint(),
                "state": str(self.uplink.state),
                "last_error": self.uplink.stats.last_error,
            }
        return {
            "devices": devices,
            "erp": erp,
            "uplink": uplink,
            "outbox": {
                "depth": depth,
                # Clamped: a record enqueued after ``now_us`` was read is not from the future.
                "oldest_age_s": max(now_us - int(oldest), 0) / 1e6 if oldest is not None else None,
                "stale": outbox_stale,
            },
            "store": {
                "state": str(self.store.state),
                "path": str(self.config.store.path),
                "used_mb": stats.used_pages * page / 2**20,
                "budget_mb": stats.max_pages * page / 2**20,
                "pending": self.store.pending_count,
                "last_commit_ms": stats.last_commit_ms,
                "evicted": dict(stats.evicted),
            },
            "intake": {
                "shedding": self.shedding.raised,
                "shed_total": self.shedding.total,
                "shed": self.shedding.by_device(),
                "backpressure_at": self.store.backpressure_rows,
                "max_pending_rows": self.config.store.max_pending_rows,
            },
            "readings": dict(self.readings),
        }

    def _endpoint(self) -> str:
        if self.config.sync.mqtt is not None:
            return f"mqtt://{self.config.sync.mqtt.host}:{self.config.sync.mqtt.port}"
        if self.config.sync.https is not None:
            return str(self.config.sync.https.url)
        return ""


_KINDS: dict[type, str] = {
    PackEvent: "pack",
    TemperatureReading: "temperature",
    LabelScan: "label_scan",
}


__all__ = ["SNAPSHOT_VERSION", "Counters", "GatewayStatus", "LatencyHistogram", "alert_json"]
