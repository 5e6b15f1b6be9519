"""The ℮ average system: TNE, T1/T2, and the three packers' rules on line output.

Law and where the numbers come from (``docs/reference/domain-rules.md`` §1):

* The Weights and Measures (Packaged Goods) Regulations 2006 (**SI 2006/659**) implement
  Directive **76/211/EEC** (the average system) in Great Britain, for nominal quantities of
  **5 g to 25 kg**. They do not apply to catch-weight packs (each priced by its own weight).
* The three packers' rules (Directive 76/211/EEC Annex I §1; SI 2006/659 reg 4):

  1. the actual contents must not be less, on average, than the nominal quantity Qn;
  2. the proportion of packs with a negative error greater than the TNE (packs below
     **T1 = Qn − TNE**) must be small enough for the batch to pass the reference test of
     Annex II / Schedule 2; UK guidance states the design level as **2.5 %**;
  3. no pack with a negative error greater than twice the TNE (below **T2 = Qn − 2·TNE**)
     may bear the ℮ mark.

* The TNE table is Directive 76/211/EEC Annex I 2.4 (5 g – 10 kg) extended by SI 2006/659
  Schedule 1 for 10 kg – 25 kg (GB only). The band inequalities used here are the explicit
  ones of SI 2006/1258 Schedule 5 (same table): ``m ≤ 50 → 9 %``, ``50 < m ≤ 100 → 4.5 g``,
  and so on. A TNE computed as a percentage is rounded **up** to the next 0.1 g (gov.uk,
  "Weights and measures: the law – packaged goods"), e.g. 125 g → 5.625 → 5.7 g.
* Batch: Schedule 2 para 2.5–2.6 — all packs of the same nominal quantity, type and
  production run; checked at the end of the packing line, the batch is the **maximum hourly
  output of the line**. Here a batch is a window of line output (default one hour of wall
  time from its first pack, optionally capped at ``batch_max_packs``, which is the legally
  exact form when set to the line's maximum hourly output).
* The packer's record (reg 9(1)(b)(ii)): each closed batch gives a :class:`BatchRecord`
  (count, mean, standard deviation, packs below T1 and T2, verdict) for the store to keep
  until the relevant date (reg 9(5)(b)).

Arithmetic: every weight is a :class:`~decimal.Decimal` held to the milligram, and the
running sums are exact integers of milligrams. Binary floating point is never used for a
limit or a verdict: ``ceil(q * pct * 10) / 10`` in IEEE doubles rounds 110 of the 0.1 g
steps between 15 kg and 25 kg wrongly (15 020 g gives 150.3 instead of 150.2).

Everything here is pure: no I/O, no clock reads; time comes in as ``ts_us`` (wall-clock
microseconds since the Unix epoch, UTC).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

from gateway.records import PackEvent, RecordFlag
from rules.model import Finding, ProductSpec, RunContext, Severity

__all__ = [
    "QN_MAX_G",
    "QN_MIN_G",
    "T1_MAX_FRACTION",
    "BatchRecord",
    "EmarkLimits",
    "EmarkResult",
    "EmarkTracker",
    "InspectionBatch",
    "WeightStats",
    "batch_subject",
    "declared_net",
    "limits",
    "net_for_emark",
    "pack_id_of",
    "tne_g",
]

RULE_MEAN = "emark_mean"
RULE_MEAN_BATCH = "emark_mean_batch"
RULE_T1 = "emark_t1"
RULE_T2 = "emark_t2"

QN_MIN_G = Decimal(5)
"""Smallest nominal quantity in scope of SI 2006/659 (5 g)."""
QN_MAX_G = Decimal(25000)
"""Largest nominal quantity in scope of SI 2006/659 in GB (25 kg)."""

T1_MAX_FRACTION = Fraction(25, 1000)
"""Rule 2 design level: at most 2.5 % of a batch below T1 (UK guidance on SI 2006/659)."""

# Wide enough that no product, sum or quotient of gram values ever rounds.
_CTX = Context(prec=60)
_TENTH = Decimal("0.1")
_CENTI = Decimal("0.01")
_MILLI = Decimal("0.001")
_HUNDRED = Decimal(100)
_US_PER_S = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (upper bound inclusive or None for open-ended, TNE, whether the TNE is a % of Qn).
# Directive 76/211/EEC Annex I 2.4 up to 10 kg; SI 2006/659 Sch 1 above (GB only);
# inequalities as written in SI 2006/1258 Sch 5: lower bound exclusive, upper inclusive.
_TNE_TABLE: tuple[tuple[Decimal | None, Decimal, bool], ...] = (
    (Decimal(50), Decimal(9), True),  # m ≤ 50: 9 %
    (Decimal(100), Decimal("4.5"), False),  # 50 < m ≤ 100: 4.5 g
    (Decimal(200), Decimal("4.5"), True),  # 100 < m ≤ 200: 4.5 %
    (Decimal(300), Decimal(9), False),  # 200 < m ≤ 300: 9 g
    (Decimal(500), Decimal(3), True),  # 300 < m ≤ 500: 3 %
    (Decimal(1000), Decimal(15), False),  # 500 < m ≤ 1000: 15 g
    (Decimal(10000), Decimal("1.5"), True),  # 1000 < m ≤ 10 000: 1.5 %
    (Decimal(15000), Decimal(150), False),  # 10 000 < m ≤ 15 000: 150 g (GB only)
    (None, Decimal(1), True),  # m > 15 000 (to 25 000): 1 % (GB only)
)


def _as_decimal(value: Decimal | int, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{name} must be a Decimal (or int), got {type(value).__name__}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {result}")
    return result


def tne_g(qn: Decimal) -> Decimal:
    """The tolerable negative error for a nominal quantity ``qn`` (grams), to 0.1 g.

    Directive 76/211/EEC Annex I 2.4 / SI 2006/659 Sch 1, with the band inequalities of
    SI 2006/1258 Sch 5; a percentage TNE is rounded **up** to the next 0.1 g (e.g. 125 g →
    5.625 → 5.7; 100.1 g → 4.5045 → 4.6; 15 020 g → 150.2). Exact decimal arithmetic.

    Raises :class:`ValueError` outside 5 g – 25 kg, where the average system does not apply.
    """
    q = _as_decimal(qn, "qn")
    if q < QN_MIN_G or q > QN_MAX_G:
        raise ValueError(
            f"nominal quantity {q} g is outside the average system's range "
            f"{QN_MIN_G} g – {QN_MAX_G} g (SI 2006/659)"
        )
    for upper, value, is_pct in _TNE_TABLE:
        if upper is None or q <= upper:
            if not is_pct:
                return value.quantize(_TENTH)
            exact = _CTX.divide(_CTX.multiply(q, value), _HUNDRED)
            return exact.quantize(_TENTH, rounding=ROUND_CEILING, context=_CTX)
    raise AssertionError("unreachable: the last TNE band is open-ended")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class EmarkLimits:
    """Qn and its limits in grams: TNE, T1 = Qn − TNE, T2 = Qn − 2·TNE."""

    qn: Decimal
    tne: Decimal
    t1: Decimal
    t2: Decimal


def limits(qn: Decimal) -> EmarkLimits:
    """TNE, T1 and T2 for ``qn`` (Directive 76/211/EEC Annex I 2.3–2.4; OIML R 87 T1/T2)."""
    q = _as_decimal(qn, "qn")
    tne = tne_g(q)
    return EmarkLimits(qn=q, tne=tne, t1=_CTX.subtract(q, tne), t2=_CTX.subtract(q, 2 * tne))


def _grams(value: float | Decimal | int, name: str) -> Decimal:
    """A weight as a Decimal to the milligram; a float goes through its shortest repr."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number of grams")
    raw = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not raw.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return raw.quantize(_MILLI, rounding=ROUND_HALF_EVEN, context=_CTX)


def net_for_emark(pack_net_g: float, product: ProductSpec) -> Decimal:
    """The net weight a pack counts with in the ℮ rules, as a Decimal to the milligram.

    The checkweigher reports the **net** weight: its tare is set per product, so the value
    already excludes the packaging. On a glazed line the checkweigher is set against the
    net of glaze (domain-rules §1.1), so its net is also the declared-net quantity. Nothing
    is subtracted here; ``product`` is taken so that callers do not have to care which case
    they are in. Where a device weighed **gross**, use :func:`declared_net` instead.

    The float is converted through its shortest decimal representation (239.7 → 239.7, not
    239.69999…), then held to the milligram.
    """
    del product  # net is net: see the docstring
    return _grams(pack_net_g, "pack_net_g")


def declared_net(gross_g: float | Decimal, product: ProductSpec) -> Decimal:
    """The declared-net quantity of a pack weighed **gross**: (gross − tare) × (1 − glaze/100).

    ``product.tare_g`` is the packaging; ``product.glaze_pct`` is the glaze as a percentage
    of the glazed product (packaging excluded). Glaze is excluded from the declared net
    weight of frozen glazed fish: Reg (EU) 1169/2011 Annex IX point 5 (retained in GB).
    Result to the milligram (half-even).
    """
    gross = _grams(gross_g, "gross_g")
    if not Decimal(0) <= product.glaze_pct < _HUNDRED:
        raise ValueError(f"glaze_pct must be in [0, 100), got {product.glaze_pct}")
    product_g = _CTX.subtract(gross, product.tare_g)
    share = _CTX.subtract(1, _CTX.divide(product.glaze_pct, _HUNDRED))
    return _CTX.multiply(product_g, share).quantize(_MILLI, rounding=ROUND_HALF_EVEN)


def _to_mg(grams: Decimal) -> int:
    """Grams (to the milligram) as integer milligrams."""
    return int(_CTX.multiply(grams.quantize(_MILLI, rounding=ROUND_HALF_EVEN), Decimal(1000)))


def _fraction_to_decimal(value: Fraction) -> Decimal:
    return _CTX.divide(Decimal(value.numerator), Decimal(value.denominator))


class WeightStats:
    """Count, mean and sample standard deviation of weights, exactly.

    Weights are held as integer milligrams, and the sums of x and x² are Python integers,
    so the variance ``(n·Σx² − (Σx)²) / (n·(n − 1))`` is exact: there is no cancellation
    to guard against (which is what Welford's update does for floats). The standard
    deviation uses the n − 1 divisor, as *s* in SI 2006/659 Sch 2 para 4.
    """

    __slots__ = ("_n", "_sum_mg", "_sumsq_mg")

    def __init__(self) -> None:
        self._n = 0
        self._sum_mg = 0
        self._sumsq_mg = 0

    def add(self, grams: Decimal) -> None:
        """Count one weight (grams; held to the milligram)."""
        mg = _to_mg(grams)
        self._n += 1
        self._sum_mg += mg
        self._sumsq_mg += mg * mg

    @property
    def n(self) -> int:
        """How many weights."""
        return self._n

    @property
    def sum_mg(self) -> int:
        """Σx in milligrams, exact."""
        return self._sum_mg

    def mean_exact(self) -> Fraction:
        """The mean in grams as an exact fraction (ValueError when empty)."""
        if self._n == 0:
            raise ValueError("no weights")
        return Fraction(self._sum_mg, self._n * 1000)

    def variance_exact(self) -> Fraction | None:
        """The sample variance in g² as an exact fraction; None below two weights."""
        if self._n < 2:
            return None
        num = self._n * self._sumsq_mg - self._sum_mg * self._sum_mg
        return Fraction(num, self._n * (self._n - 1) * 1_000_000)

    def mean(self, places: Decimal = _CENTI, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        """The mean in grams, rounded to ``places``."""
        return _fraction_to_decimal(self.mean_exact()).quantize(places, rounding=rounding)

    def sd(self, places: Decimal = _CENTI) -> Decimal | None:
        """The sample standard deviation in grams, rounded half-even; None below two."""
        var = self.variance_exact()
        if var is None:
            return None
        return _fraction_to_decimal(var).sqrt(_CTX).quantize(places, rounding=ROUND_HALF_EVEN)


def _iso_utc(ts_us: int) -> str:
    """``ts_us`` as ISO 8601 UTC to the second, e.g. ``2024-05-01T06:00:00Z``."""
    moment = _EPOCH + timedelta(microseconds=ts_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def batch_subject(line: str, run_number: str, plu: str, start_us: int) -> str:
    """The alert subject of a batch: ``{line}/{run}/{plu}/{batch start, ISO 8601 UTC}``."""
    return f"{line}/{run_number}/{plu}/{_iso_utc(start_us)}"


def _pct(part: int, whole: int) -> str:
    return str((Decimal(part) * 100 / Decimal(whole)).quantize(_CENTI, rounding=ROUND_HALF_EVEN))


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
        if not 0 < batch_seconds < float("inf"):
            raise ValueError(f"batch_seconds must be positive and finite, got {batch_seconds}")
        if batch_max_packs is not None and batch_max_packs <= 0:
            raise ValueError(f"batch_max_packs must be positive, got {batch_max_packs}")
        if min_packs < 1:
            raise ValueError(f"min_packs must be at least 1, got {min_packs}")
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
        qn_total = _CTX.multiply(_CTX.multiply(self.limits.qn, Decimal(1000)), self.stats.n)
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
        mean = self.stats.mean(_MILLI)
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
        net = _grams(pack_net, "pack_net")
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
        mean = self.stats.mean(_CENTI, rounding=ROUND_FLOOR)
        mean_low = self._mean_below_qn()
        t1_high = self._t1_share_exceeded()
        if mean_low:
            reasons.append(
                f"mean {self.stats.mean(_MILLI, rounding=ROUND_FLOOR)} g below Qn {lim.qn} g "
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
            exact = self.stats.mean(_MILLI, rounding=ROUND_FLOOR)
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
            sd=self.stats.sd(_CENTI) or Decimal("0.00"),
            below_t1=self.below_t1,
            below_t2=self.below_t2,
            verdict=verdict,
            reasons=tuple(reasons),
            rejected=self.rejected,
            uncertain=self.uncertain,
        )
        return record, findings


@dataclass(frozen=True, slots=True)
class EmarkResult:
    """What one observation gave: findings (in order) and packer's records of closed batches."""

    findings: tuple[Finding, ...] = ()
    closed_records: tuple[BatchRecord, ...] = ()


def pack_id_of(pack: PackEvent) -> str:
    """A readable identity for a pack: device and counter, else device and time."""
    if pack.pack_counter is not None:
        return f"{pack.device}#{pack.pack_counter}"
    return f"{pack.device}@{pack.ts_us}"


class EmarkTracker:
    """Open :class:`InspectionBatch` es per (line, run, PLU), rolled over as time goes by.

    A line packs one product at a time: a pack of another run or PLU on the same line closes
    that line's open batch (changeover) and starts a new one. A batch also closes when its
    window is over (at the first later pack of the line, or at :meth:`tick`) or when it
    reaches ``batch_max_packs``. Catch-weight products (``catch_weight`` set, or no nominal
    quantity) and nominal quantities outside 5 g – 25 kg are outside the average system
    (SI 2006/659): they are not counted, though a catch-weight pack still ends the open
    fixed-weight batch of its line, as any changeover does. Packs the checkweigher rejected
    (``accepted is False``) are counted as rejects only. Packs flagged
    :attr:`~gateway.records.RecordFlag.VALUES_UNCERTAIN` (their weight and accepted flag may
    be a neighbouring pack's) are counted in the open batch's ``uncertain`` only: they raise
    no finding, start no batch and close none.
    """

    def __init__(
        self,
        *,
        batch_seconds: float = 3600,
        batch_max_packs: int | None = None,
        min_packs: int = 10,
    ) -> None:
        if not 0 < batch_seconds < float("inf"):
            raise ValueError(f"batch_seconds must be positive and finite, got {batch_seconds}")
        if batch_max_packs is not None and batch_max_packs <= 0:
            raise ValueError(f"batch_max_packs must be positive, got {batch_max_packs}")
        if min_packs < 1:
            raise ValueError(f"min_packs must be at least 1, got {min_packs}")
        self.batch_seconds = batch_seconds
        self.batch_max_packs = batch_max_packs
        self.min_packs = min_packs
        self._open: dict[tuple[str, str, str], InspectionBatch] = {}

    def open_batches(self) -> tuple[InspectionBatch, ...]:
        """The batches currently open."""
        return tuple(self._open.values())

    def forget_recorded(self, recorded: Collection[tuple[str, str, str, int]]) -> int:
        """Drop open batches whose packer's record already exists; how many were dropped.

        ``recorded`` holds ``(line, run_number, plu, start_us)`` of stored records. After a
        restart the open batches are rebuilt by replaying the stored packs; a batch whose
        window ran out while the line stood still was closed (and recorded) by ``tick``
        before the stop, and must not be recorded a second time.
        """
        stale = [k for k, b in self._open.items() if (*k, b.start_us) in recorded]
        for key in stale:
            del self._open[key]
        return len(stale)

    def _close(
        self,
        key: tuple[str, str, str],
        ts_us: int,
        findings: list[Finding],
        records: list[BatchRecord],
    ) -> None:
        batch = self._open.pop(key)
        if batch.n == 0:
            return  # only rejects: nothing released, nothing to record
        record, closing = batch.close(min(ts_us, batch.end_window_us))
        findings.extend(closing)
        records.append(record)

    def observe(
        self, pack: PackEvent, run: RunContext, product: ProductSpec, ts_us: int
    ) -> EmarkResult:
        """Evaluate one pack of ``product`` in ``run`` at ``ts_us``."""
        findings: list[Finding] = []
        records: list[BatchRecord] = []
        line = pack.line
        key = (line, run.run_number, product.plu)
        if pack.flags & RecordFlag.VALUES_UNCERTAIN:
            # Its nominal setting may be a neighbour's too, so it is no sign of a changeover.
            if (open_batch := self._open.get(key)) is not None:
                open_batch.add_uncertain()
            return EmarkResult()
        for other in [k for k in self._open if k[0] == line]:
            if other != key or self._open[other].window_over(ts_us):
                self._close(other, ts_us, findings, records)
        qn = product.nominal_g
        if product.catch_weight or qn is None or not QN_MIN_G <= qn <= QN_MAX_G:
            return EmarkResult(tuple(findings), tuple(records))
        batch = self._open.get(key)
        if batch is None:
            batch = InspectionBatch(
                line=line,
                run_number=run.run_number,
                plu=product.plu,
                qn=qn,
                start_us=ts_us,
                batch_seconds=self.batch_seconds,
                batch_max_packs=self.batch_max_packs,
                min_packs=self.min_packs,
            )
            self._open[key] = batch
        if pack.accepted is False:
            batch.add_rejected()
        else:
            findings.extend(batch.add(net_for_emark(pack.net_g, product), ts_us, pack_id_of(pack)))
            if batch.full:
                self._close(key, ts_us, findings, records)
        return EmarkResult(tuple(findings), tuple(records))

    def tick(self, ts_us: int) -> EmarkResult:
        """Close every batch whose window is over at ``ts_us`` (e.g. the line has stopped)."""
        findings: list[Finding] = []
        records: list[BatchRecord] = []
        for key in [k for k, b in self._open.items() if b.window_over(ts_us)]:
            self._close(key, ts_us, findings, records)
        return EmarkResult(tuple(findings), tuple(records))

    def close_line(self, line: str, ts_us: int) -> EmarkResult:
        """Close the open batches of ``line`` (end of run, changeover announced)."""
        findings: list[Finding] = []
        records: list[BatchRecord] = []
        for key in [k for k in self._open if k[0] == line]:
            self._close(key, ts_us, findings, records)
        return EmarkResult(tuple(findings), tuple(records))

    def close_all(self, ts_us: int) -> EmarkResult:
        """Close every open batch (shutdown)."""
        findings: list[Finding] = []
        records: list[BatchRecord] = []
        for key in list(self._open):
            self._close(key, ts_us, findings, records)
        return EmarkResult(tuple(findings), tuple(records))
