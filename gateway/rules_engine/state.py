"""The rules engine's state, and how findings become alert records.

A finding goes through the one alert book (gateway/rules_engine/engine.py says why), with
the rule's corrective action; each transition becomes an :class:`AlertRecord`, logged and
passed to the listeners (the andon)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from gateway.config import ProbeRules, RulesSection
from gateway.core.clock import Clock
from gateway.core.records import (
    AlertRecord,
    EmarkBatchRecord,
    LabelScan,
    PackEvent,
    Record,
)
from gateway.core.runs import ProductionRun
from gateway.rules_engine.recent_by_label import RecentByLabel
from gateway.rules_engine.run_context import probe_limits, run_context
from gateway.runs import RunIndex
from rules.alerts import AlertBook
from rules.devices import DeviceWatch, WatchedDevice
from rules.emark import RULE_T2, BatchRecord, EmarkTracker
from rules.giveaway import GiveawayStats
from rules.haccp import ProbeMonitor
from rules.ids import NEVER_SUPPRESSED
from rules.labels import LabelSequenceMonitor
from rules.model import AlertTransition, Finding, RunContext
from rules.outages import OutageLog

log = logging.getLogger(__name__)

CONTEXTS_KEPT = 64
"""Runs whose rules view is kept between packs: each line's current run and the runs late
packs and labels name, many times over (a miss only costs building it again)."""

PACKS_REMEMBERED = 10_000
"""Recent packs remembered per kind (weights and products by label number, packs waiting
for their label)."""


class EngineState:
    """The state of the rules and the alert book of one gateway, and how the rules'
    findings become alert records (the parts of :class:`gateway.rules_engine.RulesEngine`
    build on it)."""

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
        self.pack_products: RecentByLabel[str] = RecentByLabel(PACKS_REMEMBERED)
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
        self.pack_weights: RecentByLabel[float] = RecentByLabel(PACKS_REMEMBERED)
        """The net weight of recent certain packs by (line, label number): what their labels
        must print."""
        self.packs_without_product: Counter[str] = Counter()
        self.uncertain_packs: Counter[str] = Counter()
        """Per line: packs flagged VALUES_UNCERTAIN, kept out of ℮, giveaway and label checks."""
        self.packed_g: Counter[str] = Counter()
        """Net grams packed per run (accepted packs), for the yield check."""
        self.orphan_scans: dict[str, list[str]] = {}
        """Per run: scanned batch codes that map to no known run (OCM scan-back orphans)."""
        self._contexts: dict[str, tuple[ProductionRun, RunContext]] = {}
        """The rules' view of the runs packs and labels came in for lately, at most
        :data:`CONTEXTS_KEPT` (the oldest is forgotten first): not one per run the store has
        kept over the years."""
        self.settled_runs: dict[str, ProductionRun | tuple[ProductionRun, int, int]] = {}
        """Ended runs whose last compliance check found nothing, with what it was judged on
        (the run's version, grams packed, orphan scans; the version alone when both are 0):
        the same inputs make the same findings, so they are not judged again until one of
        them changes."""
        self._last_run_checks_us = 0
        self.listeners: list[Callable[[AlertRecord], None]] = []
        """Called with every alert transition, after the book has taken it (the andon)."""
        self._replaying = False

    # ---------------------------------------------------------------- plumbing

    def _context(self, run_number: str | None, *, keep: bool = True) -> RunContext | None:
        """The rules' view of a known run; ``keep=False`` builds it without keeping it (the
        once-a-minute check of every run must not keep a copy of each in memory)."""
        if run_number is None:
            return None
        run = self.runs.get(run_number)
        if run is None:
            return None
        contexts = self._contexts
        cached = contexts.get(run_number)
        if cached is not None and cached[0] is run:
            return cached[1]
        context = run_context(run, self.config)
        if keep:
            if cached is None and len(contexts) >= CONTEXTS_KEPT:
                del contexts[next(iter(contexts))]
            contexts[run_number] = (run, context)
        return context

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


__all__ = ["EngineState"]
