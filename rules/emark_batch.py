"""One ℮ inspection batch as it fills, and the packer's record it leaves when it closes.

The three packers' rules it applies, and the law behind them, are described in
:mod:`rules.emark`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from rules import ids
from rules.emark_limits import CENTI, EXACT, MILLI, T1_MAX_FRACTION, grams, limits
from rules.emark_settings import check_batch_settings
from rules.emark_stats import WeightStats
from rules.model import Finding, Severity

__all__ = [
    "RULE_MEAN",
    "RULE_MEAN_BATCH",
    "RULE_T1",
    "RULE_T2",
    "BatchRecord",
    "InspectionBatch",
    "batch_subject",
]

RULE_MEAN = ids.EMARK_MEAN
RULE_MEAN_BATCH = ids.EMARK_MEAN_BATCH
RULE_T1 = ids.EMARK_T1
RULE_T2 = ids.EMARK_T2

_US_PER_S = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso_utc(ts_us: int) -> str:
    """``ts_us`` as ISO 8601 UTC to the second, e.g. ``2024-05-01T06:00:00Z``."""
    moment = _EPOCH + timedelta(microseconds=ts_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def batch_subject(line: str, run_number: str, plu: str, start_us: int) -> str:
    """The alert subject of a batch: ``{line}/{run}/{plu}/{batch start, ISO 8601 UTC}``."""
    return f"{line}/{run_number}/{plu}/{_iso_utc(start_us)}"


def _pct(part: int, whole: int) -> str:
    return str((Decimal(part) * 100 / Decimal(whole)).quantize(CENTI, rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """The packer's record of one closed batch (SI 2006/659 reg 9(1)(b)(ii)).

    ``mean`` is rounded **down** to 0.01 g, so the record never shows a mean of at least Qn
    for a batch whose exact mean is below it; ``sd`` (n − 1 divisor) is rounded half-even
    to 0.01 g, and is 0.00 for a batch of one pack (where it is undefined; ``n`` tells).
    ``below_t1`` counts every pack under T1, including those under T2. ``rejected`` counts
    packs the checkweigher rejected: they do not leave the line with the ℮ mark, so they
    are not part of the batch statistics.
    """

    line: str
    run_number: str
    plu: str
    qn: Decimal
    tne: Decimal
    t1: Decimal
    t2: Decimal
    start_us: int
    end_us: int
    n: int
    mean: Decimal
    sd: Decimal
    below_t1: int
    below_t2: int
    verdict: str
    """``"pass"`` or ``"fail"``."""
    reasons: tuple[str, ...] = ()
    """Why the batch failed (empty when it passed)."""
    rejected: int = 0
    uncertain: int = 0
    """Packs of the batch's time whose values could not be tied to their pack
    (VALUES_UNCERTAIN): not in the statistics, which would otherwise count one pack's weight
    twice and another's not at all."""

    @property
    def subject(self) -> str:
        """The alert subject of this batch."""
        return batch_subject(self.line, self.run_number, self.plu, self.start_us)


class InspectionBatch:
    """One batch of fixed-quantity packs of one line, run and PLU, evaluated as it fills.

    Findings (subject :func:`batch_subject`, ``line`` set). While a running finding is active
    every pack reports it again with the live figure (``value``, with a deadband: the alert
    book publishes only moves that matter, docs/alarms.md §2), so an alert never shows a
    mean that is long gone:

    * ``emark_mean`` WARNING (rule 1, running): active while the running mean is below Qn,
      once at least ``min_packs`` packs are in; cleared when it recovers. Value: the mean
      (g), deadband a tenth of the TNE.
    * ``emark_mean_batch`` CRITICAL (rule 1, at close): the closed batch's mean is below Qn.
      All packs are weighed, so the test is the mean itself (as Sch 2 para 4.7 does for a
      batch weighed in full), without the sampling allowance λ·s of the reference test.
    * ``emark_t1`` CRITICAL (rule 2): more than 2.5 % of the batch below T1; evaluated on
      the running batch once ``min_packs`` are in (active / cleared as the share crosses
      2.5 %) and again at close, with the final counts (``detail["final"]``). Value: the
      share below T1 (%), deadband 0.5 points.
    * ``emark_t2`` CRITICAL (rule 3): a pack below T2, reported at once for every such pack
      (each one updates the batch's alert), naming it in ``detail`` (``pack_id``, ``net_g``).
      Value: the count of packs below T2 (every new one is published).

    At close nothing about the batch stays active: a closed batch is no longer a condition
    of the line, it is paperwork. Open running findings are cleared, and a failure found at
    close (``emark_mean_batch``, ``emark_t1`` final) is reported active and then cleared at
    the same time. In the alert book that is a raised alert left *cleared-unacknowledged*:
    it waits for an operator's acknowledgement (reg 9 asks for a record of the corrections
    as well as of the checks) without holding the andon red through the next batch. The
    :class:`BatchRecord` is the lasting record either way.

    Detail values are JSON-ready: weights as decimal strings, counts as ints.
    """

    def __init__(
        self,
        *,
        line: str,
        run_number: str,
        plu: str,
        qn: Decimal,
        start_us: int,
        batch_seconds: float = 3600,
        batch_max_packs: int | None = None,
        min_packs: int = 10,
    ) -> None:
        check_batch_settings(
            batch_seconds=batch_seconds, batch_max_packs=batch_max_packs, min_packs=min_packs
        )
        self.line = line
        self.run_number = run_number
        self.plu = plu
        self.limits = limits(qn)
        self.start_us = start_us
        self.end_window_us = start_us + round(batch_seconds * _US_PER_S)
        self.batch_max_packs = batch_max_packs
        self.min_packs = min_packs
        self.subject = batch_subject(line, run_number, plu, start_us)
        self.stats = WeightStats()
        self.below_t1 = 0
        self.below_t2 = 0
        self.rejected = 0
        self.uncertain = 0
        self._mean_active = False
        self._t1_active = False
        self._closed = False

    # -- state -----------------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Packs counted in the batch."""
        return self.stats.n

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def window_over(self, ts_us: int) -> bool:
        """Whether a pack at ``ts_us`` falls after this batch's time window."""
        return ts_us >= self.end_window_us

    @property
    def full(self) -> bool:
        """Whether the batch has reached ``batch_max_packs``."""
        return self.batch_max_packs is not None and self.stats.n >= self.batch_max_packs

    def _mean_below_qn(self) -> bool:
        # Exact: Σx_mg < n·Qn_mg, with Qn as an exact decimal.
        qn_total = EXACT.multiply(EXACT.multiply(self.limits.qn, Decimal(1000)), self.stats.n)
        return Decimal(self.stats.sum_mg) < qn_total

    def _t1_share_exceeded(self) -> bool:
        # Exact: below_t1 / n > 2.5 %.
        return Fraction(self.below_t1, self.stats.n) > T1_MAX_FRACTION

    # -- findings --------------------------------------------------------------------------

    def _finding(
        self,
        rule: str,
        severity: Severity,
        active: bool,
        message: str,
        ts_us: int,
        **detail: object,
    ) -> Finding:
        base: dict[str, object] = {
            "run_number": self.run_number,
            "plu": self.plu,
            "qn_g": str(self.limits.qn),
            "t1_g": str(self.limits.t1),
            "t2_g": str(self.limits.t2),
            "n": self.stats.n,
        }
        base.update(detail)
        return Finding(
            rule=rule,
            subject=self.subject,
            active=active,
            severity=severity,
            message=message,
            ts_us=ts_us,
            line=self.line,
            detail=base,
        )

    def _mean_finding(self, active: bool, ts_us: int) -> Finding:
        mean = self.stats.mean(MILLI)
        if active:
            message = f"running mean {mean} g is below Qn {self.limits.qn} g (℮ rule 1)"
        else:
            message = f"running mean {mean} g is back at or above Qn {self.limits.qn} g"
        finding = self._finding(
            RULE_MEAN, Severity.WARNING, active, message, ts_us, mean_g=str(mean)
        )
        # A tenth of the TNE: the smallest move of the mean that matters against the limits.
        return replace(finding, value=float(mean), deadband=float(self.limits.tne) / 10)

    def _t1_finding(self, active: bool, ts_us: int, *, final: bool) -> Finding:
        share = _pct(self.below_t1, self.stats.n)
        what = "batch" if final else "running batch"
        if active:
            message = (
                f"{self.below_t1} of {self.stats.n} packs ({share} %) below T1 "
                f"{self.limits.t1} g in the {what}: more than 2.5 % (℮ rule 2)"
            )
        else:
            message = (
                f"{self.below_t1} of {self.stats.n} packs ({share} %) below T1 "
                f"{self.limits.t1} g in the {what}: within 2.5 %"
            )
        finding = self._finding(
            RULE_T1,
            Severity.CRITICAL,
            active,
            message,
            ts_us,
            below_t1=self.below_t1,
            share_pct=share,
            final=final,
        )
        return replace(finding, value=float(share), deadband=0.5)

    # -- operations ------------------------------------------------------------------------

    def add(self, pack_net: Decimal, ts_us: int, pack_id: str) -> list[Finding]:
        """Count one released pack (net grams, see :func:`net_for_emark`); the findings."""
        if self._closed:
            raise ValueError(f"batch {self.subject} is closed")
        net = grams(pack_net, "pack_net")
        self.stats.add(net)
        findings: list[Finding] = []
        if net < self.limits.t1:
            self.below_t1 += 1
        if net < self.limits.t2:
            self.below_t2 += 1
            finding = self._finding(
                RULE_T2,
                Severity.CRITICAL,
                True,
                f"pack {pack_id} weighs {net} g, below T2 {self.limits.t2} g: it must not "
                f"bear the ℮ mark (℮ rule 3)",
                ts_us,
                pack_id=pack_id,
                net_g=str(net),
                pack_ts_us=ts_us,
                below_t2=self.below_t2,
            )
            findings.append(replace(finding, value=float(self.below_t2)))
        if self.stats.n >= self.min_packs:
            mean_low = self._mean_below_qn()
            if mean_low or mean_low != self._mean_active:
                self._mean_active = mean_low
                findings.append(self._mean_finding(mean_low, ts_us))
            t1_high = self._t1_share_exceeded()
            if t1_high or t1_high != self._t1_active:
                self._t1_active = t1_high
                findings.append(self._t1_finding(t1_high, ts_us, final=False))
        return findings

    def add_rejected(self) -> None:
        """Count a pack the checkweigher rejected (not released; not in the statistics)."""
        self.rejected += 1

    def add_uncertain(self) -> None:
        """Count a pack whose values may be another pack's (not in the statistics)."""
        self.uncertain += 1

    def close(self, ts_us: int) -> tuple[BatchRecord, list[Finding]]:
        """Close the batch at ``ts_us``: the packer's record and the closing findings.

        Raises :class:`ValueError` for a batch without packs (there is nothing to record).
        """
        if self._closed:
            raise ValueError(f"batch {self.subject} is already closed")
        if self.stats.n == 0:
            raise ValueError(f"batch {self.subject} has no packs")
        self._closed = True
        lim = self.limits
        n = self.stats.n
        findings: list[Finding] = []
        reasons: list[str] = []
        mean = self.stats.mean(CENTI, rounding=ROUND_FLOOR)
        mean_low = self._mean_below_qn()
        t1_high = self._t1_share_exceeded()
        if mean_low:
            reasons.append(
                f"mean {self.stats.mean(MILLI, rounding=ROUND_FLOOR)} g below Qn {lim.qn} g "
                f"(rule 1)"
            )
        if t1_high:
            reasons.append(
                f"{self.below_t1} of {n} packs ({_pct(self.below_t1, n)} %) below T1 "
                f"{lim.t1} g, more than 2.5 % (rule 2)"
            )
        if self.below_t2:
            reasons.append(f"{self.below_t2} pack(s) below T2 {lim.t2} g (rule 3)")
        verdict = "fail" if reasons else "pass"
        closed = f"batch closed ({verdict}, {n} packs): see the packer's record"

        if self._mean_active:
            findings.append(
                self._finding(RULE_MEAN, Severity.WARNING, False, closed, ts_us, final=True)
            )
        if mean_low:
            exact = self.stats.mean(MILLI, rounding=ROUND_FLOOR)
            message = f"batch mean {exact} g is below Qn {lim.qn} g over {n} packs (℮ rule 1)"
            findings.extend(
                self._finding(
                    RULE_MEAN_BATCH,
                    Severity.CRITICAL,
                    active,
                    message,
                    ts_us,
                    mean_g=str(mean),
                    final=True,
                )
                for active in (True, False)
            )
        if t1_high:
            findings.append(self._t1_finding(True, ts_us, final=True))
        if t1_high or self._t1_active:
            findings.append(
                self._finding(
                    RULE_T1,
                    Severity.CRITICAL,
                    False,
                    closed,
                    ts_us,
                    below_t1=self.below_t1,
                    share_pct=_pct(self.below_t1, n),
                    final=True,
                )
            )
        if self.below_t2:
            findings.append(
                self._finding(
                    RULE_T2,
                    Severity.CRITICAL,
                    False,
                    closed,
                    ts_us,
                    below_t2=self.below_t2,
                    final=True,
                )
            )
        self._mean_active = self._t1_active = False
        record = BatchRecord(
            line=self.line,
            run_number=self.run_number,
            plu=self.plu,
            qn=lim.qn,
            tne=lim.tne,
            t1=lim.t1,
            t2=lim.t2,
            start_us=self.start_us,
            end_us=ts_us,
            n=self.stats.n,
            mean=mean,
            sd=self.stats.sd(CENTI) or Decimal("0.00"),
            below_t1=self.below_t1,
            below_t2=self.below_t2,
            verdict=verdict,
            reasons=tuple(reasons),
            rejected=self.rejected,
            uncertain=self.uncertain,
        )
        return record, findings
