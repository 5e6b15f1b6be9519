"""Label rules: the labeller's running number (gaps, duplicates) and what a label says.

Traceability: every pack must carry a label that traces to the raw-material batch of its run
(Reg (EC) 178/2002 Art 18 one-step-back/one-step-forward traceability, as applied to fishery
products by Reg (EC) 853/2004), so

* a missing label number is a traceability gap (glossary "Label sequence"): which pack got
  which label can no longer be reconciled. GS1 does not require AI 21 serials to be
  sequential and no public standard defines "label gap" detection (domain-rules §4.4); the
  gap/duplicate/out-of-order classification with a grace window for late reads is the
  design of domain-rules §4.4;
* a label whose batch (AI 10) is not one of its run's batch codes, or has none, cannot be
  traced at all (glossary "Batch code", "OCM labels, scan-back");
* a label's net weight (AI 310n) must be the weight of the pack it is on: for catch-weight
  packs the price is computed from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from gateway.records import LabelScan, PackEvent
from rules.model import Finding, ProductSpec, RunContext, Severity

__all__ = [
    "GS1_CSET82",
    "RULE_BATCH",
    "RULE_DUPLICATE",
    "RULE_GAP",
    "RULE_OUT_OF_SEQUENCE",
    "RULE_WEIGHT",
    "LabelSequenceMonitor",
    "check_label_content",
    "label_subject",
    "sequence_number",
]

RULE_GAP: Final = "label_gap"
RULE_DUPLICATE: Final = "label_duplicate"
RULE_OUT_OF_SEQUENCE: Final = "label_out_of_sequence"
RULE_BATCH: Final = "label_batch"
RULE_WEIGHT: Final = "label_weight"

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
    """The subject of a label's content findings: ``line/run/serial`` (or the raw read)."""
    return f"{scan.line}/{run.run_number}/{scan.serial or _printable(scan.raw)}"


@dataclass(slots=True)
class _Gap:
    top: int
    """The highest number of the gap when it opened: the reorder window counts from it."""
    missing: set[int] = field(default_factory=set)


class LabelSequenceMonitor:
    """The label running numbers of one labeller (or scanner) in one run.

    The first number seen sets the baseline; after it each number should be the previous
    highest + 1. A jump leaves the numbers it skipped *pending*: any of them read within
    ``reorder_window`` places of the jump (packs swap places on a conveyor, two scanners read
    one stream) fills its place silently. Once the highest number seen is more than
    ``reorder_window`` past a gap, the numbers still missing are reported:

    * ``label_gap`` (WARNING, subject ``f"{device}/{run}"``): ``detail["missing"]`` is every
      number reported missing in this run and not read since (sorted), ``new_missing`` the
      ones this finding adds. A missing number read later still is removed again (an update;
      ``active=False`` when none is left missing).
    * ``label_duplicate`` (WARNING): a number already read.
    * ``label_out_of_sequence`` (WARNING): a forward jump of more than ``max_gap`` numbers
      (too many to be a gap: a reset, a misread, another run's label), or a number below the
      baseline by more than the window. The number is not taken into the sequence; after a
      real counter reset call :meth:`rebaseline`.

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
    ) -> None:
        """Watch ``device``'s numbers in ``run``.

        Args:
            device: the labeller or scanner.
            run: the run number.
            line: the line for findings until a record names one.
            reorder_window: how far (in numbers) a late read may trail the highest number.
            max_gap: the largest forward jump still taken as a gap.
        """
        if reorder_window < 0:
            raise ValueError(f"reorder_window must be >= 0, got {reorder_window}")
        if max_gap < 1:
            raise ValueError(f"max_gap must be >= 1, got {max_gap}")
        self.device = device
        self.run = run
        self.subject = f"{device}/{run}"
        self.reorder_window = reorder_window
        self.max_gap = max_gap
        self._line = line
        self._baseline: int | None = None
        self._high: int | None = None
        self._gaps: list[_Gap] = []
        self._reported: set[int] = set()
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
        return tuple(sorted(n for gap in self._gaps for n in gap.missing))

    @property
    def missing(self) -> tuple[int, ...]:
        """Numbers reported missing and not read since."""
        return tuple(sorted(self._reported))

    # ---------------------------------------------------------------------------- inputs

    def observe_scan(self, scan: LabelScan, ts_us: int) -> list[Finding]:
        """Take a label read; its number is the AI 21 serial (digits only)."""
        seq = sequence_number(scan.serial)
        if seq is None:
            self.unsequenced += 1
            return []
        return self.observe_number(seq, ts_us, line=scan.line)

    def observe_pack(self, pack: PackEvent, ts_us: int) -> list[Finding]:
        """Take a pack from the checkweigher; its number is the labeller's ``label_seq``."""
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
            self.read += 1
            return []
        if seq > self._high:
            skipped = seq - self._high - 1
            if skipped > self.max_gap:
                return [self._out_of_sequence(seq, ts_us)]
            if skipped:
                self._gaps.append(_Gap(top=seq - 1, missing=set(range(self._high + 1, seq))))
            self._high = seq
            self.read += 1
            return self._due(ts_us, flush=False)
        for gap in self._gaps:
            if seq in gap.missing:
                gap.missing.discard(seq)
                if not gap.missing:
                    self._gaps.remove(gap)
                self.read += 1
                return []
        if seq in self._reported:
            self._reported.discard(seq)
            self.read += 1
            return [self._found_late(seq, ts_us)]
        if seq >= self._baseline:
            self.duplicates += 1
            return [self._duplicate(seq, ts_us)]
        if self._baseline - seq <= self.reorder_window:
            # A late read from just before the first number seen: the run started earlier.
            if self._baseline - seq > 1:
                self._gaps.append(
                    _Gap(top=self._baseline - 1, missing=set(range(seq + 1, self._baseline)))
                )
            self._baseline = seq
            self.read += 1
            return self._due(ts_us, flush=False)
        return [self._out_of_sequence(seq, ts_us)]

    def close(self, ts_us: int) -> list[Finding]:
        """The run ended on this device: report every number still pending as missing."""
        return self._due(ts_us, flush=True)

    def rebaseline(self, seq: int | None = None) -> None:
        """Start over (labeller reset, reprint series): the next number, or ``seq``, is the
        new baseline. Pending numbers are dropped; reported ones stay reported."""
        self._gaps.clear()
        self._baseline = self._high = seq

    # ---------------------------------------------------------------------------- findings

    def _due(self, ts_us: int, *, flush: bool) -> list[Finding]:
        high = self._high if self._high is not None else 0
        due = [g for g in self._gaps if flush or high - g.top > self.reorder_window]
        if not due:
            return []
        new = sorted(n for gap in due for n in gap.missing)
        self._gaps = [g for g in self._gaps if g not in due]
        self._reported.update(new)
        return [
            Finding(
                rule=RULE_GAP,
                subject=self.subject,
                active=True,
                severity=Severity.WARNING,
                message=(
                    f"{self.subject}: label number{'s' if len(new) > 1 else ''} "
                    f"{_show_numbers(new)} missing"
                ),
                ts_us=ts_us,
                line=self._line,
                detail=self._detail(new_missing=new),
            )
        ]

    def _found_late(self, seq: int, ts_us: int) -> Finding:
        still = bool(self._reported)
        return Finding(
            rule=RULE_GAP,
            subject=self.subject,
            active=still,
            severity=Severity.WARNING,
            message=(
                f"{self.subject}: label {seq} read late"
                + (f"; still missing {_show_numbers(sorted(self._reported))}" if still else "")
            ),
            ts_us=ts_us,
            line=self._line,
            detail=self._detail(new_missing=[], found_late=[seq]),
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
            detail={
                "device": self.device,
                "run_number": self.run,
                "seq": seq,
                "duplicates": self.duplicates,
            },
        )

    def _out_of_sequence(self, seq: int, ts_us: int) -> Finding:
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
            detail={
                "device": self.device,
                "run_number": self.run,
                "seq": seq,
                "expected": self.expected_next,
                "baseline": self._baseline,
                "max_gap": self.max_gap,
            },
        )

    def _detail(
        self, *, new_missing: list[int], found_late: list[int] | None = None
    ) -> dict[str, object]:
        detail: dict[str, object] = {
            "device": self.device,
            "run_number": self.run,
            "missing": sorted(self._reported),
            "missing_count": len(self._reported),
            "new_missing": new_missing,
            "expected": self.expected_next,
            "reorder_window": self.reorder_window,
        }
        if found_late is not None:
            detail["found_late"] = found_late
        return detail


def _show_numbers(numbers: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" … (+{len(numbers) - limit})" if len(numbers) > limit else "")


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
      cannot be traced to its raw material. Codes are compared exactly.
    * ``label_weight`` (WARNING): the label's net weight (AI 310n) differs by more than
      ``tolerance_g`` from the checkweigher's net weight of the same pack (``pack_net_g``).
      For a fixed-weight product of the run (found by GTIN, ``catch_weight=False`` with a
      nominal quantity) the label must declare Qn instead: its pack weighs Qn plus giveaway,
      which the average-quantity rules judge (domain-rules §1). Skipped when the label has
      no weight or there is nothing to compare it with.

    Subject: ``f"{line}/{run}/{serial or raw}"`` (:func:`label_subject`).
    """
    if tolerance_g < 0:
        raise ValueError(f"tolerance_g must be >= 0, got {tolerance_g}")
    subject = label_subject(scan, run)
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
                subject=subject,
                active=True,
                severity=Severity.CRITICAL,
                message=f"label {subject} {why}: the pack cannot be traced",
                ts_us=scan.ts_us,
                line=scan.line,
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
                        subject=subject,
                        active=True,
                        severity=Severity.WARNING,
                        message=(
                            f"label {subject} says {label_g} g, {said} "
                            f"({difference:+} g, tolerance ±{tolerance_g} g)"
                        ),
                        ts_us=scan.ts_us,
                        line=scan.line,
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
