"""The ERP's words for a tier, a run status, a shelf-life adjustment and a list of batch codes."""

from __future__ import annotations

import re
from typing import Final

from gateway.core.runs.coercion import shown, squash
from gateway.core.runs.model import RunStatus, Tier

_TIERS: Final[dict[str, Tier]] = {
    # Tier 1 (Premium), Tier 2 (GG, "standard tier"), Tier 3 (Export / Simply Salmon):
    # docs/reference/production-pipeline.md "Waterfall Yield"; docs/reference/glossary.md "Tiers".
    "premium": Tier.PREMIUM,
    "tier1": Tier.PREMIUM,
    "t1": Tier.PREMIUM,
    "1": Tier.PREMIUM,
    "gg": Tier.GG,
    "tier2": Tier.GG,
    "t2": Tier.GG,
    "2": Tier.GG,
    "standard": Tier.GG,
    "export": Tier.EXPORT,
    "tier3": Tier.EXPORT,
    "t3": Tier.EXPORT,
    "3": Tier.EXPORT,
    "simplysalmon": Tier.EXPORT,
}


def parse_tier(value: object) -> Tier:
    """Map the ERP's tier spellings to a :class:`Tier`.

    "Premium"/"Tier 1"/"1" -> PREMIUM; "GG"/"Tier 2"/"2"/"Standard" -> GG;
    "Export"/"Tier 3"/"3"/"Simply Salmon" -> EXPORT (any case/spacing; integers 1-3 too).
    Raises ``ValueError`` otherwise.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and (tier := _TIERS.get(squash(value))) is not None:
        return tier
    raise ValueError(
        f"{shown(value)} is not a tier (expected Premium/Tier 1, GG/Tier 2/Standard or "
        "Export/Tier 3/Simply Salmon)"
    )


_STATUSES: Final[dict[str, RunStatus | None]] = {
    "planned": RunStatus.PLANNED,
    "scheduled": RunStatus.PLANNED,
    "running": RunStatus.RUNNING,
    "inprogress": RunStatus.RUNNING,
    "started": RunStatus.RUNNING,
    "finished": RunStatus.FINISHED,
    "complete": RunStatus.FINISHED,
    "completed": RunStatus.FINISHED,
    "done": RunStatus.FINISHED,
    "closed": RunStatus.FINISHED,
    "cancelled": RunStatus.CANCELLED,
    "canceled": RunStatus.CANCELLED,
    # "Open" only says the run is not closed: running once it has started, else planned.
    "open": None,
}


def parse_status(value: object, *, started: bool = False) -> RunStatus:
    """Map an ERP status word to a :class:`RunStatus`.

    planned/scheduled, running/in progress/started, finished/complete(d)/done/closed,
    cancelled/canceled (any case). "Open" means not closed: RUNNING if ``started`` (the run has
    an actual start), else PLANNED. Raises ``ValueError`` otherwise.
    """
    if isinstance(value, str):
        key = squash(value)
        if key in _STATUSES:
            status = _STATUSES[key]
            if status is None:
                return RunStatus.RUNNING if started else RunStatus.PLANNED
            return status
    raise ValueError(
        f"{shown(value)} is not a run status (expected planned, running, finished, cancelled, "
        "open, in progress, closed, complete or done)"
    )


# Shelf-life adjustment in days over the standard pack date + 9: +1 "rubber clock", +2/+3
# superchill (docs/reference/production-pipeline.md "Shelf Life"; docs/reference/glossary.md
# "Use-by"). Day 13+ is freeze-down, so nothing above +3 is a valid adjustment.
# (docs/reference/domain-rules.md §6: no public standard prescribes these counts; they are the
# factory's convention.)
_SHELF_LIFE_WORDS: Final[dict[str, int]] = {
    "standard": 0,
    "rubberclock": 1,
    "rubberclock1": 1,
    "superchill": 2,
    "superchill2": 2,
    "superchill3": 3,
}


def parse_shelf_life_adjust(value: object) -> int:
    """Coerce a shelf-life adjustment to 0..3 days.

    Accepts the integers 0-3, "0".."3" and "+1".."+3", "standard" (0), "rubber clock" (1),
    "superchill" (2) and "superchill +3"/"Superchill (+3)" (3), any case. Raises
    ``ValueError`` otherwise (negative, above 3, fractional, booleans).
    """
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3:
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\+?[0-3]", text):
            return int(text.lstrip("+"))
        if "-" not in text and (days := _SHELF_LIFE_WORDS.get(squash(text))) is not None:
            return days
    raise ValueError(
        f"{shown(value)} is not a shelf-life adjustment (expected 0-3, rubber clock or superchill)"
    )


# Several batch codes in one field: exception runs (Family Pack, marinades, Simply Salmon)
# document several batch codes (docs/reference/production-pipeline.md "Batch-Centric Runs").
# Not "/": real batch codes carry slashes (e.g. "SAL/2025/01").
_BATCH_SPLIT_RE: Final = re.compile(r"[,;\r\n]+")


def split_batch_codes(value: object) -> tuple[str, ...]:
    """Split the ERP's batch-code field into codes.

    Text is split on ``,`` ``;`` and line breaks (not ``/``: codes such as ``SAL/2025/01``
    contain it); a list/tuple contributes each item
    (text or integer, not split further). Codes are stripped, blanks dropped, duplicates
    removed keeping the first. Raises ``ValueError`` for other types or non-text items.
    """
    codes: list[str] = []
    if isinstance(value, str):
        codes.extend(_BATCH_SPLIT_RE.split(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        codes.append(str(value))
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, str):
                codes.append(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                codes.append(str(item))
            else:
                raise ValueError(f"batch code {shown(item)} is not text")
    else:
        raise ValueError(f"{shown(value)} is not a batch code or a list of batch codes")
    return tuple(dict.fromkeys(c.strip() for c in codes if c.strip()))
