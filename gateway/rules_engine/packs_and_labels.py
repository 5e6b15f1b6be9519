"""Packs and their labels: the product of each pack, its ℮ and giveaway, and each label
scan checked against its run and its pack (rules/products.py, rules/emark.py,
rules/giveaway.py, rules/labels.py, rules/shelf_life.py)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from gateway.core.records import (
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    RecordFlag,
)
from gateway.rules_engine.events import PACK_PRODUCT_EVENT
from gateway.rules_engine.state import PACKS_REMEMBERED, EngineState
from rules.giveaway import GiveawayStats
from rules.giveaway import check as check_giveaway
from rules.labels import (
    check_label_content,
    label_subject,
    sequence_number,
)
from rules.model import Product, RunContext
from rules.products import ProductDecision, check_label_product, decide, product_by_plu
from rules.shelf_life import check_use_by

LABELS_AHEAD = 1_000
"""Labels kept waiting for their pack: a few seconds of a fast line, with room to spare."""
LABEL_WAIT_S = 30
"""How long a pack waits for its label to decide its product (a scanner reads a label
seconds after the pack is weighed; 30 s covers a slow line without holding many packs)."""


class PackAndLabelRules(EngineState):
    """The rules engine's part that judges packs and label scans."""

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
            self.pack_weights.put(pack.line, pack.label_seq, pack.net_g)
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
                while len(self.awaiting_label) > PACKS_REMEMBERED:
                    self.awaiting_label.popitem(last=False)
                return []
            self.packs_without_product[pack.line] += 1
            return []
        return self._judge(pack, run, product)

    def _judge(self, pack: PackEvent, run: RunContext, product: Product) -> list[Record]:
        """℮ and giveaway for a pack whose product is known."""
        out: list[Record] = []
        if not pack.flags & RecordFlag.VALUES_UNCERTAIN:
            if pack.product_source != "label":
                # A product read off the labels cannot be what the labels are checked against.
                self.line_product[pack.line] = (run.run_number, product.plu)
            if pack.label_seq is not None:
                key = (pack.line, pack.label_seq)
                self.paired_lines.add(pack.line)
                self.pack_products.put(pack.line, pack.label_seq, product.plu)
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

    def _label(self, scan: LabelScan) -> list[Record]:
        run = self._context(scan.run_number)
        if run is None:
            return []
        out: list[Record] = []
        monitor = self._label_monitor(scan.device, run, scan.line)
        if scan.batch and not self.runs.knows_batch_code(scan.batch):
            orphans = self.orphan_scans.setdefault(run.run_number, [])
            if scan.batch not in orphans:
                orphans.append(scan.batch)
        config = {"label_reorder_window": self.config.label_reorder_window}
        out += self._apply(monitor.observe_scan(scan, scan.ts_us), config)
        seq = sequence_number(scan.serial)
        pack_net = self.pack_weights.get(scan.line, seq) if seq is not None else None
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
        plu = self.pack_products.get(scan.line, seq) if seq is not None else None
        if plu is None and key is not None:
            # Read before its pack came in: the pack may still need it to decide its
            # product (decide_product looks here).
            self.labels_ahead[key] = scan
            while len(self.labels_ahead) > LABELS_AHEAD:
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


__all__ = ["LABEL_WAIT_S", "PackAndLabelRules"]
