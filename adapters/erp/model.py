"""Production runs as Lineside understands them, parsed from the ERP's mixed representations.

One batch of fish feeds one run on one line, and several products come out of it (e.g.
Premium 120 g, Premium 240 g, GG 280 g, Family Pack); exception runs carry several batch
codes. Pure: no I/O, no clock reads.

``parse_run`` turns one ERP row (the legacy ``RunNumber`` table, or one object of the HTTP
ERP's JSON) into a :class:`ProductionRun`, or a :class:`RunRejection` listing *every* problem
found; it never raises.

ERP field mapping
-----------------
Keys are matched case-insensitively, ignoring ``_``, ``-`` and spaces, so ``RunNumber``,
``run_number`` and ``RUN NUMBER`` are the same key. A key given twice (``RunNumber`` and
``run_number``) with different values is a problem. ``None`` and blank text count as absent.
Unknown keys go to ``ProductionRun.extra`` under their original name, with their values made
JSON-able (Decimal -> str, date/datetime -> ISO text, non-finite floats and other objects ->
str); unknown keys inside a product go there as ``"Products[i].Key"``.

Run row (ERP key / alias -> field: accepted values)::

    RunNumber / run_number        -> run_number       required; text or integer, stripped
    Line / line                   -> line             required; text or integer, stripped
    BatchCode / batch_code        -> batch_codes      text split on , ; and line breaks
    BatchCodes / batch_codes      -> batch_codes      list (or text, split the same way);
                                                      merged after BatchCode, duplicates
                                                      dropped; at least one code required
    Description / description     -> description      text, stripped, case kept (default "")
    Species / species             -> species          explicit wins, else from Description
    ProductType / product_type    -> product_type     explicit wins, else from Description
    Products / products           -> products         list of product objects; absent -> ()
    RawMaterialKg / raw_material_kg -> raw_material_kg  decimal >= 0
    PackDate / pack_date          -> pack_date        coerce_date
    ShelfLifeAdjust / shelf_life_adjust -> shelf_life_adjust  0..3, "+1", "rubber clock" (1),
                                                      "superchill" (2), "superchill +3" (3);
                                                      absent -> 0
    PlannedStart, PlannedEnd,     -> planned_start,   coerce_datetime (no offset -> tz), UTC;
    ActualStart, ActualEnd           ...              an end before its start is a problem
    Status / status               -> status           parse_status; absent -> ActualEnd set:
                                                      finished, ActualStart set: running,
                                                      else planned
    Updated / updated             -> updated          required; coerce_datetime (watermark)

Each object in ``Products``::

    PLU / plu                     -> plu              required; text or integer; unique in run
    Description / description     -> description      text, stripped (default "")
    NominalWeight / nominal_g     -> nominal_g        grams, decimal > 0; required unless catch
      (also nominal_weight_g)                         weight; None (ignored) for catch weight
    Tier / tier                   -> tier             required; parse_tier
    CatchWeight / catch_weight    -> catch_weight     coerce_bool (default False)
    Tare / tare_g                 -> tare_g           grams, decimal >= 0 (default 0)
    Glaze / glaze_pct             -> glaze_pct        percent, 0..50 (default 0)
    Species / species             -> species          explicit wins, else from Description
    GTIN / gtin                   -> gtin             8/12/13/14 digits, valid check digit;
                                                      stored as GTIN-14 (as in GS1 AI 01)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, TypeVar

from adapters.codecs.gs1 import gtin_check_digit
from rules.model import Tier

__all__ = [
    "Product",
    "ProductionRun",
    "RunRejection",
    "RunStatus",
    "Tier",
    "coerce_bool",
    "coerce_date",
    "coerce_datetime",
    "coerce_decimal",
    "parse_product_type",
    "parse_run",
    "parse_shelf_life_adjust",
    "parse_species",
    "parse_status",
    "parse_tier",
    "run_fingerprint",
    "run_from_json",
    "run_to_json",
    "split_batch_codes",
]

_T = TypeVar("_T")


class RunStatus(StrEnum):
    """Where a run is in its life."""

    PLANNED = "planned"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Product:
    """A sellable item packed in a run (a PLU)."""

    plu: str
    description: str
    nominal_g: Decimal | None
    """Qn, the declared quantity in grams; None for catch-weight products."""
    tier: Tier
    catch_weight: bool = False
    """Catch weight: each pack priced by its own weight; the ℮ rules do not apply."""
    tare_g: Decimal = Decimal(0)
    glaze_pct: Decimal = Decimal(0)
    """Ice glaze as a percentage of the gross frozen weight, excluded from the net weight."""
    species: str | None = None
    gtin: str | None = None


@dataclass(frozen=True, slots=True)
class ProductionRun:
    """One ERP production run."""

    run_number: str
    line: str
    batch_codes: tuple[str, ...]
    description: str
    species: str | None
    """Normalised species name (``salmon``, ``cod``, ``sea bass`` ...), or None if unknown."""
    product_type: str | None
    """Normalised product type (``fillet``, ``smoked`` ...), or None if unknown."""
    products: tuple[Product, ...]
    raw_material_kg: Decimal | None
    pack_date: date | None
    shelf_life_adjust: int
    """Days added to the standard shelf life: 0 standard, +1 rubber clock, +2/+3 superchill."""
    planned_start: datetime | None
    planned_end: datetime | None
    actual_start: datetime | None
    actual_end: datetime | None
    status: RunStatus
    updated: datetime
    """The ERP's last-modified time of the row: the incremental watermark."""
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunRejection:
    """An ERP row that could not be understood; kept with the raw row and the reasons."""

    raw: dict[str, object]
    reasons: tuple[str, ...]
    run_number: str | None = None


# --------------------------------------------------------------------------------------------
# Species and product type from free text

# Whole words: no letter directly before or after (digits and punctuation do separate, so
# "2x120g Salmon" and "SALMON_FILLET" work; "Codling" is not "cod").
_WORD_START: Final = r"(?<![^\W\d_])"
_WORD_END: Final = r"(?![^\W\d_])"
# Between the words of a multi-word name: "sea bass", "sea-bass", "seabass".
_JOIN: Final = r"[\s-]*"

# (pattern, normalised name). At any position the first alternative that matches wins, so
# multi-word names come first and beat the single word they contain ("smoked salmon" is not
# "salmon"). The central pipeline parses 12 species from Description
# (docs/reference/production-pipeline.md, "Validate"); halibut, monkfish, sole, herring and
# dogfish are common UK whitefish/flatfish names added here.
_SPECIES: Final[tuple[tuple[str, str], ...]] = (
    (rf"alaska(?:n)?{_JOIN}poll[oa]ck", "pollock"),
    # UK fish-and-chip trade name for spurdog/huss: not a salmon.
    (rf"rock{_JOIN}salmon", "dogfish"),
    (rf"salmon{_JOIN}trout", "trout"),
    (rf"sea{_JOIN}trout", "trout"),
    (rf"sea{_JOIN}bass", "sea bass"),
    (rf"sea{_JOIN}bream", "sea bream"),
    (rf"(?:lemon|dover){_JOIN}sole", "sole"),
    ("salmon", "salmon"),
    ("cod", "cod"),
    ("haddock", "haddock"),
    ("hake", "hake"),
    ("mackerel", "mackerel"),
    ("tuna", "tuna"),
    ("plaice", "plaice"),
    ("poll[oa]ck", "pollock"),
    ("bass", "sea bass"),
    ("bream", "sea bream"),
    ("trout", "trout"),
    # Coley is saithe (Pollachius virens); kept apart from pollock, as the factory sells both.
    ("coley|saithe", "coley"),
    ("halibut", "halibut"),
    ("monkfish", "monkfish"),
    ("sole", "sole"),
    ("herring", "herring"),
    ("dogfish|huss", "dogfish"),
)
_SPECIES_RE: Final = re.compile(
    _WORD_START + "(?:" + "|".join(f"({p})" for p, _ in _SPECIES) + ")" + _WORD_END,
    re.IGNORECASE,
)

# Product types in priority ranks. The seed pipeline gives smoked/breaded priority over the cut
# ("smoked/breaded product type priority", docs/reference/production-pipeline.md "Tests"): process
# beats coating beats formed product beats cut beats whole. Within a rank the last word mentioned
# wins, as English puts the head noun last ("Cod Loin Portions" -> portion).
_PRODUCT_TYPE_RANKS: Final[tuple[tuple[tuple[str, str], ...], ...]] = (
    (("smoked", "smoked"),),
    (
        (rf"breaded|(?:bread{_JOIN})?crumb(?:ed|s)?|panko", "breaded"),
        ("battered|batter|tempura", "battered"),
    ),
    (
        (rf"fish{_JOIN}cakes?", "fish cake"),
        ("goujons?|goujonettes?", "goujon"),
    ),
    (
        ("fill?ets?", "fillet"),
        ("loins?", "loin"),
        ("portions?", "portion"),
        ("steaks?", "steak"),
    ),
    (("whole", "whole"),),
)
_PRODUCT_TYPE_RES: Final = tuple(
    (
        re.compile(
            _WORD_START + "(?:" + "|".join(f"({p})" for p, _ in rank) + ")" + _WORD_END,
            re.IGNORECASE,
        ),
        tuple(name for _, name in rank),
    )
    for rank in _PRODUCT_TYPE_RANKS
)


def parse_species(text: str) -> str | None:
    """Return the normalised species named in free text, or None if none is recognised.

    Case-insensitive, whole words. Multi-word names win over the single words they contain
    ("Alaska Pollock" -> ``pollock``, "Rock Salmon" -> ``dogfish``, "Seabass" -> ``sea bass``).
    If several species are named, the first one in the text is returned.

    Normalised names: salmon, cod, haddock, hake, mackerel, tuna, plaice, pollock (also pollack,
    Alaska pollock), sea bass (seabass, bass), sea bream (seabream, bream), trout (sea trout,
    salmon trout), coley (saithe), halibut, monkfish, sole (lemon/Dover sole), herring,
    dogfish (huss, rock salmon).
    """
    match = _SPECIES_RE.search(text)
    if match is None or match.lastindex is None:
        return None
    return _SPECIES[match.lastindex - 1][1]


def parse_product_type(text: str) -> str | None:
    """Return the normalised product type named in free text, or None if none is recognised.

    Case-insensitive, whole words, plurals accepted. Types: smoked, breaded (also crumbed,
    breadcrumbs, panko), battered (batter, tempura), fish cake (fishcake, fish cakes), goujon
    (goujons, goujonettes), fillet (filet), loin, portion, steak, whole.

    Priority: smoked > breaded/battered > fish cake/goujon > fillet/loin/portion/steak > whole
    ("Smoked Salmon Fillet" -> ``smoked``, "Breaded Cod Portion" -> ``breaded``). Within one
    rank the last word wins ("Salmon Fillet Portions" -> ``portion``).
    """
    for pattern, names in _PRODUCT_TYPE_RES:
        last = None
        for last in pattern.finditer(text):  # noqa: B007 - only the last match is wanted
            pass
        if last is not None and last.lastindex is not None:
            return names[last.lastindex - 1]
    return None


# --------------------------------------------------------------------------------------------
# Coercion of the ERP's mixed representations

_TRUE: Final = frozenset({"1", "y", "yes", "true", "t"})
_FALSE: Final = frozenset({"0", "n", "no", "false", "f"})

# Digits with an optional sign, thousands separators in groups of three, an optional
# fraction. No units, no exponent, no "1_000", no decimal comma ("12,5" is refused, not 125).
_DECIMAL_RE: Final = re.compile(r"[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_ISO_DATE_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
# An ISO date-time at midnight without offset: how a date in a SQL datetime column renders.
_ISO_MIDNIGHT_RE: Final = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]00:00(?::00(?:\.0+)?)?")
# The UK ERP writes day first, DD/MM/YYYY (docs/reference/production-pipeline.md, "Shelf life").
_UK_DATE_RE: Final = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_UK_DATETIME_RE: Final = re.compile(
    r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})[ T]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?"
)
# ISO 8601 extended format with at least hours and minutes; the rest is fromisoformat's.
_ISO_DATETIME_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}.*")


def _show(value: object, limit: int = 60) -> str:
    """Short repr of a value for a human message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _squash(text: str) -> str:
    """Lower case, letters and digits only: "Tier 1" -> "tier1", "In Progress" -> "inprogress"."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def coerce_bool(value: object) -> bool:
    """Coerce one of the ERP's boolean representations to a bool.

    Accepts ``True``/``False``, the integers 1/0 and the strings "1"/"0", "Y"/"N", "yes"/"no",
    "true"/"false", "T"/"F" (any case, surrounding whitespace ignored). The seed pipeline saw
    both int and str flags in the same table (docs/reference/production-pipeline.md, "Validate").
    Raises ``ValueError`` for anything else, including None, floats and "2".
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        token = value.strip().lower()
        if token in _TRUE:
            return True
        if token in _FALSE:
            return False
    raise ValueError(
        f"{_show(value)} is not a yes/no value (expected 1/0, Y/N, yes/no, true/false)"
    )


def coerce_decimal(value: object) -> Decimal:
    """Coerce an ERP number (int, float, Decimal or text) to a finite Decimal.

    Text may carry a sign and thousands separators ("1,234.5"); units ("12.5 kg"), exponents,
    decimal commas and blank text are refused. Floats are converted through their shortest
    repr (0.1 -> Decimal("0.1")). Raises ``ValueError`` for NaN, infinities, booleans and
    anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"{_show(value)} is a yes/no value, not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{_show(value)} is not a finite number")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{_show(value)} is not a finite number")
        return value
    if isinstance(value, str):
        text = value.strip()
        if _DECIMAL_RE.fullmatch(text):
            return Decimal(text.replace(",", ""))
        raise ValueError(
            f"{_show(value)} is not a number (expected digits with an optional sign, decimal "
            "point and thousands separators; no units)"
        )
    raise ValueError(f"{_show(value)} is not a number")


def coerce_date(value: object) -> date:
    """Coerce an ERP date to a :class:`date`.

    Accepts a ``date``, a ``datetime`` (its own calendar date), "YYYY-MM-DD", the UK ERP's
    "DD/MM/YYYY" (day and month may be one digit) and a midnight ISO date-time without offset
    ("2025-06-01T00:00:00", a date stored in a datetime column). Raises ``ValueError``
    otherwise, including impossible dates (31/02/2025) and two-digit years.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{_show(value)} is not a date")
    text = value.strip()
    try:
        if match := _ISO_DATE_RE.fullmatch(text):
            return date(int(match[1]), int(match[2]), int(match[3]))
        if match := _UK_DATE_RE.fullmatch(text):
            return date(int(match[3]), int(match[2]), int(match[1]))
        if match := _ISO_MIDNIGHT_RE.fullmatch(text):
            return date.fromisoformat(match[1])
    except ValueError as exc:
        raise ValueError(f"{_show(value)} is not a valid date ({exc})") from None
    raise ValueError(f"{_show(value)} is not a date (expected YYYY-MM-DD or DD/MM/YYYY)")


def coerce_datetime(value: object, tz: tzinfo) -> datetime:
    """Coerce an ERP date-time to a timezone-aware UTC :class:`datetime`.

    Accepts a ``datetime``, ISO 8601 extended-format text with at least hours and minutes
    ("2025-06-01T06:00", "2025-06-01 06:00:00.123", "...Z", "...+01:00") and the UK ERP's
    "DD/MM/YYYY HH:MM[:SS]". Values without an offset are local times in ``tz`` (the ERP's
    zone, config ``erp.timezone``); in the autumn repeated hour the first occurrence is taken
    (PEP 495 ``fold=0``). Dates without a time, and any other type, raise ``ValueError``.
    """
    moment = _read_datetime(value, tz)
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=tz)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{_show(value)} is outside the supported date range") from None


def _read_datetime(value: object, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if match := _UK_DATETIME_RE.fullmatch(text):
                day, month, year, hour, minute, second = match.groups()
                return datetime(
                    int(year),
                    int(month),
                    int(day),
                    int(hour),
                    int(minute),
                    int(second or 0),
                    tzinfo=tz,
                )
            if _ISO_DATETIME_RE.fullmatch(text):
                return datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{_show(value)} is not a valid date-time ({exc})") from None
        raise ValueError(
            f"{_show(value)} is not a date-time (expected ISO 8601, e.g. 2025-06-01T06:00:00 "
            "or 2025-06-01T05:00:00Z, or DD/MM/YYYY HH:MM)"
        )
    raise ValueError(f"{_show(value)} is not a date-time")


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
    if isinstance(value, str) and (tier := _TIERS.get(_squash(value))) is not None:
        return tier
    raise ValueError(
        f"{_show(value)} is not a tier (expected Premium/Tier 1, GG/Tier 2/Standard or "
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
        key = _squash(value)
        if key in _STATUSES:
            status = _STATUSES[key]
            if status is None:
                return RunStatus.RUNNING if started else RunStatus.PLANNED
            return status
    raise ValueError(
        f"{_show(value)} is not a run status (expected planned, running, finished, cancelled, "
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
        if "-" not in text and (days := _SHELF_LIFE_WORDS.get(_squash(text))) is not None:
            return days
    raise ValueError(
        f"{_show(value)} is not a shelf-life adjustment (expected 0-3, rubber clock or superchill)"
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
                raise ValueError(f"batch code {_show(item)} is not text")
    else:
        raise ValueError(f"{_show(value)} is not a batch code or a list of batch codes")
    return tuple(dict.fromkeys(c.strip() for c in codes if c.strip()))


# --------------------------------------------------------------------------------------------
# parse_run

# Normalised key (see _squash) -> the field's ERP name, for a run row and for one product.
# The table is the module docstring's "ERP field mapping".
_RUN_KEYS: Final[dict[str, str]] = {
    "runnumber": "RunNumber",
    "line": "Line",
    "batchcode": "BatchCode",
    "batchcodes": "BatchCodes",
    "description": "Description",
    "species": "Species",
    "producttype": "ProductType",
    "products": "Products",
    "rawmaterialkg": "RawMaterialKg",
    "packdate": "PackDate",
    "shelflifeadjust": "ShelfLifeAdjust",
    "plannedstart": "PlannedStart",
    "plannedend": "PlannedEnd",
    "actualstart": "ActualStart",
    "actualend": "ActualEnd",
    "status": "Status",
    "updated": "Updated",
}
_PRODUCT_KEYS: Final[dict[str, str]] = {
    "plu": "PLU",
    "description": "Description",
    "nominalweight": "NominalWeight",
    "nominalg": "NominalWeight",
    "nominalweightg": "NominalWeight",
    "tier": "Tier",
    "catchweight": "CatchWeight",
    "tare": "Tare",
    "tareg": "Tare",
    "glaze": "Glaze",
    "glazepct": "Glaze",
    "species": "Species",
    "gtin": "GTIN",
}

# Glaze is a percentage of the gross frozen weight (docs/reference/domain-rules.md §1.1: net
# excludes glaze); bounded to 0-50 %: more ice than fish is a data error.
_MAX_GLAZE_PCT: Final = Decimal(50)


def _absent(value: object) -> bool:
    """None and blank text are how the ERP says "no value"."""
    return value is None or (isinstance(value, str) and not value.strip())


def _jsonable(value: object) -> object:
    """A JSON-able form of an unknown ERP value (kept in ``extra``)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class _Fields:
    """The known fields of one object (run row or product) by ERP name, with the key as sent."""

    def __init__(
        self,
        raw: Mapping[Any, object],
        table: Mapping[str, str],
        where: str,
        reasons: list[str],
    ) -> None:
        self.where = where
        self.reasons = reasons
        self.found: dict[str, tuple[str, object]] = {}
        self.unknown: dict[str, object] = {}
        for key, value in raw.items():
            sent = str(key)
            name = table.get(_squash(sent))
            if name is None:
                self.unknown[sent] = value
                continue
            if name in self.found:
                first_key, first = self.found[name]
                if _absent(value):
                    continue
                if not _absent(first) and first != value:
                    reasons.append(
                        f"{where}{name} is given twice with different values: "
                        f"{first_key} = {_show(first)} and {sent} = {_show(value)}"
                    )
                    continue
            self.found[name] = (sent, value)

    def get(self, name: str) -> tuple[str, object] | None:
        """(label for messages, value) if the field is present and not blank."""
        got = self.found.get(name)
        if got is None or _absent(got[1]):
            return None
        return f"{self.where}{got[0]}", got[1]

    def convert(self, name: str, convert: Callable[[object], _T]) -> _T | None:
        """The converted value, or None if absent or invalid (the reason is recorded)."""
        got = self.get(name)
        if got is None:
            return None
        label, value = got
        try:
            return convert(value)
        except ValueError as exc:
            self.reasons.append(f"{label}: {exc}")
            return None

    def require(self, name: str, convert: Callable[[object], _T], why: str = "") -> _T | None:
        """As :meth:`convert`, and record a reason if the field is absent."""
        if self.get(name) is None:
            self.reasons.append(f"{self.where}{name} is missing or blank{why}")
            return None
        return self.convert(name, convert)


def _identifier(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    raise ValueError(f"{_show(value)} is not text")


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    raise ValueError(f"{_show(value)} is not text")


def _named(parse: Callable[[str], str | None]) -> Callable[[object], str]:
    """An explicit species/product type: normalised if recognised, else kept (lower case)."""

    def convert(value: object) -> str:
        text = " ".join(_text(value).split())
        return parse(text) or text.lower()

    return convert


def _at_least_zero(value: object) -> Decimal:
    number = coerce_decimal(value)
    if number < 0:
        raise ValueError(f"{_show(value)} is negative")
    return number


def _above_zero(value: object) -> Decimal:
    number = coerce_decimal(value)
    if number <= 0:
        raise ValueError(f"{_show(value)} is not above zero")
    return number


def _glaze(value: object) -> Decimal:
    number = coerce_decimal(value)
    if not 0 <= number <= _MAX_GLAZE_PCT:
        raise ValueError(f"{_show(value)} is outside 0-{_MAX_GLAZE_PCT} %")
    return number


def _gtin(value: object) -> str:
    """GTIN-8/12/13/14 with a valid mod-10 check digit (GS1 GenSpecs §7.9.1), as GTIN-14."""
    text = _identifier(value)
    if not (text.isascii() and text.isdigit() and len(text) in (8, 12, 13, 14)):
        raise ValueError(f"{_show(value)} is not a GTIN (8, 12, 13 or 14 digits)")
    expected = gtin_check_digit(text[:-1])
    if expected != int(text[-1]):
        raise ValueError(f"{_show(value)} has a wrong check digit (expected {expected})")
    # AI (01) carries GTIN-14; shorter GTINs are right-aligned with leading zeros (GenSpecs §3).
    return text.rjust(14, "0")


def parse_run(raw: Mapping[str, object], *, tz: tzinfo) -> ProductionRun | RunRejection:
    """Parse one ERP production-run row; never raises.

    ``raw`` is the row as delivered (keys and values: see the module docstring's field
    mapping). ``tz`` is the ERP's time zone, applied to date-times without an offset. Returns
    a :class:`ProductionRun`, or a :class:`RunRejection` whose ``reasons`` name every problem
    found (field as the ERP sent it, value, what was expected), not just the first.
    """
    try:
        copy = {str(k): v for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    except Exception:  # noqa: BLE001 - defensive: parse_run must never raise
        copy = {}
    try:
        return _parse_run(raw, copy, tz)
    except Exception as exc:  # noqa: BLE001 - defensive: parse_run must never raise
        return RunRejection(
            raw=copy,
            reasons=(f"the row could not be parsed (internal error {type(exc).__name__}: {exc})",),
        )


def _parse_run(raw: object, copy: dict[str, object], tz: tzinfo) -> ProductionRun | RunRejection:
    if not isinstance(raw, Mapping):
        return RunRejection(raw=copy, reasons=(f"the row {_show(raw)} is not an object",))
    reasons: list[str] = []
    fields = _Fields(raw, _RUN_KEYS, "", reasons)
    extra = {key: _jsonable(value) for key, value in fields.unknown.items()}

    run_number = fields.require("RunNumber", _identifier)
    line = fields.require("Line", _identifier)

    batch_codes: list[str] = []
    batch_problem = False
    for name in ("BatchCode", "BatchCodes"):
        if fields.get(name) is not None:
            codes = fields.convert(name, split_batch_codes)
            batch_problem |= codes is None
            batch_codes.extend(codes or ())
    batch_codes = list(dict.fromkeys(batch_codes))
    if not batch_codes and not batch_problem:
        reasons.append("BatchCode/BatchCodes is missing or empty: a run needs a batch code")

    description = fields.convert("Description", _text) or ""
    species = fields.convert("Species", _named(parse_species))
    if species is None and fields.get("Species") is None:
        species = parse_species(description)
    product_type = fields.convert("ProductType", _named(parse_product_type))
    if product_type is None and fields.get("ProductType") is None:
        product_type = parse_product_type(description)

    products: tuple[Product, ...] = ()
    if (got := fields.get("Products")) is not None:
        products = _parse_products(*got, reasons, extra)

    raw_material_kg = fields.convert("RawMaterialKg", _at_least_zero)
    pack_date = fields.convert("PackDate", coerce_date)
    shelf_life_adjust = fields.convert("ShelfLifeAdjust", parse_shelf_life_adjust) or 0

    def moment(value: object) -> datetime:
        return coerce_datetime(value, tz)

    planned_start = fields.convert("PlannedStart", moment)
    planned_end = fields.convert("PlannedEnd", moment)
    actual_start = fields.convert("ActualStart", moment)
    actual_end = fields.convert("ActualEnd", moment)
    for start, end, which in (
        (planned_start, planned_end, "Planned"),
        (actual_start, actual_end, "Actual"),
    ):
        if start is not None and end is not None and end < start:
            reasons.append(
                f"{which}End {end.isoformat()} is before {which}Start {start.isoformat()}"
            )

    if fields.get("Status") is not None:
        status = fields.convert(
            "Status", lambda v: parse_status(v, started=actual_start is not None)
        )
    elif actual_end is not None:
        status = RunStatus.FINISHED
    elif actual_start is not None:
        status = RunStatus.RUNNING
    else:
        status = RunStatus.PLANNED

    updated = fields.require("Updated", moment, " (it is the incremental watermark)")

    if reasons or run_number is None or line is None or status is None or updated is None:
        return RunRejection(raw=copy, reasons=tuple(reasons), run_number=run_number or None)
    return ProductionRun(
        run_number=run_number,
        line=line,
        batch_codes=tuple(batch_codes),
        description=description,
        species=species,
        product_type=product_type,
        products=products,
        raw_material_kg=raw_material_kg,
        pack_date=pack_date,
        shelf_life_adjust=shelf_life_adjust,
        planned_start=planned_start,
        planned_end=planned_end,
        actual_start=actual_start,
        actual_end=actual_end,
        status=status,
        updated=updated,
        extra=extra,
    )


def _parse_products(
    label: str, value: object, reasons: list[str], extra: dict[str, object]
) -> tuple[Product, ...]:
    if not isinstance(value, list | tuple):
        reasons.append(f"{label}: {_show(value)} is not a list of products")
        return ()
    products: list[Product] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(value):
        where = f"{label}[{index}]"
        if not isinstance(item, Mapping):
            reasons.append(f"{where}: {_show(item)} is not a product object")
            continue
        plu, product = _parse_product(where, item, reasons, extra)
        if plu is None:
            continue
        if plu in first_index:
            reasons.append(f"{where}: PLU {plu!r} is already {label}[{first_index[plu]}]")
            continue
        first_index[plu] = index
        if product is not None:
            products.append(product)
    return tuple(products)


def _parse_product(
    where: str, raw: Mapping[Any, object], reasons: list[str], extra: dict[str, object]
) -> tuple[str | None, Product | None]:
    """(PLU if readable, the product if it has no problem)."""
    before = len(reasons)
    plu_fields = _Fields(raw, _PRODUCT_KEYS, f"{where} ", reasons)
    plu = plu_fields.require("PLU", _identifier)
    # Name the PLU in every later message about this product: that is what people look up.
    fields = plu_fields
    if plu:
        fields = _Fields(raw, _PRODUCT_KEYS, f"{where} (PLU {plu!r}) ", [])
        fields.reasons = reasons
    for key, value in fields.unknown.items():
        extra[f"{where}.{key}"] = _jsonable(value)

    description = fields.convert("Description", _text) or ""
    tier = fields.require("Tier", parse_tier)
    catch_weight = fields.convert("CatchWeight", coerce_bool) or False
    nominal_g: Decimal | None = None
    if not catch_weight:
        # Qn is what the ℮ rules are applied against; catch-weight packs have none
        # (docs/reference/domain-rules.md §1.1; docs/reference/glossary.md "Fixed weight vs catch
        # weight").
        nominal_g = fields.require(
            "NominalWeight", _above_zero, " (required unless CatchWeight is yes)"
        )
    tare_g = fields.convert("Tare", _at_least_zero)
    glaze_pct = fields.convert("Glaze", _glaze)
    species = fields.convert("Species", _named(parse_species))
    if species is None and fields.get("Species") is None:
        species = parse_species(description)
    gtin = fields.convert("GTIN", _gtin)

    if len(reasons) > before or not plu or tier is None:
        return plu or None, None
    return plu, Product(
        plu=plu,
        description=description,
        nominal_g=nominal_g,
        tier=tier,
        catch_weight=catch_weight,
        tare_g=tare_g if tare_g is not None else Decimal(0),
        glaze_pct=glaze_pct if glaze_pct is not None else Decimal(0),
        species=species,
        gtin=gtin,
    )


# --------------------------------------------------------------------------------------------
# Fingerprint and JSON storage

_JSON_FORMAT: Final = 1


def _canonical(number: Decimal | None) -> str | None:
    """Value-equal decimals give equal text ("120" and "120.0" -> "120")."""
    return None if number is None else format(number.normalize(), "f")


def run_fingerprint(run: ProductionRun) -> dict[str, object]:
    """The fields whose change after a run has started must be reconciled with an alert.

    Line, batch codes (sorted: their order carries no meaning) and every field of every
    product (sorted by PLU; decimals in canonical text so 120 and 120.0 compare equal), as a
    JSON-able dict: compare two fingerprints with ``==`` or store one as JSON.
    """
    return {
        "line": run.line,
        "batch_codes": sorted(run.batch_codes),
        "products": [
            {
                "plu": p.plu,
                "description": p.description,
                "nominal_g": _canonical(p.nominal_g),
                "tier": p.tier.value,
                "catch_weight": p.catch_weight,
                "tare_g": _canonical(p.tare_g),
                "glaze_pct": _canonical(p.glaze_pct),
                "species": p.species,
                "gtin": p.gtin,
            }
            for p in sorted(run.products, key=lambda p: p.plu)
        ],
    }


def _iso(moment: date | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _dec(number: Decimal | None) -> str | None:
    return None if number is None else str(number)


def run_to_json(run: ProductionRun) -> dict[str, object]:
    """A JSON-able dict for storing a run (e.g. in SQLite); :func:`run_from_json` inverts it.

    Decimals become strings (exact), dates and date-times ISO 8601 text, enums their values.
    """
    return {
        "format": _JSON_FORMAT,
        "run_number": run.run_number,
        "line": run.line,
        "batch_codes": list(run.batch_codes),
        "description": run.description,
        "species": run.species,
        "product_type": run.product_type,
        "products": [
            {
                "plu": p.plu,
                "description": p.description,
                "nominal_g": _dec(p.nominal_g),
                "tier": p.tier.value,
                "catch_weight": p.catch_weight,
                "tare_g": str(p.tare_g),
                "glaze_pct": str(p.glaze_pct),
                "species": p.species,
                "gtin": p.gtin,
            }
            for p in run.products
        ],
        "raw_material_kg": _dec(run.raw_material_kg),
        "pack_date": _iso(run.pack_date),
        "shelf_life_adjust": run.shelf_life_adjust,
        "planned_start": _iso(run.planned_start),
        "planned_end": _iso(run.planned_end),
        "actual_start": _iso(run.actual_start),
        "actual_end": _iso(run.actual_end),
        "status": run.status.value,
        "updated": run.updated.isoformat(),
        "extra": _jsonable(run.extra),
    }


def _j(data: Mapping[str, object], key: str, kind: type[_T]) -> _T:
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"stored run field {key!r} is {_show(value)}, not {kind.__name__}")
    return value


def _j_opt(data: Mapping[str, object], key: str, kind: type[_T]) -> _T | None:
    return None if data.get(key) is None else _j(data, key, kind)


def _j_dec(data: Mapping[str, object], key: str) -> Decimal | None:
    text = _j_opt(data, key, str)
    return None if text is None else Decimal(text)


def _j_moment(data: Mapping[str, object], key: str) -> datetime | None:
    text = _j_opt(data, key, str)
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"stored run field {key!r} is {text!r}, without a UTC offset")
    return moment


def run_from_json(data: Mapping[str, object]) -> ProductionRun:
    """Rebuild a run from :func:`run_to_json` output (also after a ``json`` round trip).

    Raises ``ValueError`` if ``data`` is not such a dict (missing key, wrong type, other
    format version).
    """
    try:
        if data.get("format") != _JSON_FORMAT:
            raise ValueError(f"unsupported stored run format {_show(data.get('format'))}")
        products = tuple(
            Product(
                plu=_j(p, "plu", str),
                description=_j(p, "description", str),
                nominal_g=_j_dec(p, "nominal_g"),
                tier=Tier(_j(p, "tier", str)),
                catch_weight=_j(p, "catch_weight", bool),
                tare_g=Decimal(_j(p, "tare_g", str)),
                glaze_pct=Decimal(_j(p, "glaze_pct", str)),
                species=_j_opt(p, "species", str),
                gtin=_j_opt(p, "gtin", str),
            )
            for p in _mappings(_j(data, "products", list))
        )
        updated = _j_moment(data, "updated")
        if updated is None:
            raise ValueError("stored run has no 'updated' time")
        pack_date = _j_opt(data, "pack_date", str)
        return ProductionRun(
            run_number=_j(data, "run_number", str),
            line=_j(data, "line", str),
            batch_codes=tuple(_strings(_j(data, "batch_codes", list))),
            description=_j(data, "description", str),
            species=_j_opt(data, "species", str),
            product_type=_j_opt(data, "product_type", str),
            products=products,
            raw_material_kg=_j_dec(data, "raw_material_kg"),
            pack_date=None if pack_date is None else date.fromisoformat(pack_date),
            shelf_life_adjust=_j(data, "shelf_life_adjust", int),
            planned_start=_j_moment(data, "planned_start"),
            planned_end=_j_moment(data, "planned_end"),
            actual_start=_j_moment(data, "actual_start"),
            actual_end=_j_moment(data, "actual_end"),
            status=RunStatus(_j(data, "status", str)),
            updated=updated,
            extra=dict(_j(data, "extra", dict)),
        )
    except (KeyError, TypeError, AttributeError, ArithmeticError) as exc:
        raise ValueError(f"not a stored run: {type(exc).__name__}: {exc}") from None


def _mappings(items: Iterable[object]) -> list[Mapping[str, object]]:
    out: list[Mapping[str, object]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ValueError(f"stored product {_show(item)} is not an object")
        out.append(item)
    return out


def _strings(items: Iterable[object]) -> list[str]:
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"stored batch code {_show(item)} is not text")
        out.append(item)
    return out
