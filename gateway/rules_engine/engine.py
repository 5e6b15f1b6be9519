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

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from gateway.core.records import (
    SENSOR_FAULT_CODE,
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    RejectedInput,
    TemperatureReading,
)
from gateway.core.runs import ProductionRun
from gateway.rules_engine.alert_folding import fold_alerts
from gateway.rules_engine.events import CHANGEOVER_EVENT, LINE_MODE_EVENT
from gateway.rules_engine.operator_actions import OperatorActions
from gateway.rules_engine.packs_and_labels import PackAndLabelRules
from gateway.runs import from_us
from rules.alerts import LINE_MODES, AlertBook
from rules.compliance import check_run
from rules.ids import ENGINE_RULES, NEVER_SUPPRESSED
from rules.model import AlertTransition, Finding
from rules.shelf_life import freeze_down_finding

log = logging.getLogger(__name__)

RUN_CHECK_INTERVAL_US = 60_000_000
"""Run compliance and freeze-down are checked once a minute (they change slowly)."""


class RulesEngine(PackAndLabelRules, OperatorActions):
    """The rules and the alert book of one gateway."""

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
        run = self.runs.active_us(rejection.line, rejection.ts_us)
        context = self._context(run.run_number) if run is not None else None
        if context is None:
            return []
        monitor = self._label_monitor(rejection.source, context, rejection.line)
        findings = monitor.observe_invalid(
            rejection.serial, rejection.reason, rejection.ts_us, line=rejection.line
        )
        return self._apply(findings, {"label_reorder_window": self.config.label_reorder_window})

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
        """Compliance and freeze-down for every known run that has started.

        An ended run whose last check found nothing is judged again only when its version,
        its grams packed or its orphan scans change: the compliance rules read nothing else
        (not the time), and an inactive finding with no open alert changes nothing in the
        book, so the same check again could only find nothing again. A gateway keeps every
        run it was told of, and judging months of them once a minute held the event loop
        for a quarter of a second with 10,000 runs.
        """
        out: list[Record] = []
        today = from_us(now).date()
        settled_runs = self.settled_runs
        for run in self.runs.runs():
            if run.actual_start is None:
                continue
            number = run.run_number
            packed_g = self.packed_g[number]
            orphans = len(self.orphan_scans.get(number, ()))
            if _unchanged(settled_runs.get(number), run, packed_g, orphans):
                continue
            context = self._context(number, keep=False)
            if context is None:
                continue
            # Yield is judged when the run has ended: mid-run it climbs from 0 %.
            packed = Decimal(packed_g) / 1000 if run.actual_end is not None and packed_g else None
            findings = check_run(
                context,
                now,
                yield_warn_pct=Decimal(str(self.config.yield_warn_pct)),
                packed_kg=packed,
                scans_without_parent=self.orphan_scans.get(number, ()),
            )
            out += self._apply(findings, {"yield_warn_pct": self.config.yield_warn_pct})
            if run.actual_end is not None and not any(f.active for f in findings):
                # The run alone when nothing was packed or orphaned (most of a long
                # history, whose per-run rule state a restart does not rebuild): no tuple
                # kept for each of thousands of runs.
                settled_runs[number] = (
                    run if not (packed_g or orphans) else (run, packed_g, orphans)
                )
            else:
                settled_runs.pop(number, None)
            if run.actual_end is None:
                freeze = freeze_down_finding(
                    context, today, now, freeze_day=self.config.freeze_down_day
                )
                if freeze is not None:
                    out += self._apply([freeze], {"freeze_down_day": self.config.freeze_down_day})
        return out

    def _temperature(self, reading: TemperatureReading) -> list[Record]:
        entry = self.probes.get((reading.device, reading.probe))
        if entry is None:
            return []
        probe, monitor = entry
        findings = monitor.observe(reading, reading.ts_us)
        if monitor.breached and not self._replaying:
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
        and raised again if that source finds the condition still holds. (The engine's
        rules are :data:`rules.ids.ENGINE_RULES`: compliance and freeze-down findings are
        judged again at the first tick; a device still down is judged again at the next
        tick, one back clears its alert.)
        """
        now = self.clock.wall_us()
        transitions = list(self.book.restore(fold_alerts(records)))
        for alert in self.book.active():
            if alert.rule in ENGINE_RULES:
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


def _unchanged(
    settled: ProductionRun | tuple[ProductionRun, int, int] | None,
    run: ProductionRun,
    packed_g: int,
    orphans: int,
) -> bool:
    """Whether an ended run was last judged, finding nothing, on this very version, these
    grams packed and this many orphan scans (see :meth:`RulesEngine.check_runs`)."""
    if settled is None:
        return False
    if not isinstance(settled, tuple):
        return settled is run and not packed_g and not orphans
    return settled[0] is run and settled[1] == packed_g and settled[2] == orphans


__all__ = ["RulesEngine"]
