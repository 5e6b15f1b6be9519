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

The files: :mod:`rules.emark_limits` (TNE, T1/T2, net weights), :mod:`rules.emark_stats`
(exact batch statistics), :mod:`rules.emark_batch` (one batch and its packer's record),
:mod:`rules.emark_settings` (the batch settings' checks) and this module, which keeps the
open batches of every line and rolls them over.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from gateway.core.records import PackEvent, RecordFlag
from rules.emark_batch import (
    RULE_MEAN,
    RULE_MEAN_BATCH,
    RULE_T1,
    RULE_T2,
    BatchRecord,
    InspectionBatch,
    batch_subject,
)
from rules.emark_limits import (
    QN_MAX_G,
    QN_MIN_G,
    T1_MAX_FRACTION,
    EmarkLimits,
    declared_net,
    limits,
    net_for_emark,
    tne_g,
)
from rules.emark_settings import check_batch_settings
from rules.emark_stats import WeightStats
from rules.model import Finding, Product, RunContext

__all__ = [
    "QN_MAX_G",
    "QN_MIN_G",
    "RULE_MEAN",
    "RULE_MEAN_BATCH",
    "RULE_T1",
    "RULE_T2",
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
    :attr:`~gateway.core.records.RecordFlag.VALUES_UNCERTAIN` (their weight and accepted flag may
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
        check_batch_settings(
            batch_seconds=batch_seconds, batch_max_packs=batch_max_packs, min_packs=min_packs
        )
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
        self, pack: PackEvent, run: RunContext, product: Product, ts_us: int
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
