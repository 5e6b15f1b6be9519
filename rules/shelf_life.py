"""Shelf life of fresh fish: the use-by date a label must carry, and freeze-down.

Fresh raw fish is microbiologically highly perishable, so it carries a "use by" date, after which it
is deemed unsafe (Reg (EU) 1169/2011 Art 24(1); docs/reference/domain-rules.md §6). A wrong date on
a label is a recall.

The day counts are the plant's convention (docs/reference/glossary.md "Use-by";
docs/reference/domain-rules.md §6, "the factory's own convention"), not law:

* use-by = pack date + 9 days (standard), + 1 more for "rubber clock", + 2 or + 3 for superchilled
  fish (the run's ``shelf_life_adjust``, 0..3). +9 lies inside the FSA's 10-day rule for VP/MAP
  chilled fish; +10..+12 need a documented controlling factor (docs/reference/domain-rules.md §6),
  which is why the base is a parameter;
* from day 13 the product must be frozen down. Days are counted with the pack day as day 1,
  so day 13 is pack date + 12 = the longest use-by (+9 +3): the latest day fish can still
  be frozen before its use-by passes (after it, it is unsafe and cannot be frozen; freezing
  must also be recorded, Reg (EU) 16/2012 amending 853/2004 Annex II Sec IV). Product with
  a shorter life is past its use-by before day 13: :func:`nearing_date` reports that too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from gateway.core.records import LabelScan
from rules import ids
from rules.labels import label_name
from rules.model import Finding, RunContext, Severity

__all__ = [
    "FREEZE_DOWN_DAY",
    "MAX_ADJUST_DAYS",
    "RULE_FREEZE_DOWN",
    "RULE_USE_BY",
    "STANDARD_LIFE_DAYS",
    "NearingDate",
    "check_use_by",
    "day_of_life",
    "expected_use_by",
    "freeze_down_due",
    "freeze_down_finding",
    "nearing_date",
]

RULE_USE_BY: Final = ids.SHELF_LIFE_USE_BY
RULE_FREEZE_DOWN: Final = ids.SHELF_LIFE_FREEZE_DOWN

STANDARD_LIFE_DAYS: Final = 9
"""Use-by = pack date + 9 days for standard fresh fish (plant convention,
docs/reference/domain-rules.md §6)."""
MAX_ADJUST_DAYS: Final = 3
"""+1 rubber clock, +2/+3 superchill (plant convention, docs/reference/domain-rules.md §6)."""
FREEZE_DOWN_DAY: Final = 13
"""From day 13 of life (pack day = day 1) the product must be frozen down."""


def expected_use_by(pack_date: date, adjust: int, base_days: int = STANDARD_LIFE_DAYS) -> date:
    """The use-by date a pack must carry: ``pack_date + base_days + adjust`` days.

    ``adjust`` is 0 (standard), 1 (rubber clock), 2 or 3 (superchill); anything else is a
    ``ValueError``, as is a negative ``base_days``.
    """
    if isinstance(adjust, bool) or not 0 <= adjust <= MAX_ADJUST_DAYS:
        raise ValueError(f"shelf-life adjustment must be 0..{MAX_ADJUST_DAYS} days, got {adjust}")
    if base_days < 0:
        raise ValueError(f"base_days must be >= 0, got {base_days}")
    return pack_date + timedelta(days=base_days + adjust)


def day_of_life(pack_date: date, today: date) -> int:
    """The day of the product's life ``today``: the pack day is day 1."""
    return (today - pack_date).days + 1


def freeze_down_due(pack_date: date, today: date, freeze_day: int = FREEZE_DOWN_DAY) -> bool:
    """True from day ``freeze_day`` of life (pack day = day 1) onwards."""
    return day_of_life(pack_date, today) >= freeze_day


def _label_date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def check_use_by(
    scan: LabelScan, run: RunContext, base_days: int = STANDARD_LIFE_DAYS
) -> list[Finding]:
    """``shelf_life_use_by`` (CRITICAL) when a product label's use-by (AI 17) is not the
    date its run requires, or is missing or unreadable; ``[]`` when it is right.

    A product label is one with a GTIN (AI 01); other reads (start/end labels, stray codes)
    carry no use-by and are not checked. The expected date comes from the run's pack date
    (the ERP's), else from the label's own pack date (AI 13); with neither nothing can be
    checked. A run whose adjustment is not 0..3 makes every label unverifiable: CRITICAL.

    Subject ``f"{line}/{run}/use-by:{the date printed}"`` (``-`` for none, ``unverifiable``
    for a run whose dates cannot be checked): a labeller printing a wrong use-by on every
    pack is one condition, and each label an occurrence of it (docs/alarms.md §1); a second
    wrong date is a condition of its own. Messages name the label (its serial).
    """
    if scan.gtin is None:
        return []
    label_pack = _label_date(scan.pack_date)
    pack_date = run.pack_date or label_pack
    if pack_date is None:
        return []
    printed = _label_date(scan.use_by)
    detail: dict[str, object] = {
        "device": scan.device,
        "run_number": run.run_number,
        "serial": scan.serial,
        "gtin": scan.gtin,
        "scan_us": scan.ts_us,
        "pack_date": pack_date.isoformat(),
        "pack_date_from": "run" if run.pack_date is not None else "label",
        "label_pack_date": scan.pack_date,
        "adjust": run.shelf_life_adjust,
        "base_days": base_days,
        "use_by": scan.use_by,
    }
    try:
        expected = expected_use_by(pack_date, run.shelf_life_adjust, base_days)
    except ValueError as exc:
        reason, why = "run_adjust_invalid", f"cannot be checked: {exc}"
    else:
        detail["expected"] = expected.isoformat()
        if scan.use_by is None:
            reason, why = "absent", f"has no use-by date (expected {expected})"
        elif printed is None:
            reason, why = "unreadable", f"use-by {scan.use_by!r} is not a date"
        elif printed != expected:
            reason = "wrong_date"
            why = f"use-by {printed} should be {expected} ({(printed - expected).days:+} days)"
        else:
            return []
    detail["reason"] = reason
    condition = "unverifiable" if reason == "run_adjust_invalid" else (scan.use_by or "-")
    return [
        Finding(
            rule=RULE_USE_BY,
            subject=f"{scan.line}/{run.run_number}/use-by:{condition}",
            active=True,
            severity=Severity.CRITICAL,
            message=f"label {label_name(scan)} {why}: a wrong date is a recall",
            ts_us=scan.ts_us,
            line=scan.line,
            detail=detail,
            event=True,
        )
    ]


@dataclass(frozen=True, slots=True)
class NearingDate:
    """A run whose product is near (or past) its use-by, or due to be frozen down."""

    run_number: str
    line: str
    pack_date: date
    use_by: date
    days_left: int
    """``use_by - today``: 0 on the use-by day, negative once it has passed."""
    day: int
    """Day of life today (pack day = day 1)."""
    freeze_down_due: bool

    @property
    def expired(self) -> bool:
        """The use-by date has passed: the product is deemed unsafe (1169/2011 Art 24)."""
        return self.days_left < 0


def nearing_date(
    runs: Iterable[RunContext],
    today: date,
    within_days: int = 2,
    *,
    base_days: int = STANDARD_LIFE_DAYS,
    freeze_day: int = FREEZE_DOWN_DAY,
) -> list[NearingDate]:
    """Runs whose use-by is at most ``within_days`` away (or past), or that have reached
    the freeze-down day; sorted by use-by, then run number.

    Runs without a pack date are skipped; a run's invalid adjustment is a ``ValueError``
    (the ERP model admits only 0..3).
    """
    found: list[NearingDate] = []
    for run in runs:
        if run.pack_date is None:
            continue
        use_by = expected_use_by(run.pack_date, run.shelf_life_adjust, base_days)
        days_left = (use_by - today).days
        due = freeze_down_due(run.pack_date, today, freeze_day)
        if days_left <= within_days or due:
            found.append(
                NearingDate(
                    run_number=run.run_number,
                    line=run.line,
                    pack_date=run.pack_date,
                    use_by=use_by,
                    days_left=days_left,
                    day=day_of_life(run.pack_date, today),
                    freeze_down_due=due,
                )
            )
    found.sort(key=lambda n: (n.use_by, n.run_number))
    return found


def freeze_down_finding(
    run: RunContext, today: date, ts_us: int, *, freeze_day: int = FREEZE_DOWN_DAY
) -> Finding | None:
    """``shelf_life_freeze_down`` (WARNING, subject ``f"{line}/{run}"``) for a run:
    ``active`` when its product has reached the freeze-down day, else an inactive finding
    (which clears an open one). ``None`` when the run has no pack date."""
    if run.pack_date is None:
        return None
    day = day_of_life(run.pack_date, today)
    due = day >= freeze_day
    subject = f"{run.line}/{run.run_number}"
    return Finding(
        rule=RULE_FREEZE_DOWN,
        subject=subject,
        active=due,
        severity=Severity.WARNING,
        message=(
            f"run {run.run_number} packed {run.pack_date} is on day {day}: freeze down "
            "unsold product now and record the date of freezing"
            if due
            else f"run {run.run_number} packed {run.pack_date} is on day {day}"
        ),
        ts_us=ts_us,
        line=run.line,
        detail={
            "run_number": run.run_number,
            "pack_date": run.pack_date.isoformat(),
            "today": today.isoformat(),
            "day": day,
            "freeze_day": freeze_day,
        },
    )
