"""Runs the pure rules (:mod:`rules`) on the gateway's records and keeps the alert book.

Every pack event, temperature reading and label scan, once joined to its run, is evaluated:

* packs: ℮ inspection batches (T1/T2, mean) and giveaway per run × product; the product is
  the run's fixed-weight product whose Qn equals the checkweigher's nominal setting (or the
  run's only fixed-weight product);
* temperatures: HACCP limits per configured probe (debounce, hysteresis, sensor faults);
* label scans: sequence gaps and duplicates, batch and weight against the run and the pack,
  use-by against the run's shelf life;
* device links: a device down longer than its ``down_alert_after_s`` (``device_down``,
  from the adapters' ``link_down``/``link_up`` events, :mod:`rules.devices`).

Findings go through one :class:`rules.alerts.AlertBook`: one active alert per rule and
subject (a condition, not each event: docs/alarms.md §1), acknowledgement, shelving,
suppression in changeover/washdown, updates only when they matter. Each transition
becomes an :class:`AlertRecord` (queued for sync in the same transaction as it is stored),
with the rule settings it was evaluated with and the rule's corrective action (``action``,
from ``[rules.actions]``). Event-type alerts (a wrong label, a wrong date) latch: they stay
active until an operator acknowledges them, so the andon does not go green on its own while
a mislabelled pack may be on its way out. So does an ``emark_t2`` alert nobody has
acknowledged when its batch closes (at the hour, a changeover or washdown): a pack below T2
may be on its way out with the ℮ mark.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from adapters.erp.model import ProductionRun
from gateway.clock import Clock
from gateway.config import ProbeRules, RulesSection
from gateway.records import (
    SENSOR_FAULT_CODE,
    AlertRecord,
    DeviceEvent,
    EmarkBatchRecord,
    LabelScan,
    PackEvent,
    Record,
    RecordFlag,
    RejectedInput,
    TemperatureReading,
)
from gateway.runs import RunIndex, from_us
from rules.alert_refs import resolve_ref, short_refs
from rules.alert_updates import Published
from rules.alerts import LINE_MODES, Alert, AlertBook, AlertState
from rules.compliance import check_run
from rules.devices import DeviceWatch, WatchedDevice
from rules.emark import RULE_T2, BatchRecord, EmarkTracker
from rules.giveaway import GiveawayStats
from rules.giveaway import check as check_giveaway
from rules.haccp import ProbeLimits, ProbeMonitor
from rules.labels import (
    LabelSequenceMonitor,
    check_label_content,
    label_subject,
    sequence_number,
)
from rules.model import AlertTransition, Finding, ProductSpec, RunContext, Severity, Tier
from rules.outages import OutageLog
from rules.products import ProductDecision, check_label_product, decide, product_by_plu
from rules.shelf_life import check_use_by, freeze_down_finding

log = logging.getLogger(__name__)

LATCHING_RULES = frozenset(
    {
        "label_batch",
        "label_weight",
        "label_duplicate",
        "label_gap",
        "label_out_of_sequence",
        "label_product",
        "label_invalid",
        "shelf_life_use_by",
    }
)
"""Rules about one thing that happened (not a lasting condition): active until acknowledged."""

NEVER_SUPPRESSED = ("haccp_", "store_", "emark_t2", "emark_t1", "emark_mean_batch")
"""Alerts that matter even during changeover or washdown: the cold chain, the store, and ℮
verdicts (a batch closes at changeover, and an underweight batch is illegal regardless)."""

ENGINE_RULE_PREFIXES = (
    "emark_",
    "giveaway",
    "haccp_",
    "label_",
    "shelf_life_",
    "compliance_",
    "device_",
)
"""Rules this engine evaluates, whose state :meth:`RulesEngine.replay` rebuilds after a
restart (compliance and freeze-down findings are judged again at the first tick; a device
still down is judged again at the next tick, one back clears its alert)."""

OPERATOR_SOURCE = "operator"
"""The ``device`` of events an operator caused (line modes)."""
LINE_MODE_EVENT = "line_mode"
PACK_PRODUCT_EVENT = "pack_product"
"""The product of a pack decided after it was stored (by its label), or found undecidable."""
CHANGEOVER_EVENT = "changeover"
"""A checkweigher announces a changeover (its status bit): the line's ℮ batches close."""
LABEL_WAIT_S = 30
"""How long a pack waits for its label to decide its product (a scanner reads a label
seconds after the pack is weighed; 30 s covers a slow line without holding many packs)."""

_PACKS_REMEMBERED = 10_000
_LABELS_AHEAD = 1_000
"""Labels kept waiting for their pack: a few seconds of a fast line, with room to spare."""
RUN_CHECK_INTERVAL_US = 60_000_000
"""Run compliance and freeze-down are checked once a minute (they change slowly)."""


def run_context(run: ProductionRun, rules: RulesSection) -> RunContext:
    """The rules' view of an ERP run."""
    products = []
    for product in run.products:
        price = rules.threshold("price_per_kg", line=run.line, plu=product.plu)
        products.append(
            ProductSpec(
                plu=product.plu,
                nominal_g=product.nominal_g,
                tier=product.tier,
                catch_weight=product.catch_weight,
                tare_g=product.tare_g,
                glaze_pct=product.glaze_pct,
                species=product.species,
                gtin=product.gtin,
                description=product.description,
                price_per_kg=Decimal(str(price)) if price is not None else None,
            )
        )
    tiers: dict[str, Tier] = {}
    for code, tier in _extra_mapping(run, "batchtiers").items():
        try:
            tiers[code] = Tier(tier.strip().lower())
        except ValueError:
            log.warning("run %s: batch %s has unknown tier %r", run.run_number, code, tier)
    return RunContext(
        batch_species={
            k: v.strip().lower() for k, v in _extra_mapping(run, "batchspecies").items()
        },
        batch_tiers=tiers,
        run_number=run.run_number,
        line=run.line,
        batch_codes=run.batch_codes,
        species=run.species,
        products=tuple(products),
        pack_date=run.pack_date,
        shelf_life_adjust=run.shelf_life_adjust,
        raw_material_kg=run.raw_material_kg,
        description=run.description,
    )


def _extra_mapping(run: ProductionRun, key: str) -> dict[str, str]:
    """A batch-code -> text mapping the ERP sent beyond the run model, e.g. ``BatchTiers``
    (the certification of each batch: Premium/GG/Export) or ``BatchSpecies``."""
    for name, value in run.extra.items():
        if name.replace("_", "").lower() == key and isinstance(value, Mapping):
            return {str(k): str(v) for k, v in value.items()}
    return {}


def probe_limits(probe: ProbeRules) -> ProbeLimits:
    """The HACCP rule's limits from the config."""
    return ProbeLimits(
        upper_c=Decimal(str(probe.upper_c)) if probe.upper_c is not None else None,
        lower_c=Decimal(str(probe.lower_c)) if probe.lower_c is not None else None,
        debounce_s=probe.debounce_s,
        hysteresis_c=Decimal(str(probe.hysteresis_c)),
        no_data_s=probe.no_data_s,
        stuck_s=probe.stuck_s,
    )


class RulesEngine:
    """The rules and the alert book of one gateway."""

    def __init__(
        self,
        config: RulesSection,
        runs: RunIndex,
        clock: Clock,
        *,
        programs: Mapping[str, Mapping[str, str]] | None = None,
        label_lines: Collection[str] = (),
        devices: Iterable[WatchedDevice] = (),
    ) -> None:
        self.config = config
        self.programs = dict(programs or {})
        """Per checkweigher: its program numbers and the PLU each one packs."""
        self.label_lines = frozenset(label_lines)
        """Lines with a label scanner: a pack there may wait for its label to be decided."""
        self.awaiting_label: OrderedDict[tuple[str, int], PackEvent] = OrderedDict()
        """Packs whose product their label will decide, by (line, label number)."""
        self.pack_products: OrderedDict[tuple[str, int], str] = OrderedDict()
        """The PLU of recent packs by (line, label number): what their labels must name."""
        self.line_product: dict[str, tuple[str, str]] = {}
        """Per line: (run, PLU) of the newest pack whose product the device told."""
        self.paired_lines: set[str] = set()
        """Lines whose packs carry their label number (a label is checked against its pack)."""
        self.labels_ahead: OrderedDict[tuple[str, int], LabelScan] = OrderedDict()
        """Labels read before their pack came in, by (line, label number)."""
        self.runs = runs
        self.clock = clock
        self.book = AlertBook(never_suppress=NEVER_SUPPRESSED)
        self.emark = EmarkTracker(
            batch_seconds=config.emark_batch_minutes * 60,
            batch_max_packs=None,
            min_packs=config.emark_min_packs,
        )
        self.giveaway: dict[tuple[str, str], GiveawayStats] = {}
        started = clock.wall_us()  # a probe silent from the start is a fault too
        self.probes = {
            (p.device, p.probe): (
                p,
                ProbeMonitor(p.device, p.probe, probe_limits(p), started_us=started),
            )
            for p in config.probes
        }
        self.labels: dict[tuple[str, str], LabelSequenceMonitor] = {}
        self.outages = OutageLog()
        """Device and gateway outages, from the records alone (a label gap names its cause)."""
        self.device_watch = DeviceWatch(devices, self.outages)
        """Devices down too long (``device_down``), from the same outages."""
        self.pack_weights: OrderedDict[tuple[str, int], float] = OrderedDict()
        self.packs_without_product: Counter[str] = Counter()
        self.uncertain_packs: Counter[str] = Counter()
        """Per line: packs flagged VALUES_UNCERTAIN, kept out of ℮, giveaway and label checks."""
        self.packed_g: Counter[str] = Counter()
        """Net grams packed per run (accepted packs), for the yield check."""
        self.orphan_scans: dict[str, list[str]] = {}
        """Per run: scanned batch codes that map to no known run (OCM scan-back orphans)."""
        self._contexts: dict[str, tuple[ProductionRun, RunContext]] = {}
        self._last_run_checks_us = 0
        self.listeners: list[Callable[[AlertRecord], None]] = []
        """Called with every alert transition, after the book has taken it (the andon)."""
        self._replaying = False

    # ---------------------------------------------------------------- evaluation

    def evaluate(self, record: Record) -> list[Record]:
        """Records (alerts, ℮ batch records) that follow from one stored record."""
        # Device events (link down/up, gateway started/stopped) feed the outage log, and
        # through it the device watch; every record's time moves the watch's clock.
        self.outages.observe(record)
        out = self._devices(self.device_watch.observe(record))
        if isinstance(record, PackEvent):
            return out + self._pack(record)
        if isinstance(record, TemperatureReading):
            return out + self._temperature(record)
        if isinstance(record, LabelScan):
            return out + self._label(record)
        if isinstance(record, DeviceEvent) and record.kind == CHANGEOVER_EVENT:
            return out + self._device_changeover(record)
        if isinstance(record, RejectedInput) and record.serial is not None:
            return out + self._invalid_label(record)
        if isinstance(record, RejectedInput) and record.reason == SENSOR_FAULT_CODE:
            return out + self._probe_fault(record)
        return out

    def _devices(self, findings: Sequence[Finding]) -> list[Record]:
        if not findings:
            return []  # the usual case
        out: list[Record] = []
        for finding in findings:
            watched = self.device_watch.devices[finding.subject]
            out += self._apply([finding], {"down_alert_after_s": watched.down_after_s})
        return out

    def _invalid_label(self, rejection: RejectedInput) -> list[Record]:
        """A label read but rejected as invalid: read for the sequence, a finding of its own."""
        if rejection.line is None or rejection.serial is None:
            return []
        run = self.runs.active(rejection.line, from_us(rejection.ts_us))
        context = self._context(run.run_number) if run is not None else None
        if context is None:
            return []
        monitor = self._label_monitor(rejection.source, context, rejection.line)
        findings = monitor.observe_invalid(
            rejection.serial, rejection.reason, rejection.ts_us, line=rejection.line
        )
        return self._apply(findings, {"label_reorder_window": self.config.label_reorder_window})

    def _label_monitor(self, device: str, run: RunContext, line: str) -> LabelSequenceMonitor:
        key = (device, run.run_number)
        monitor = self.labels.get(key)
        if monitor is None:
            monitor = LabelSequenceMonitor(
                device,
                run.run_number,
                line=line,
                reorder_window=self.config.label_reorder_window,
                outages=self.outages,
            )
            self.labels[key] = monitor
        return monitor

    def _device_changeover(self, event: DeviceEvent) -> list[Record]:
        """A checkweigher announces a changeover: the line's ℮ batches close with their
        packer's records, and the next packs start the next product's statistics."""
        if event.line is None or not event.detail.get("active"):
            return []
        result = self.emark.close_line(event.line, event.ts_us)
        self.line_product.pop(event.line, None)
        out = self._apply(result.findings, self._emark_config())
        return out + [self._batch_record(r) for r in result.closed_records]

    def tick(self) -> list[Record]:
        """Time passing: shelving ends, batch windows close, silent probes are faults; once a
        minute, every run's compliance and shelf life are checked."""
        now = self.clock.wall_us()
        out: list[Record] = self._records(self.book.tick(now))
        out += self._expire_waiting(now)
        if now - self._last_run_checks_us >= RUN_CHECK_INTERVAL_US:
            self._last_run_checks_us = now
            out += self.check_runs(now)
        result = self.emark.tick(now)
        out += self._apply(result.findings, self._emark_config())
        out += [self._batch_record(r) for r in result.closed_records]
        for probe, monitor in self.probes.values():
            if findings := monitor.tick(now):
                out += self._apply(findings, self._probe_config(probe))
        return out + self._devices(self.device_watch.tick(now))

    def check_runs(self, now: int) -> list[Record]:
        """Compliance and freeze-down for every known run that has started."""
        out: list[Record] = []
        today = from_us(now).date()
        for run in self.runs.runs():
            if run.actual_start is None:
                continue
            context = self._context(run.run_number)
            if context is None:
                continue
            # Yield is judged when the run has ended: mid-run it climbs from 0 %.
            packed = (
                Decimal(self.packed_g[run.run_number]) / 1000
                if run.actual_end is not None and self.packed_g[run.run_number]
                else None
            )
            findings = check_run(
                context,
                now,
                yield_warn_pct=Decimal(str(self.config.yield_warn_pct)),
                packed_kg=packed,
                scans_without_parent=self.orphan_scans.get(run.run_number, ()),
            )
            out += self._apply(findings, {"yield_warn_pct": self.config.yield_warn_pct})
            if run.actual_end is None:
                freeze = freeze_down_finding(
                    context, today, now, freeze_day=self.config.freeze_down_day
                )
                if freeze is not None:
                    out += self._apply([freeze], {"freeze_down_day": self.config.freeze_down_day})
        return out

    def _context(self, run_number: str | None) -> RunContext | None:
        if run_number is None:
            return None
        run = self.runs.get(run_number)
        if run is None:
            return None
        cached = self._contexts.get(run_number)
        if cached is None or cached[0] is not run:
            cached = (run, run_context(run, self.config))
            self._contexts[run_number] = cached
        return cached[1]

    # ---------------------------------------------------------------- packs

    def decide_product(self, pack: PackEvent) -> PackEvent:
        """The pack with its product decided (``plu``, ``product_source``), before it is
        stored; flagged PRODUCT_UNKNOWN when nothing decides it. A pack whose own label will
        decide it (rules/products.py) is returned as it is and decided when the label is
        read, or found undecidable after :data:`LABEL_WAIT_S`."""
        if pack.product_source is not None or pack.flags & RecordFlag.PRODUCT_UNKNOWN:
            return pack
        run = self._context(pack.run_number)
        if run is None:
            return pack
        # Its label may have been read already (a scanner answers faster than a polled
        # checkweigher): then it can decide now.
        label = (
            self.labels_ahead.get((pack.line, pack.label_seq))
            if pack.label_seq is not None
            else None
        )
        decision = decide(pack, run, self.programs.get(pack.device, {}), label=label)
        if decision.plu is not None:
            return dataclasses.replace(pack, plu=decision.plu, product_source=decision.source)
        if self._waits_for_label(pack, decision):
            return pack
        return dataclasses.replace(pack, flags=pack.flags | RecordFlag.PRODUCT_UNKNOWN)

    def _waits_for_label(self, pack: PackEvent, decision: ProductDecision) -> bool:
        # Only where several products are left (not a device's unknown program) and a
        # scanner on the line can read the pack's label.
        return (
            decision.left > 1
            and pack.program is None
            and pack.label_seq is not None
            and pack.line in self.label_lines
        )

    def _pack(self, pack: PackEvent) -> list[Record]:
        uncertain = bool(pack.flags & RecordFlag.VALUES_UNCERTAIN)
        if uncertain:
            self.uncertain_packs[pack.line] += 1
        elif pack.label_seq is not None:
            # An uncertain pack's label number may be its neighbour's: it must not give a
            # label the wrong weight to check against.
            self.pack_weights[(pack.line, pack.label_seq)] = pack.net_g
            if len(self.pack_weights) > _PACKS_REMEMBERED:
                self.pack_weights.popitem(last=False)
        run = self._context(pack.run_number)
        if run is None:
            return []
        if pack.accepted is not False:
            # Yield counts an uncertain pack too: it was packed, and its weight is a
            # neighbour's at worst, a few grams out in a run's tonnes.
            self.packed_g[run.run_number] += round(pack.net_g)
        pack = self.decide_product(pack)  # done by the pipeline before storing, normally
        product = product_by_plu(pack.plu, run)
        if product is None:
            if (
                pack.label_seq is not None
                and pack.product_source is None
                and not pack.flags & RecordFlag.PRODUCT_UNKNOWN
            ):
                self.awaiting_label[(pack.line, pack.label_seq)] = pack
                while len(self.awaiting_label) > _PACKS_REMEMBERED:
                    self.awaiting_label.popitem(last=False)
                return []
            self.packs_without_product[pack.line] += 1
            return []
        return self._judge(pack, run, product)

    def _judge(self, pack: PackEvent, run: RunContext, product: ProductSpec) -> list[Record]:
        """℮ and giveaway for a pack whose product is known."""
        out: list[Record] = []
        if not pack.flags & RecordFlag.VALUES_UNCERTAIN:
            if pack.product_source != "label":
                # A product read off the labels cannot be what the labels are checked against.
                self.line_product[pack.line] = (run.run_number, product.plu)
            if pack.label_seq is not None:
                key = (pack.line, pack.label_seq)
                self.paired_lines.add(pack.line)
                self.pack_products[key] = product.plu
                if len(self.pack_products) > _PACKS_REMEMBERED:
                    self.pack_products.popitem(last=False)
                ahead = self.labels_ahead.pop(key, None)
                if ahead is not None and pack.product_source != "label":
                    findings = check_label_product(ahead, run, product, label_subject(ahead, run))
                    out += self._apply(findings, {})
        result = self.emark.observe(pack, run, product, pack.ts_us)
        out += self._apply(result.findings, self._emark_config())
        out += [self._batch_record(r) for r in result.closed_records]
        if not product.catch_weight and product.nominal_g is not None:
            stats = self.giveaway.get((run.run_number, product.plu))
            if stats is None:
                stats = GiveawayStats(line=run.line, run_number=run.run_number, product=product)
                self.giveaway[(run.run_number, product.plu)] = stats
            stats.observe(pack)
            if self._replaying:
                return out  # the statistics are the state; the finding is stored already
            threshold = self.config.threshold("giveaway_warn_pct", line=run.line, plu=product.plu)
            finding = check_giveaway(
                stats,
                Decimal(str(threshold)),
                min_count=self.config.giveaway_min_packs,
                ts_us=pack.ts_us,
            )
            out += self._apply([finding], {"giveaway_warn_pct": threshold})
        return out

    def _decided_late(self, pack: PackEvent, decision: ProductDecision, ts_us: int) -> list[Record]:
        """A waiting pack decided by its label (or found undecidable): the decision as a
        ``pack_product`` event beside the pack, then its ℮ and giveaway."""
        event = DeviceEvent(
            ts_us=ts_us,
            device=pack.device,
            line=pack.line,
            kind=PACK_PRODUCT_EVENT,
            detail={
                "run_number": pack.run_number,
                "pack_counter": pack.pack_counter,
                "label_seq": pack.label_seq,
                "pack_ts_us": pack.ts_us,
                "plu": decision.plu,
                "source": decision.source,
                "reason": decision.reason,
            },
        )
        out: list[Record] = [] if self._replaying else [event]
        run = self._context(pack.run_number)
        product = product_by_plu(decision.plu, run) if run is not None else None
        if run is None or product is None:
            self.packs_without_product[pack.line] += 1
            return out
        decided = dataclasses.replace(pack, plu=product.plu, product_source=decision.source)
        return out + self._judge(decided, run, product)

    def _expire_waiting(self, now: int) -> list[Record]:
        out: list[Record] = []
        while self.awaiting_label:
            key, pack = next(iter(self.awaiting_label.items()))
            if now - pack.ts_us < LABEL_WAIT_S * 1_000_000:
                break
            del self.awaiting_label[key]
            run = self._context(pack.run_number)
            reason = f"its label was not read within {LABEL_WAIT_S} s"
            if run is not None:
                fallback = decide(pack, run, self.programs.get(pack.device, {}))
                reason = f"{fallback.reason}; {reason}" if fallback.reason else reason
            out += self._decided_late(pack, ProductDecision(None, None, reason), now)
        return out

    def _temperature(self, reading: TemperatureReading) -> list[Record]:
        entry = self.probes.get((reading.device, reading.probe))
        if entry is None:
            return []
        probe, monitor = entry
        findings = monitor.observe(reading, reading.ts_us)
        if monitor.in_breach and not self._replaying:
            # The open breach with its value now: the alert shows it live (rules/haccp.py).
            reported = {f.rule for f in findings}
            findings += [f for f in monitor.live(reading.ts_us) if f.rule not in reported]
        if not findings:
            return []  # the usual case: the settings are serialised only for an alert
        return self._apply(findings, self._probe_config(probe))

    def _probe_fault(self, rejected: RejectedInput) -> list[Record]:
        """A probe's device sent a fault code instead of a temperature: a sensor fault.

        ``source`` is the device and ``tag`` the probe (adapters/roles.py builds it so).
        Repeats and the "repeated N times" summary rows of the same code change nothing.
        """
        entry = self.probes.get((rejected.source, rejected.tag))
        if entry is None:
            return []
        probe, monitor = entry
        findings = monitor.observe_fault(rejected.ts_us, rejected.raw, line=rejected.line)
        return self._apply(findings, self._probe_config(probe)) if findings else []

    def _label(self, scan: LabelScan) -> list[Record]:
        run = self._context(scan.run_number)
        if run is None:
            return []
        out: list[Record] = []
        monitor = self._label_monitor(scan.device, run, scan.line)
        if scan.batch and not any(scan.batch in r.batch_codes for r in self.runs.runs()):
            orphans = self.orphan_scans.setdefault(run.run_number, [])
            if scan.batch not in orphans:
                orphans.append(scan.batch)
        config = {"label_reorder_window": self.config.label_reorder_window}
        out += self._apply(monitor.observe_scan(scan, scan.ts_us), config)
        seq = sequence_number(scan.serial)
        pack_net = self.pack_weights.get((scan.line, seq)) if seq is not None else None
        plu = next((p.plu for p in run.products if p.gtin and p.gtin == scan.gtin), None)
        tolerance = self.config.threshold("label_weight_tolerance_g", line=scan.line, plu=plu)
        out += self._apply(
            check_label_content(scan, run, pack_net, Decimal(str(tolerance))),
            {"label_weight_tolerance_g": tolerance},
        )
        out += self._apply(
            check_use_by(scan, run, base_days=self.config.shelf_life_base_days),
            {"shelf_life_base_days": self.config.shelf_life_base_days},
        )
        return out + self._label_product(scan, run)

    def _label_product(self, scan: LabelScan, run: RunContext) -> list[Record]:
        """The label decides its waiting pack's product, then must name the product packed."""
        out: list[Record] = []
        seq = sequence_number(scan.serial)
        key = (scan.line, seq) if seq is not None else None
        waiting = self.awaiting_label.pop(key, None) if key is not None else None
        if waiting is not None:
            pack_run = self._context(waiting.run_number)
            decision = (
                decide(waiting, pack_run, self.programs.get(waiting.device, {}), label=scan)
                if pack_run is not None
                else ProductDecision(None, None, "its run is unknown")
            )
            if decision.plu is None:
                decision = dataclasses.replace(
                    decision, reason=f"{decision.reason}; its label names none of them"
                )
            out += self._decided_late(waiting, decision, scan.ts_us)
        plu = self.pack_products.get(key) if key is not None else None
        if plu is None and key is not None:
            # Read before its pack came in: the pack may still need it to decide its
            # product (decide_product looks here).
            self.labels_ahead[key] = scan
            while len(self.labels_ahead) > _LABELS_AHEAD:
                self.labels_ahead.popitem(last=False)
            if scan.line in self.paired_lines:
                # Packs on this line carry their label number: the label is checked against
                # its own pack when that comes in, not against whatever the line packed
                # last (at a changeover the two differ).
                return out
        if plu is None:
            current = self.line_product.get(scan.line)
            plu = current[1] if current is not None and current[0] == run.run_number else None
        findings = check_label_product(
            scan, run, product_by_plu(plu, run), label_subject(scan, run)
        )
        return out + self._apply(findings, {})

    # ---------------------------------------------------------------- operators

    def refs(self) -> dict[str, str]:
        """A short reference for each alert that is active or awaits acknowledgement
        (:mod:`rules.alert_refs`), unique among them."""
        return short_refs([a.id for a in (*self.book.active(), *self.book.unacknowledged())])

    def select(
        self,
        *,
        alert: str | None = None,
        rule: str | None = None,
        line: str | None = None,
        to_shelve: bool = False,
    ) -> list[str]:
        """The ids of the alerts an operator command names: one alert (by id or short
        reference), or every alert of a rule and/or a line awaiting acknowledgement
        (``to_shelve``: every active one), oldest first.

        Raises:
            KeyError: no alert matches.
            ValueError: nothing to select by, or a reference naming several alerts.
        """
        if alert is None and rule is None and line is None:
            raise ValueError("name an alert (id or reference), a rule or a line")
        candidates = self.book.active() if to_shelve else self.book.unacknowledged()
        if alert is not None:
            try:
                self.book.get(alert)
            except KeyError:
                pool = {a.id for a in (*self.book.active(), *self.book.unacknowledged())}
                alert = resolve_ref(alert, pool)
            chosen = [alert]
        else:
            chosen = [
                a.id
                for a in candidates
                if (rule is None or a.rule == rule) and (line is None or a.line == line)
            ]
        if not chosen:
            what = " and ".join(
                f"{k} {v}" for k, v in (("rule", rule), ("line", line)) if v is not None
            )
            state = "active" if to_shelve else "awaiting acknowledgement"
            raise KeyError(f"no alert {state} for {what}")
        return chosen

    def acknowledge(self, alert_id: str, operator: str, comment: str) -> list[Record]:
        """An operator acknowledges an alert (by id or short reference); latching alerts,
        and an ``emark_t2`` of a batch already closed, clear with it."""
        now = self.clock.wall_us()
        [alert_id] = self.select(alert=alert_id)
        transitions = [self.book.acknowledge(alert_id, operator, comment or None, now)]
        alert = self.book.get(alert_id)
        if alert is not None and alert.active and self._latched(alert):
            transitions += self.book.apply(
                Finding(
                    rule=alert.rule,
                    subject=alert.subject,
                    active=False,
                    severity=alert.severity,
                    message=f"acknowledged by {operator}",
                    ts_us=now,
                    line=alert.line,
                )
            )
        return self._records(transitions)

    def _latched(self, alert: Alert) -> bool:
        """Whether an active alert waits only for its acknowledgement to clear."""
        if alert.rule in LATCHING_RULES:
            return True
        # An emark_t2 whose batch has closed (its clear was held back for the operator).
        return alert.rule == RULE_T2 and all(
            b.subject != alert.subject for b in self.emark.open_batches()
        )

    def shelve(self, alert_id: str, operator: str, minutes: float, comment: str) -> list[Record]:
        """An operator shelves an alert (by id or short reference) for a while."""
        now = self.clock.wall_us()
        [alert_id] = self.select(alert=alert_id, to_shelve=True)
        until = now + round(minutes * 60_000_000)
        return self._records([self.book.shelve(alert_id, operator, until, now, comment)])

    def set_line_mode(
        self, line: str, mode: str, *, operator: str | None = None, ts_us: int | None = None
    ) -> list[Record]:
        """Set a line to production, changeover or washdown (suppresses production alerts).

        The change is itself a record (a ``line_mode`` event of the ``operator`` source,
        naming the ``operator`` who made it): it closes the line's ℮ batch, so a restart
        must see it to rebuild the same batches, and the line's mode must outlive the
        process. ``ts_us`` is given when replaying. Closing the batch leaves an
        ``emark_t2`` alert nobody has acknowledged active (see :meth:`_apply`).
        """
        now = self.clock.wall_us() if ts_us is None else ts_us
        previous = str(self.book.line_mode(line))
        out: list[Record] = []
        if not self._replaying:
            detail: dict[str, Any] = {"mode": mode, "previous_mode": previous}
            if operator is not None:
                detail["operator"] = operator
            out.append(
                DeviceEvent(
                    ts_us=now,
                    device=OPERATOR_SOURCE,
                    kind=LINE_MODE_EVENT,
                    line=line,
                    detail=detail,
                )
            )
        out += self._records(self.book.set_line_mode(line, mode, now, operator))
        if mode != "production":
            result = self.emark.close_line(line, now)
            out += self._apply(result.findings, self._emark_config())
            out += [self._batch_record(r) for r in result.closed_records]
        return out

    # ---------------------------------------------------------------- restart

    def replay(self, records: Iterable[Record]) -> int:
        """Rebuild the rules' state from stored records, oldest first; how many were taken.

        Every stored pack, temperature reading, label scan and line-mode change of the
        recent past goes through the same rules again, so the open ℮ batches, giveaway
        statistics, HACCP monitors and label windows are what they were before the stop
        (a crash or a planned one). The alerts those records caused are already stored:
        the findings go to a scratch book and are dropped, and :meth:`restore` rebuilds the
        real book from the stored transitions.
        """
        live_book, live_listeners = self.book, self.listeners
        self.book = AlertBook(never_suppress=NEVER_SUPPRESSED)
        self.listeners = []
        self._replaying = True
        taken = 0
        try:
            for record in records:
                taken += 1
                if isinstance(record, DeviceEvent) and record.kind == LINE_MODE_EVENT:
                    mode = str(record.detail.get("mode", "production"))
                    if record.line is not None and mode in LINE_MODES:
                        self.set_line_mode(record.line, mode, ts_us=record.ts_us)
                else:
                    self.evaluate(record)
        finally:
            self.book, self.listeners = live_book, live_listeners
            self._replaying = False
        return taken

    def resume(self, recorded_batches: Collection[tuple[str, str, str, int]]) -> None:
        """After :meth:`replay`: forget ℮ batches already recorded before the stop, and let
        the probes' silence count from now (the gateway was away, not the probes)."""
        self.emark.forget_recorded(recorded_batches)
        now = self.clock.wall_us()
        for _probe, monitor in self.probes.values():
            monitor.resume(now)

    def restore_line_modes(self, modes: Mapping[str, str]) -> list[Record]:
        """Put each line back in its last stored mode (a restart in washdown stays there)."""
        now = self.clock.wall_us()
        transitions: list[AlertTransition] = []
        for line, mode in modes.items():
            if mode in LINE_MODES:
                transitions += self.book.set_line_mode(line, mode, now)
        return self._records(transitions)

    def restore(self, records: Iterable[tuple[Any, ...]]) -> list[Record]:
        """Rebuild the alert book from stored alert transitions (oldest first).

        The engine's own rules keep their alerts as they were: :meth:`replay` rebuilds the
        state that raised them, so they clear when the condition does, and latching ones
        wait for an operator. An active alert of another source (the ERP poller, the store,
        sync) describes a condition this process has not looked at yet: it is cleared now
        and raised again if that source finds the condition still holds.
        """
        now = self.clock.wall_us()
        transitions = list(self.book.restore(fold_alerts(records)))
        for alert in self.book.active():
            if alert.rule in LATCHING_RULES or alert.rule.startswith(ENGINE_RULE_PREFIXES):
                continue
            transitions += self.book.apply(
                Finding(
                    rule=alert.rule,
                    subject=alert.subject,
                    active=False,
                    severity=alert.severity,
                    message="cleared at gateway restart; judged again on new data",
                    ts_us=now,
                    line=alert.line,
                )
            )
        return self._records(transitions)

    def clock_stepped(self, step_s: float) -> None:
        """The wall clock was stepped: the probes' silence and debounce timers follow it, so a
        step forward raises no "no data" fault and readings after a step back are not
        ignored as old ones."""
        delta_us = round(step_s * 1_000_000)
        for _probe, monitor in self.probes.values():
            monitor.shift_time(delta_us)

    def andon(self, line: str) -> str:
        """The andon colour of a line: green, amber or red."""
        return self.book.andon_state(line)

    # ---------------------------------------------------------------- plumbing

    def _apply(self, findings: Sequence[Finding], config: Mapping[str, object]) -> list[Record]:
        transitions: list[AlertTransition] = []
        for found in findings:
            if found.rule == RULE_T2 and not found.active:
                open_alert = self.book.open_alert(found.rule, found.subject)
                if open_alert is not None and not open_alert.acknowledged:
                    # The batch closed (the hour, a changeover, washdown) but nobody has
                    # acknowledged the pack below T2: it stays active until someone does,
                    # and the andon stays red meanwhile (a closing batch is no operator).
                    continue
            transitions += self.book.apply(self._with_action(found), config)
        return self._records(transitions)

    def _with_action(self, finding: Finding) -> Finding:
        """An active finding with its rule's corrective action (``[rules.actions]``) after
        its message and in its detail: the alert says what to do (rules/actions.py)."""
        action = self.config.action(finding.rule) if finding.active else ""
        if not action:
            return finding
        return dataclasses.replace(
            finding,
            message=f"{finding.message}. Action: {action}",
            detail={**finding.detail, "action": action},
        )

    def _records(self, transitions: Iterable[AlertTransition]) -> list[Record]:
        out: list[Record] = []
        for t in transitions:
            out.append(
                AlertRecord(
                    ts_us=t.ts_us,
                    alert_id=t.alert_id,
                    rule=t.rule,
                    subject=t.subject,
                    severity=t.severity,
                    state=str(t.event),
                    message=t.message,
                    line=t.line,
                    detail=_jsonable(t.detail),
                )
            )
            if not self._replaying:
                run = t.detail.get("run_number")
                log.info(
                    "alert %s %s: %s",
                    t.event,
                    t.alert_id,
                    t.message,
                    extra={"line": t.line, "run": run if isinstance(run, str) else None},
                )
        for record in out:
            for listener in self.listeners:
                listener(record)  # type: ignore[arg-type]
        return out

    def summary(self, line: str, limit: int = 10) -> list[dict[str, object]]:
        """The active alerts of a line, most severe first, for the andon board."""
        order = {"critical": 0, "major": 1, "warning": 2}
        active = sorted(self.book.active(line), key=lambda a: (order[str(a.severity)], a.raised_us))
        refs = self.refs()
        return [
            {
                "id": a.id,
                "ref": refs.get(a.id, ""),
                "rule": a.rule,
                "subject": a.subject,
                "severity": str(a.severity),
                "message": a.message,
                "acknowledged": a.acknowledged,
                "occurrences": a.occurrences,
            }
            for a in active[:limit]
        ]

    def _batch_record(self, record: BatchRecord) -> EmarkBatchRecord:
        return EmarkBatchRecord(
            ts_us=self.clock.wall_us(),
            line=record.line,
            run_number=record.run_number,
            plu=record.plu,
            qn_g=str(record.qn),
            tne_g=str(record.tne),
            t1_g=str(record.t1),
            t2_g=str(record.t2),
            start_us=record.start_us,
            end_us=record.end_us,
            n=record.n,
            mean_g=str(record.mean),
            sd_g=str(record.sd),
            below_t1=record.below_t1,
            below_t2=record.below_t2,
            verdict=record.verdict,
            reasons=tuple(record.reasons),
            rejected=record.rejected,
            uncertain=record.uncertain,
        )

    def _emark_config(self) -> dict[str, object]:
        return {
            "emark_batch_minutes": self.config.emark_batch_minutes,
            "emark_min_packs": self.config.emark_min_packs,
        }

    @staticmethod
    def _probe_config(probe: ProbeRules) -> dict[str, object]:
        return probe.model_dump(mode="json")


def _jsonable(value: object) -> Any:
    """Decimals, dates and tuples in alert details as JSON (no NaN can get here)."""
    return json.loads(json.dumps(value, default=str))


def fold_alerts(records: Iterable[tuple[Any, ...]]) -> list[Alert]:
    """Alert views from stored transitions.

    ``records`` are rows ``(ts_us, alert_id, rule, subject, line, severity, state, message,
    detail)`` in commit order. The newest state of each alert wins.
    """
    alerts: dict[str, Alert] = {}
    for ts_us, alert_id, rule, subject, line, severity, state, message, detail_text in records:
        detail = json.loads(detail_text) if isinstance(detail_text, str) else {}
        current = alerts.get(alert_id)
        if current is None:
            current = Alert(
                id=alert_id,
                rule=rule,
                subject=subject,
                line=line,
                severity=severity,
                state=AlertState.UNACKNOWLEDGED,
                raised_us=ts_us,
                message=message,
            )
        changes: dict[str, Any] = {
            key: detail[key]
            for key in ("occurrences", "first_us", "last_us", "value")
            if isinstance(detail.get(key), int | float) and not isinstance(detail[key], bool)
        }
        if state in ("raised", "updated"):
            changes |= {
                "message": message,
                "severity": severity,
                "published": Published(
                    Severity(severity),
                    changes.get("value"),
                    changes.get("occurrences", 1),
                    ts_us,
                ),
            }
        elif state == "cleared":
            changes |= {"cleared_us": ts_us}
        elif state == "acknowledged":
            changes |= {
                "acknowledged_by": detail.get("operator"),
                "acknowledged_us": ts_us,
                "comment": detail.get("comment") or "",
            }
        elif state == "shelved":
            changes |= {"shelved_until_us": detail.get("until_us")}
        elif state == "unshelved":
            changes |= {"shelved_until_us": None}
        current = dataclasses.replace(current, **changes)
        alerts[alert_id] = dataclasses.replace(current, state=_state_of(current))
    return list(alerts.values())


def _state_of(alert: Alert) -> AlertState:
    if alert.shelved_until_us is not None:
        return AlertState.SHELVED
    if alert.cleared_us is not None:
        return AlertState.CLEARED if alert.acknowledged else AlertState.CLEARED_UNACKNOWLEDGED
    return AlertState.ACKNOWLEDGED if alert.acknowledged else AlertState.UNACKNOWLEDGED


__all__ = ["RulesEngine", "fold_alerts", "run_context"]
