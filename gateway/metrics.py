"""Prometheus metrics of the running gateway, read from its :class:`GatewayStatus`.

Nothing here keeps its own state: every scrape takes the status snapshot (shared with the
TUI, built at most twice a second) and :meth:`GatewayStatus.counters`, and renders them
with prometheus-client into a registry of its own (never the process-global one, so two
gateways in one test process do not collide). A scrape therefore costs what a TUI refresh
costs: two small aggregate queries and some dictionaries.

Metric families (``_total`` counters count since the gateway process started):

=========================================== ==========================================
``lineside_info``                           gateway, site, software version (value 1)
``lineside_readings_total{kind}``           records from the devices and the gateway
``lineside_rejected_inputs_total``          rejected device inputs by device and reason
``lineside_alerts{severity,state}``         alerts that still matter, by severity/state
``lineside_alarms_raised_last_10m{line}``   alerts raised in the last ten minutes
``lineside_alarm_rate_per_10m{line}``       average raised per 10 min over the last 24 h
``lineside_alarm_peak_per_10m{line}``       the busiest 10-minute period of the last 24 h
``lineside_alarm_flood_periods_ratio``      share of those periods with more than 10 raised
``lineside_alarms_stale{line}``             alerts active for more than 24 h
``lineside_outbox_depth``                   records waiting for the warehouse's ack
``lineside_outbox_oldest_age_seconds``      age of the oldest of them (0 when empty)
``lineside_sync_ack_latency_seconds``       first send to the warehouse's ack (histogram)
``lineside_sync_link_state{kind,state}``    the uplink's state (1 for the current one)
``lineside_sync_records_acked_total``       records the warehouse acknowledged
``lineside_sync_records_quarantined_total`` records refused and moved to the quarantine
``lineside_sync_batches_sent_total``        batches sent for the first time
``lineside_sync_batches_resent_total``      batches sent again (no ack yet, a retry)
``lineside_device_link_state``              each device's link state (1 for the current)
``lineside_device_link_down_total``         outages per device
``lineside_device_reconnects_total``        recoveries per device
``lineside_store_size_bytes``               pages in use x page size
``lineside_store_budget_bytes``             the size budget
``lineside_store_commit_seconds``           duration of the last group commit
``lineside_store_commits_total``            group commits (and ``..._records_committed``)
``lineside_store_pending_records``          records waiting for the next commit
``lineside_store_state{state}``             ok / full / closed (1 for the current one)
``lineside_store_evicted_rows_total``       telemetry rows evicted for space, per table
``lineside_store_pending_limit``            ``store.max_pending_rows``
``lineside_intake_shed_records_total``      device records shed under intake pressure,
                                            per device and kind (table)
``lineside_intake_shedding``                1 while the ``intake.shed`` alert is raised
``lineside_erp_staleness_seconds``          age of the last good ERP poll (+Inf: none)
``lineside_erp_link_state{state}``          the ERP poller's state
``lineside_erp_provisional``                1 while runs come from the offline cache
``lineside_process_resident_memory_bytes``  resident memory of the gateway process
=========================================== ==========================================

The alarm figures are ISA-18.2 / EEMUA 191's (docs/alarms.md §3), per line (one operator
position) and, with ``line=""``, for the whole gateway; the snapshot computes them
(rules/alarm_rates.py).

Label values are bounded: device ids come from the config, reasons and kinds are short
codes from the adapters, states and severities are enums. No configured secret is ever a
label or a value: the snapshot carries none (``tests/test_secrets_not_logged.py``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gateway import __version__
from gateway.core.link import LinkState
from gateway.core.records import Severity
from gateway.status import Counters, GatewayStatus
from gateway.store import StoreState
from rules.alerts import AlertState

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Prometheus text exposition format that ``generate_latest`` writes."""

_LINK_STATES = [str(s) for s in LinkState]
_STORE_STATES = [str(s) for s in StoreState]


class GatewayMetrics:
    """Renders the gateway's metrics in the Prometheus text format, one scrape at a time."""

    def __init__(self, status: GatewayStatus) -> None:
        self.status = status
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _StatusCollector(status.config.gateway.id, status.config.gateway.site)
        self.registry.register(self._collector)

    async def render(self) -> bytes:
        """One scrape: the current status rendered as Prometheus text."""
        snapshot = await self.status.snapshot()
        # Set and rendered without an await in between: a concurrent scrape cannot
        # interleave its own view.
        self._collector.view = (snapshot, self.status.counters())
        try:
            return generate_latest(self.registry)
        finally:
            self._collector.view = None


class _StatusCollector(Collector):
    """Turns one (snapshot, counters) view into metric families."""

    def __init__(self, gateway: str, site: str) -> None:
        self.gateway = gateway
        self.site = site
        self.view: tuple[dict[str, Any], Counters] | None = None

    def collect(self) -> Iterable[Metric]:
        """The metric families of the current view (none outside :meth:`render`)."""
        if self.view is None:
            return []
        snapshot, counters = self.view
        system: dict[str, Any] = snapshot["system"]
        return [
            *self._info(),
            *_readings(system, counters),
            *_alerts(counters),
            *_alarm_load(snapshot),
            *_outbox(system, counters),
            *_devices(system, counters),
            *_store(system, counters),
            *_intake(system, counters),
            *_erp(system),
            *_process(),
        ]

    def _info(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "lineside_info", "The gateway's identity", labels=["gateway", "site", "version"]
        )
        info.add_metric([self.gateway, self.site, __version__], 1)
        yield info


def _readings(system: Mapping[str, Any], counters: Counters) -> Iterator[Metric]:
    readings = CounterMetricFamily(
        "lineside_readings",
        "Records taken in since start, by kind (pack, temperature, label_scan, DeviceEvent, ...)",
        labels=["kind"],
    )
    for kind in ("pack", "temperature", "label_scan"):
        readings.add_metric([kind], system["readings"].get(kind, 0))
    for kind, count in sorted(system["readings"].items()):
        if kind not in ("pack", "temperature", "label_scan"):
            readings.add_metric([kind], count)
    yield readings
    rejected = CounterMetricFamily(
        "lineside_rejected_inputs",
        "Device inputs refused (stored in rejected_inputs, never as good values), by reason",
        labels=["device", "reason"],
    )
    for (device, reason), count in sorted(counters.rejected.items()):
        rejected.add_metric([device, reason], count)
    yield rejected


def _alerts(counters: Counters) -> Iterator[Metric]:
    alerts = GaugeMetricFamily(
        "lineside_alerts",
        "Alerts that still need attention (active, or cleared but unacknowledged)",
        labels=["severity", "state"],
    )
    for severity in Severity:
        for state in AlertState:
            if state is AlertState.CLEARED:
                continue  # cleared and acknowledged: closed, no longer in the book's view
            alerts.add_metric(
                [str(severity), str(state)], counters.alerts.get((str(severity), str(state)), 0)
            )
    yield alerts


_ALARM_GAUGES = (
    ("lineside_alarms_raised_last_10m", "last_10_min", 1, "Alerts raised in the last 10 min"),
    (
        "lineside_alarm_rate_per_10m",
        "per_10_min",
        1,
        "Average alerts raised per 10-minute period over the last 24 h (ISA-18.2: ~1 very "
        "likely acceptable, ~2 the most manageable)",
    ),
    (
        "lineside_alarm_peak_per_10m",
        "peak_10_min",
        1,
        "Alerts raised in the busiest 10-minute period of the last 24 h",
    ),
    (
        "lineside_alarm_flood_periods_ratio",
        "flood_pct",
        0.01,
        "Share of the last 24 h's 10-minute periods with more than 10 alerts raised (a flood; "
        "ISA-18.2 target: below 0.01)",
    ),
    ("lineside_alarms_stale", "stale", 1, "Alerts active for more than 24 h (ISA-18.2: < 5)"),
)


def _alarm_load(snapshot: Mapping[str, Any]) -> Iterator[Metric]:
    loads = [("", snapshot["alerts"]["load"])]
    loads += [(line["id"], line["alarm_load"]) for line in snapshot["lines"]]
    for name, key, scale, text in _ALARM_GAUGES:
        gauge = GaugeMetricFamily(name, text, labels=["line"])
        for line, load in loads:
            gauge.add_metric([line], load[key] * scale)
        yield gauge


def _outbox(system: Mapping[str, Any], counters: Counters) -> Iterator[Metric]:
    outbox = system["outbox"]
    yield GaugeMetricFamily(
        "lineside_outbox_depth",
        "Records committed locally and not yet acknowledged by the warehouse",
        value=outbox["depth"],
    )
    yield GaugeMetricFamily(
        "lineside_outbox_oldest_age_seconds",
        "Age of the oldest record waiting for the warehouse (0 when none waits)",
        # The snapshot's clock reading can precede a record enqueued while it was built.
        value=max(outbox["oldest_age_s"] or 0.0, 0.0),
    )
    latency = HistogramMetricFamily(
        "lineside_sync_ack_latency_seconds",
        "Seconds from a batch's first send to the warehouse's acknowledgement",
    )
    latency.add_metric(
        [],
        buckets=[(_bound(b), n) for b, n in counters.ack_latency],
        sum_value=counters.ack_latency_sum_s,
    )
    yield latency
    uplink = system["uplink"]
    state = GaugeMetricFamily(
        "lineside_sync_link_state",
        "The uplink to the warehouse: 1 for its current state (kind none: not configured)",
        labels=["kind", "state"],
    )
    kind = uplink["kind"] if uplink else "none"
    current = uplink["state"] if uplink else str(LinkState.DISABLED)
    for name in _LINK_STATES:
        state.add_metric([kind, name], int(name == current))
    yield state
    yield CounterMetricFamily(
        "lineside_sync_records_acked",
        "Records the warehouse acknowledged as committed (deleted from the outbox)",
        value=counters.records_acked,
    )
    # The same names for either transport (sync.uplink.UplinkCounters).
    yield CounterMetricFamily(
        "lineside_sync_records_quarantined",
        "Records the broker or the ingest refused, moved to the outbox quarantine",
        value=counters.records_quarantined,
    )
    yield CounterMetricFamily(
        "lineside_sync_batches_sent",
        "Batches sent to the warehouse for the first time",
        value=counters.batches_sent,
    )
    yield CounterMetricFamily(
        "lineside_sync_batches_resent",
        "Batches sent again: no acknowledgement in time, a failed attempt or a reconnect",
        value=counters.batches_resent,
    )


def _devices(system: Mapping[str, Any], counters: Counters) -> Iterator[Metric]:
    state = GaugeMetricFamily(
        "lineside_device_link_state",
        "Each device's link: 1 for its current state",
        labels=["device", "line", "state"],
    )
    for device in system["devices"]:
        for name in _LINK_STATES:
            state.add_metric([device["id"], device["line"], name], int(name == device["state"]))
    yield state
    down = CounterMetricFamily(
        "lineside_device_link_down",
        "Device outages since start (one per outage, however many reconnect attempts)",
        labels=["device"],
    )
    for device, count in sorted(counters.link_down.items()):
        down.add_metric([device], count)
    yield down
    reconnects = CounterMetricFamily(
        "lineside_device_reconnects",
        "Device links recovered after an outage, since start",
        labels=["device"],
    )
    for device, count in sorted(counters.reconnects.items()):
        reconnects.add_metric([device], count)
    yield reconnects


def _store(system: Mapping[str, Any], counters: Counters) -> Iterator[Metric]:
    store = system["store"]
    mib = 2**20
    yield GaugeMetricFamily(
        "lineside_store_size_bytes",
        "Database pages in use x page size, as last checked",
        value=store["used_mb"] * mib,
    )
    yield GaugeMetricFamily(
        "lineside_store_budget_bytes",
        "The database size budget (store.max_size_mb, less if the disk is short)",
        value=store["budget_mb"] * mib,
    )
    yield GaugeMetricFamily(
        "lineside_store_commit_seconds",
        "Duration of the last group commit (one transaction, one fsync)",
        value=store["last_commit_ms"] / 1000,
    )
    yield CounterMetricFamily(
        "lineside_store_commits", "Group commits since start", value=counters.store_commits
    )
    yield CounterMetricFamily(
        "lineside_store_records_committed",
        "Records committed since start",
        value=counters.records_committed,
    )
    yield GaugeMetricFamily(
        "lineside_store_pending_records",
        "Records queued for the next commit (held in memory while the store is full)",
        value=store["pending"],
    )
    state = GaugeMetricFamily(
        "lineside_store_state", "The store: 1 for its current state", labels=["state"]
    )
    for name in _STORE_STATES:
        state.add_metric([name], int(name == store["state"]))
    yield state
    evicted = CounterMetricFamily(
        "lineside_store_evicted_rows",
        "Telemetry rows evicted to stay within the size budget, per table",
        labels=["table"],
    )
    for table, rows in sorted(store["evicted"].items()):
        evicted.add_metric([table], rows)
    yield evicted


def _intake(system: Mapping[str, Any], counters: Counters) -> Iterator[Metric]:
    intake = system["intake"]
    yield GaugeMetricFamily(
        "lineside_store_pending_limit",
        "Pending records beyond which device records are shed (store.max_pending_rows)",
        value=intake["max_pending_rows"],
    )
    shed = CounterMetricFamily(
        "lineside_intake_shed_records",
        "Device records shed because the store was that far behind, per device and kind "
        "(each counted in a records_shed device event)",
        labels=["device", "kind"],
    )
    for (device, kind), count in sorted(counters.shed.items()):
        shed.add_metric([device, kind], count)
    yield shed
    yield GaugeMetricFamily(
        "lineside_intake_shedding",
        "1 while device records are being shed (the intake.shed alert is raised)",
        value=int(intake["shedding"]),
    )


def _erp(system: Mapping[str, Any]) -> Iterator[Metric]:
    erp = system["erp"]
    if erp is None:
        return  # no [erp]: runs come from the line, there is nothing to be stale
    staleness = erp["staleness_s"]
    yield GaugeMetricFamily(
        "lineside_erp_staleness_seconds",
        "Seconds since the last good ERP poll (+Inf before the first)",
        value=math.inf if staleness is None else staleness,
    )
    state = GaugeMetricFamily(
        "lineside_erp_link_state", "The ERP poller: 1 for its current state", labels=["state"]
    )
    for name in _LINK_STATES:
        state.add_metric([name], int(name == erp["state"]))
    yield state
    yield GaugeMetricFamily(
        "lineside_erp_provisional",
        "1 while runs are taken from the offline cache (ERP stale or failing)",
        value=int(erp["provisional"]),
    )


def _process() -> Iterator[Metric]:
    # /proc/self/statm stays readable under ProcSubset=pid, unlike the /proc/stat that
    # prometheus-client's ProcessCollector needs.
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return
    yield GaugeMetricFamily(
        "lineside_process_resident_memory_bytes",
        "Resident memory of the gateway process",
        value=resident_pages * os.sysconf("SC_PAGE_SIZE"),
    )


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


__all__ = ["CONTENT_TYPE", "GatewayMetrics"]
