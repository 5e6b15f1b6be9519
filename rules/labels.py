"""Label rules: the labeller's running number (gaps, duplicates) and what a label says.

Traceability: every pack must carry a label that traces to the raw-material batch of its run
(Reg (EC) 178/2002 Art 18 one-step-back/one-step-forward traceability, as applied to fishery
products by Reg (EC) 853/2004), so

* a missing label number is a traceability gap (docs/reference/glossary.md "Label sequence"): which
  pack got which label can no longer be reconciled. GS1 does not require AI 21 serials to be
  sequential and no public standard defines "label gap" detection (docs/reference/domain-rules.md
  §4.4); the gap/duplicate/out-of-order classification with a grace window for late reads is the
  design of docs/reference/domain-rules.md §4.4. Labels printed while the scanner or the gateway was
  down are never scanned: such a gap names the outage (:mod:`rules.outages`) as its likely cause,
  and each gap is an alert of its own;
* a label whose batch (AI 10) is not one of its run's batch codes, or has none, cannot be
  traced at all (docs/reference/glossary.md "Batch code", "OCM labels, scan-back");
* a label's net weight (AI 310n) must be the weight of the pack it is on: for catch-weight
  packs the price is computed from it.
"""

from __future__ import annotations

from gateway.core.records import LabelScan, PackEvent
from rules.label_content import GS1_CSET82, check_label_content
from rules.label_numbers import LISTED, LabelNumbers, PendingGap, ReportedGap
from rules.label_subjects import (
    RULE_BATCH,
    RULE_DUPLICATE,
    RULE_GAP,
    RULE_INVALID,
    RULE_OUT_OF_SEQUENCE,
    RULE_WEIGHT,
    batch_subject,
    label_name,
    label_subject,
    sequence_number,
    weight_subject,
)
from rules.model import Finding, Severity
from rules.outages import Outage, OutageLog

__all__ = [
    "GS1_CSET82",
    "RULE_BATCH",
    "RULE_DUPLICATE",
    "RULE_GAP",
    "RULE_INVALID",
    "RULE_OUT_OF_SEQUENCE",
    "RULE_WEIGHT",
    "LabelSequenceMonitor",
    "batch_subject",
    "check_label_content",
    "label_name",
    "label_subject",
    "sequence_number",
    "weight_subject",
]


class LabelSequenceMonitor:
    """The label running numbers of one labeller (or scanner) in one run.

    The first number seen sets the baseline; after it each number should be the previous
    highest + 1. A jump leaves the numbers it skipped *pending*: any of them read within
    ``reorder_window`` places of the jump (packs swap places on a conveyor, two scanners read
    one stream) fills its place silently. Once the highest number seen is more than
    ``reorder_window`` past a gap, the numbers still missing are reported:

    * ``label_gap`` (WARNING): one finding per gap, with a subject of its own,
      ``f"{device}/{run}/{first missing number}"``, so a later gap never overwrites an
      earlier one's alert. ``detail["missing"]`` is the gap's numbers not read since (the
      first 1000; ``missing_ranges`` has them all as ``[first, last]`` pairs), ``first`` and
      ``last`` the gap as it was reported. A number of the gap read later still is removed
      again (an update of that gap only; ``active=False`` once none of it is missing).
      When the numbers were skipped while the device's link or the gateway was down (an
      outage of the :class:`~rules.outages.OutageLog` given overlaps the time between the
      read before the jump and the jump), the gap was most likely printed then and never
      scanned: the message says so and ``detail["likely_cause"]`` names the outage.
    * ``label_duplicate`` (WARNING, subject ``f"{device}/{run}"``): a number already read.
    * ``label_out_of_sequence`` (WARNING, subject ``f"{device}/{run}"``): a forward jump of
      more than ``max_gap`` numbers (too many to be a gap: a reset, a misread, another run's
      label), or a number below the baseline by more than the window. A jump across an
      outage is a gap up to ``max_outage_gap`` numbers: a long outage leaves many labels
      unscanned. The number is not taken into the sequence; after a real counter reset call
      :meth:`rebaseline`.

    Only the count of numbers decides when a gap is due, not time: at the end of the run
    call :meth:`close` to report what is still pending.
    """

    def __init__(
        self,
        device: str,
        run: str,
        *,
        line: str | None = None,
        reorder_window: int = 3,
        max_gap: int = 1000,
        max_outage_gap: int = 100_000,
        outages: OutageLog | None = None,
    ) -> None:
        """Watch ``device``'s numbers in ``run``.

        Args:
            device: the labeller or scanner.
            run: the run number.
            line: the line for findings until a record names one.
            reorder_window: how far (in numbers) a late read may trail the highest number.
            max_gap: the largest forward jump still taken as a gap.
            max_outage_gap: the largest forward jump still taken as a gap when the device
                or the gateway was down in between (at least ``max_gap``).
            outages: the outages of the records seen so far (none if not given).
        """
        if reorder_window < 0:
            raise ValueError(f"reorder_window must be >= 0, got {reorder_window}")
        if max_gap < 1:
            raise ValueError(f"max_gap must be >= 1, got {max_gap}")
        if max_outage_gap < max_gap:
            raise ValueError(f"max_outage_gap must be >= max_gap, got {max_outage_gap}")
        self.device = device
        self.run = run
        self.subject = f"{device}/{run}"
        self.reorder_window = reorder_window
        self.max_gap = max_gap
        self.max_outage_gap = max_outage_gap
        self.outages = outages if outages is not None else OutageLog()
        self._line = line
        self._noun = "device"
        self._baseline: int | None = None
        self._high: int | None = None
        self._high_us: int | None = None
        """When the highest number was read: a jump's numbers were printed after it."""
        self._gaps: list[PendingGap] = []
        self._reported: list[ReportedGap] = []
        self._subjects: dict[str, int] = {}
        self.read = 0
        """Numbers taken into the sequence (first reads, late fills included)."""
        self.duplicates = 0
        self.unsequenced = 0
        """Records without a usable number (no serial, not digits, no label_seq)."""

    # ---------------------------------------------------------------------------- queries

    @property
    def baseline(self) -> int | None:
        """The lowest number of the sequence (the first read, or a late read below it)."""
        return self._baseline

    @property
    def last_number(self) -> int | None:
        """The highest sequence number read so far (``None`` before the first)."""
        return self._high

    @property
    def expected_next(self) -> int | None:
        """The number that should come next (``None`` before the first)."""
        return None if self._high is None else self._high + 1

    @property
    def pending(self) -> tuple[int, ...]:
        """Skipped numbers still inside the reorder window (not reported yet)."""
        return tuple(sorted(n for gap in self._gaps for n in gap.numbers))

    @property
    def missing(self) -> tuple[int, ...]:
        """Numbers reported missing and not read since (every one of them: see
        :attr:`missing_count` and :meth:`newest_missing` for a bounded view)."""
        return tuple(sorted(n for gap in self._reported for n in gap.numbers))

    @property
    def missing_count(self) -> int:
        """How many numbers are reported missing and not read since."""
        return sum(len(g.numbers) for g in self._reported)

    def newest_missing(self, limit: int) -> list[int]:
        """The highest ``limit`` numbers reported missing and not read since, lowest first."""
        newest = sorted(n for g in self._reported for n in g.numbers.highest(limit))
        return newest[-limit:] if limit > 0 else []

    @property
    def gap_subjects(self) -> tuple[str, ...]:
        """The subjects of the gaps with numbers still missing, oldest first."""
        return tuple(g.subject for g in self._reported)

    # ---------------------------------------------------------------------------- inputs

    def observe_scan(self, scan: LabelScan, ts_us: int) -> list[Finding]:
        """Take a label read; its number is the AI 21 serial (digits only)."""
        self._noun = "scanner"
        seq = sequence_number(scan.serial)
        if seq is None:
            self.unsequenced += 1
            return []
        return self.observe_number(seq, ts_us, line=scan.line)

    def observe_invalid(
        self, serial: str, reason: str, ts_us: int, *, line: str | None = None
    ) -> list[Finding]:
        """Take a read that was rejected as invalid but whose serial could still be read.

        The label was there and was read: its number counts as read (it is never listed as
        missing), and the read is a finding of its own, ``label_invalid`` (WARNING), naming
        the number and why the label is not valid.
        """
        self._noun = "scanner"
        seq = sequence_number(serial)
        findings = self.observe_number(seq, ts_us, line=line) if seq is not None else []
        if seq is None:
            self.unsequenced += 1
        findings.append(
            Finding(
                rule=RULE_INVALID,
                # One condition per scanner, run and reason (a labeller printing a wrong
                # check digit on every label is one fault), each read an occurrence.
                subject=f"{self.subject}/{reason}",
                active=True,
                severity=Severity.WARNING,
                message=f"{self.subject}: label {serial} read but not valid ({reason})",
                ts_us=ts_us,
                line=self._line,
                event=True,
                detail={
                    "device": self.device,
                    "run_number": self.run,
                    "serial": serial,
                    "reason": reason,
                },
            )
        )
        return findings

    def observe_pack(self, pack: PackEvent, ts_us: int) -> list[Finding]:
        """Take a pack from the checkweigher; its number is the labeller's ``label_seq``."""
        self._noun = "checkweigher"
        if pack.label_seq is None or pack.label_seq < 0:
            self.unsequenced += 1
            return []
        return self.observe_number(pack.label_seq, ts_us, line=pack.line)

    def observe_number(self, seq: int, ts_us: int, *, line: str | None = None) -> list[Finding]:
        """Take one running number read at ``ts_us``."""
        if line is not None:
            self._line = line
        if self._high is None or self._baseline is None:
            self._baseline = self._high = seq
            self._high_us = ts_us
            self.read += 1
            return []
        if seq > self._high:
            return self._ahead(seq, self._high, ts_us)
        return self._behind(seq, self._baseline, ts_us)

    def _ahead(self, seq: int, high: int, ts_us: int) -> list[Finding]:
        """A number above the highest so far: next in line, or a jump that leaves a gap."""
        skipped = seq - high - 1
        cause = self._cause(ts_us) if skipped else None
        if skipped > (self.max_gap if cause is None else self.max_outage_gap):
            return [self._out_of_sequence(seq, ts_us, cause)]
        if skipped:
            self._gaps.append(
                PendingGap(top=seq - 1, numbers=LabelNumbers(high + 1, seq - 1), cause=cause)
            )
        self._high = seq
        self._high_us = ts_us
        self.read += 1
        return self._due(ts_us, flush=False)

    def _behind(self, seq: int, baseline: int, ts_us: int) -> list[Finding]:
        """A number at or below the highest so far: a late read, a duplicate, or a stray."""
        for gap in self._gaps:
            if gap.numbers.discard(seq):
                if not gap.numbers:
                    self._gaps.remove(gap)
                self.read += 1
                return []
        for reported in self._reported:
            if reported.numbers.discard(seq):
                if not reported.numbers:
                    self._reported.remove(reported)
                self.read += 1
                return [self._found_late(reported, seq, ts_us)]
        if seq >= baseline:
            self.duplicates += 1
            return [self._duplicate(seq, ts_us)]
        if baseline - seq <= self.reorder_window:
            # A late read from just before the first number seen: the run started earlier.
            if baseline - seq > 1:
                self._gaps.append(
                    PendingGap(top=baseline - 1, numbers=LabelNumbers(seq + 1, baseline - 1))
                )
            self._baseline = seq
            self.read += 1
            return self._due(ts_us, flush=False)
        return [self._out_of_sequence(seq, ts_us, None)]

    def close(self, ts_us: int) -> list[Finding]:
        """The run ended on this device: report every number still pending as missing."""
        return self._due(ts_us, flush=True)

    def rebaseline(self, seq: int | None = None) -> None:
        """Start over (labeller reset, reprint series): the next number, or ``seq``, is the
        new baseline. Pending numbers are dropped; reported ones stay reported."""
        self._gaps.clear()
        self._baseline = self._high = seq
        self._high_us = None

    # ---------------------------------------------------------------------------- findings

    def _cause(self, ts_us: int) -> Outage | None:
        """The outage the numbers skipped by a jump read at ``ts_us`` were printed in."""
        if self._high_us is None:
            return None
        found = self.outages.between(self.device, self._high_us, ts_us)
        return found[0] if found else None

    def _gap_subject(self, first: int) -> str:
        subject = f"{self.subject}/{first}"
        used = self._subjects.get(subject, 0)
        self._subjects[subject] = used + 1
        # The same first number again (after a counter reset): a subject of its own still.
        return subject if used == 0 else f"{subject}#{used + 1}"

    def _due(self, ts_us: int, *, flush: bool) -> list[Finding]:
        high = self._high if self._high is not None else 0
        due = [g for g in self._gaps if flush or high - g.top > self.reorder_window]
        if not due:
            return []
        self._gaps = [g for g in self._gaps if g not in due]
        findings: list[Finding] = []
        for gap in sorted(due, key=lambda g: g.top):
            ranges = gap.numbers.ranges()
            first, last = ranges[0][0], ranges[-1][1]
            reported = ReportedGap(
                subject=self._gap_subject(first),
                first=first,
                last=last,
                numbers=gap.numbers,
                cause=gap.cause,
            )
            self._reported.append(reported)
            many = len(gap.numbers) > 1
            message = (
                f"{self.subject}: label number{'s' if many else ''} {gap.numbers.show()} missing"
            )
            if gap.cause is not None:
                message += f": printed while {gap.cause.describe(self._noun)}, not scanned"
            findings.append(
                Finding(
                    rule=RULE_GAP,
                    subject=reported.subject,
                    active=True,
                    severity=Severity.WARNING,
                    message=message,
                    ts_us=ts_us,
                    line=self._line,
                    detail=self._detail(reported, new_missing=gap.numbers.lowest(LISTED)),
                    value=len(gap.numbers),
                )
            )
        return findings

    def _found_late(self, gap: ReportedGap, seq: int, ts_us: int) -> Finding:
        still = bool(gap.numbers)
        return Finding(
            rule=RULE_GAP,
            subject=gap.subject,
            active=still,
            severity=Severity.WARNING,
            message=(
                f"{self.subject}: label {seq} read late"
                + (f"; still missing {gap.numbers.show()}" if still else "")
            ),
            ts_us=ts_us,
            line=self._line,
            detail=self._detail(gap, new_missing=[], found_late=[seq]),
            value=len(gap.numbers),  # labels still missing: each one found matters
        )

    def _duplicate(self, seq: int, ts_us: int) -> Finding:
        return Finding(
            rule=RULE_DUPLICATE,
            subject=self.subject,
            active=True,
            severity=Severity.WARNING,
            message=f"{self.subject}: label number {seq} read again",
            ts_us=ts_us,
            line=self._line,
            event=True,
            detail={
                "device": self.device,
                "run_number": self.run,
                "seq": seq,
                "duplicates": self.duplicates,
            },
        )

    def _out_of_sequence(self, seq: int, ts_us: int, cause: Outage | None) -> Finding:
        return Finding(
            rule=RULE_OUT_OF_SEQUENCE,
            subject=self.subject,
            active=True,
            severity=Severity.WARNING,
            message=(
                f"{self.subject}: label number {seq} out of sequence "
                f"(expected {self.expected_next}, first {self._baseline})"
            ),
            ts_us=ts_us,
            line=self._line,
            event=True,
            detail={
                "device": self.device,
                "run_number": self.run,
                "seq": seq,
                "expected": self.expected_next,
                "baseline": self._baseline,
                "max_gap": self.max_outage_gap if cause is not None else self.max_gap,
                "likely_cause": cause.as_detail() if cause is not None else None,
            },
        )

    def _detail(
        self, gap: ReportedGap, *, new_missing: list[int], found_late: list[int] | None = None
    ) -> dict[str, object]:
        detail: dict[str, object] = {
            "device": self.device,
            "run_number": self.run,
            "first": gap.first,
            "last": gap.last,
            "missing": gap.numbers.lowest(LISTED),
            "missing_ranges": gap.numbers.ranges(),
            "missing_count": len(gap.numbers),
            "new_missing": new_missing,
            "expected": self.expected_next,
            "reorder_window": self.reorder_window,
            "likely_cause": gap.cause.as_detail() if gap.cause is not None else None,
        }
        if found_late is not None:
            detail["found_late"] = found_late
        return detail
