"""Label rules: the labeller's running number (gaps, duplicates) and what a label says.

Traceability: every pack must carry a label that traces to the raw-material batch of its run
(Reg (EC) 178/2002 Art 18 one-step-back/one-step-forward traceability, as applied to fishery
products by Reg (EC) 853/2004), so

* a missing label number is a traceability gap (glossary "Label sequence"): which pack got
  which label can no longer be reconciled. GS1 does not require AI 21 serials to be
  sequential and no public standard defines "label gap" detection (domain-rules §4.4); the
  gap/duplicate/out-of-order classification with a grace window for late reads is the
  design of domain-rules §4.4. Labels printed while the scanner or the gateway was down
  are never scanned: such a gap names the outage (:mod:`rules.outages`) as its likely
  cause, and each gap is an alert of its own;
* a label whose batch (AI 10) is not one of its run's batch codes, or has none, cannot be
  traced at all (glossary "Batch code", "OCM labels, scan-back");
* a label's net weight (AI 310n) must be the weight of the pack it is on: for catch-weight
  packs the price is computed from it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from gateway.records import LabelScan, PackEvent
from rules.model import Finding, ProductSpec, RunContext, Severity
from rules.outages import Outage, OutageLog

__all__ = [
    "GS1_CSET82",
    "RULE_BATCH",
    "RULE_DUPLICATE",
    "RULE_GAP",
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

RULE_GAP: Final = "label_gap"
RULE_DUPLICATE: Final = "label_duplicate"
RULE_OUT_OF_SEQUENCE: Final = "label_out_of_sequence"
RULE_BATCH: Final = "label_batch"
RULE_WEIGHT: Final = "label_weight"
RULE_INVALID: Final = "label_invalid"

GS1_CSET82: Final = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
"""The characters an AI 10 batch may contain (GS1 General Specifications, CSET 82)."""

_BATCH_MAX_LEN: Final = 20
"""AI 10 is X..20 (GS1 Barcode Syntax Dictionary; domain-rules §4.1)."""


def sequence_number(serial: str | None) -> int | None:
    """The label's running number from its AI 21 serial: digits only, else ``None``."""
    if serial is None or not serial or not (serial.isascii() and serial.isdigit()):
        return None
    return int(serial)


def _printable(raw: bytes) -> str:
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def label_subject(scan: LabelScan, run: RunContext) -> str:
    """The subject of a finding about one label: ``line/run/serial`` (or the raw read)."""
    return f"{scan.line}/{run.run_number}/{scan.serial or _printable(scan.raw)}"


def label_name(scan: LabelScan) -> str:
    """How a message names one label: its serial, else its raw read."""
    return scan.serial or _printable(scan.raw)


def weight_subject(scan: LabelScan, run: RunContext) -> str:
    """The subject of ``label_weight``: ``line/run/product`` (the PLU of the label's GTIN,
    else the GTIN): a labeller printing the wrong weight is one condition of its product,
    however many labels show it (docs/alarms.md §1)."""
    product = _product(scan.gtin, run)
    what = product.plu if product is not None else (scan.gtin or "no GTIN")
    return f"{scan.line}/{run.run_number}/{what}"


def batch_subject(scan: LabelScan, run: RunContext) -> str:
    """The subject of ``label_batch``: ``line/run/batch:<the batch printed>`` (``-`` for
    none): the labeller set to a wrong batch is one condition, a second wrong batch another."""
    printed = _printable(scan.batch.encode()) if scan.batch and scan.batch.strip() else "-"
    return f"{scan.line}/{run.run_number}/batch:{printed}"


_LISTED: Final = 1000
"""At most this many numbers are listed in a gap's ``detail["missing"]``; its
``missing_ranges`` always hold all of them."""


class _Numbers:
    """Label numbers as sorted, disjoint, inclusive ranges: a gap of a million numbers (a long
    outage) is one pair, and each late read splits at most one range in two."""

    __slots__ = ("_count", "_ranges")

    def __init__(self, first: int, last: int) -> None:
        self._ranges: list[tuple[int, int]] = [(first, last)] if first <= last else []
        self._count = max(0, last - first + 1)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __contains__(self, n: object) -> bool:
        return isinstance(n, int) and self._index(n) is not None

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self._ranges:
            yield from range(lo, hi + 1)

    def _index(self, n: int) -> int | None:
        i = bisect_right(self._ranges, n, key=lambda r: r[0]) - 1
        return i if i >= 0 and self._ranges[i][1] >= n else None

    def discard(self, n: int) -> bool:
        """Remove ``n``; whether it was there."""
        i = self._index(n)
        if i is None:
            return False
        lo, hi = self._ranges[i]
        self._ranges[i : i + 1] = [(a, b) for a, b in ((lo, n - 1), (n + 1, hi)) if a <= b]
        self._count -= 1
        return True

    def ranges(self) -> list[list[int]]:
        """``[[first, last], ...]``, lowest first."""
        return [[lo, hi] for lo, hi in self._ranges]

    def lowest(self, limit: int) -> list[int]:
        """The lowest ``limit`` numbers."""
        out: list[int] = []
        for lo, hi in self._ranges:
            out.extend(range(lo, min(hi, lo + limit - len(out) - 1) + 1))
            if len(out) >= limit:
                break
        return out

    def highest(self, limit: int) -> list[int]:
        """The highest ``limit`` numbers, lowest first."""
        out: list[int] = []
        for lo, hi in reversed(self._ranges):
            out[:0] = range(max(lo, hi - (limit - len(out)) + 1), hi + 1)
            if len(out) >= limit:
                break
        return out

    def show(self, limit: int = 20) -> str:
        """E.g. ``4, 5, 6`` or ``265–301, 305``: runs of more than three numbers as ranges,
        at most ``limit`` items, then how many numbers are not shown."""
        items: list[str] = []
        shown = 0
        for lo, hi in self._ranges:
            if len(items) >= limit:
                break
            if hi - lo < 3:
                part = [str(n) for n in range(lo, hi + 1)][: limit - len(items)]
                items += part
                shown += len(part)
            else:
                items.append(f"{lo}–{hi}")
                shown += hi - lo + 1
        rest = self._count - shown
        return ", ".join(items) + (f" … (+{rest})" if rest else "")


@dataclass(slots=True)
class _Gap:
    """Numbers skipped by a jump, not yet reported (within the reorder window)."""

    top: int
    """The highest number of the gap when it opened: the reorder window counts from it."""
    numbers: _Numbers
    cause: Outage | None = None
    """The outage the skipped numbers were printed in, if they were printed in one."""


@dataclass(slots=True)
class _ReportedGap:
    """A gap reported missing: one finding (and so one alert) of its own."""

    subject: str
    first: int
    last: int
    numbers: _Numbers
    """The numbers of the gap still missing."""
    cause: Outage | None


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
        self._gaps: list[_Gap] = []
        self._reported: list[_ReportedGap] = []
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
            skipped = seq - self._high - 1
            cause = self._cause(ts_us) if skipped else None
            if skipped > (self.max_gap if cause is None else self.max_outage_gap):
                return [self._out_of_sequence(seq, ts_us, cause)]
            if skipped:
                self._gaps.append(
                    _Gap(top=seq - 1, numbers=_Numbers(self._high + 1, seq - 1), cause=cause)
                )
            self._high = seq
            self._high_us = ts_us
            self.read += 1
            return self._due(ts_us, flush=False)
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
        if seq >= self._baseline:
            self.duplicates += 1
            return [self._duplicate(seq, ts_us)]
        if self._baseline - seq <= self.reorder_window:
            # A late read from just before the first number seen: the run started earlier.
            if self._baseline - seq > 1:
                self._gaps.append(
                    _Gap(top=self._baseline - 1, numbers=_Numbers(seq + 1, self._baseline - 1))
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
            reported = _ReportedGap(
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
                    detail=self._detail(reported, new_missing=gap.numbers.lowest(_LISTED)),
                    value=len(gap.numbers),
                )
            )
        return findings

    def _found_late(self, gap: _ReportedGap, seq: int, ts_us: int) -> Finding:
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
        self, gap: _ReportedGap, *, new_missing: list[int], found_late: list[int] | None = None
    ) -> dict[str, object]:
        detail: dict[str, object] = {
            "device": self.device,
            "run_number": self.run,
            "first": gap.first,
            "last": gap.last,
            "missing": gap.numbers.lowest(_LISTED),
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


def _batch_problem(batch: str | None, run: RunContext) -> str | None:
    if batch is None or not batch.strip():
        return "absent"
    if len(batch) > _BATCH_MAX_LEN or not set(batch) <= GS1_CSET82:
        return "invalid"
    if batch not in run.batch_codes:
        return "not_in_run"
    return None


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _gtin14(gtin: str | None) -> str | None:
    if gtin is None or not (gtin.isascii() and gtin.isdigit()) or len(gtin) > 14:
        return None
    return gtin.zfill(14)


def _product(gtin: str | None, run: RunContext) -> ProductSpec | None:
    key = _gtin14(gtin)
    if key is None:
        return None
    return next((p for p in run.products if _gtin14(p.gtin) == key), None)


def check_label_content(
    scan: LabelScan, run: RunContext, pack_net_g: float | None, tolerance_g: Decimal
) -> list[Finding]:
    """What a label says against its run and its pack; only failed checks are returned.

    * ``label_batch`` (CRITICAL): the batch (AI 10) is absent, not a valid AI 10 value
      (1-20 characters of GS1 CSET 82) or not one of the run's batch codes — the pack
      cannot be traced to its raw material. Codes are compared exactly. Subject
      :func:`batch_subject` (per batch printed), an event: each label one occurrence.
    * ``label_weight`` (WARNING): the label's net weight (AI 310n) differs by more than
      ``tolerance_g`` from the checkweigher's net weight of the same pack (``pack_net_g``).
      For a fixed-weight product of the run (found by GTIN, ``catch_weight=False`` with a
      nominal quantity) the label must declare Qn instead: its pack weighs Qn plus giveaway,
      which the average-quantity rules judge (domain-rules §1). Skipped when the label has
      no weight or there is nothing to compare it with. Subject :func:`weight_subject`
      (per product), an event: each label one occurrence, the latest in the detail.

    Messages name the label (its serial, else its raw read).
    """
    if tolerance_g < 0:
        raise ValueError(f"tolerance_g must be >= 0, got {tolerance_g}")
    name = label_name(scan)
    findings: list[Finding] = []
    base_detail: dict[str, object] = {
        "device": scan.device,
        "run_number": run.run_number,
        "serial": scan.serial,
        "gtin": scan.gtin,
        "scan_us": scan.ts_us,
    }
    problem = _batch_problem(scan.batch, run)
    if problem is not None:
        why = {
            "absent": "carries no batch code",
            "invalid": f"carries an invalid batch code {scan.batch!r}",
            "not_in_run": (
                f"batch {scan.batch!r} is not a batch of run {run.run_number} "
                f"({', '.join(run.batch_codes) or 'none'})"
            ),
        }[problem]
        findings.append(
            Finding(
                rule=RULE_BATCH,
                subject=batch_subject(scan, run),
                active=True,
                severity=Severity.CRITICAL,
                message=f"label {name} {why}: the pack cannot be traced",
                ts_us=scan.ts_us,
                line=scan.line,
                event=True,
                detail={
                    **base_detail,
                    "reason": problem,
                    "batch": scan.batch,
                    "run_batch_codes": list(run.batch_codes),
                },
            )
        )
    if scan.net_weight_g is not None:
        label_g = _decimal(scan.net_weight_g)
        product = _product(scan.gtin, run)
        reference: tuple[str, Decimal] | None = None
        if product is not None and not product.catch_weight and product.nominal_g is not None:
            # A fixed-weight (℮) label declares Qn; the pack's own weight is above it by the
            # giveaway and is judged by the average-quantity rules, not against the label.
            reference = ("nominal", product.nominal_g)
        elif pack_net_g is not None:
            reference = ("checkweigher", _decimal(pack_net_g))
        if reference is not None:
            source, reference_g = reference
            difference = label_g - reference_g
            if abs(difference) > tolerance_g:
                said = (
                    f"the checkweigher weighed {reference_g} g"
                    if source == "checkweigher"
                    else f"the product's nominal quantity is {reference_g} g"
                )
                findings.append(
                    Finding(
                        rule=RULE_WEIGHT,
                        subject=weight_subject(scan, run),
                        active=True,
                        severity=Severity.WARNING,
                        message=(
                            f"label {name} says {label_g} g, {said} "
                            f"({difference:+} g, tolerance ±{tolerance_g} g)"
                        ),
                        ts_us=scan.ts_us,
                        line=scan.line,
                        event=True,
                        detail={
                            **base_detail,
                            "compared_with": source,
                            "label_g": float(label_g),
                            "reference_g": float(reference_g),
                            "pack_g": pack_net_g,
                            "difference_g": float(difference),
                            "tolerance_g": float(tolerance_g),
                        },
                    )
                )
    return findings
