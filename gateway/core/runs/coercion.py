"""Coercion of the ERP's mixed representations: yes/no flags, numbers, dates and date-times.

The ERP writes the same value in several forms (int and text flags in one table, UK and ISO
dates); these turn each form into one Python type, or raise ``ValueError`` with a message an
operator can act on.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Final

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


def shown(value: object, limit: int = 60) -> str:
    """Short repr of a value for a human message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def squash(text: str) -> str:
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
        f"{shown(value)} is not a yes/no value (expected 1/0, Y/N, yes/no, true/false)"
    )


def coerce_decimal(value: object) -> Decimal:
    """Coerce an ERP number (int, float, Decimal or text) to a finite Decimal.

    Text may carry a sign and thousands separators ("1,234.5"); units ("12.5 kg"), exponents,
    decimal commas and blank text are refused. Floats are converted through their shortest
    repr (0.1 -> Decimal("0.1")). Raises ``ValueError`` for NaN, infinities, booleans and
    anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is a yes/no value, not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{shown(value)} is not a finite number")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{shown(value)} is not a finite number")
        return value
    if isinstance(value, str):
        text = value.strip()
        if _DECIMAL_RE.fullmatch(text):
            return Decimal(text.replace(",", ""))
        raise ValueError(
            f"{shown(value)} is not a number (expected digits with an optional sign, decimal "
            "point and thousands separators; no units)"
        )
    raise ValueError(f"{shown(value)} is not a number")


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
        raise ValueError(f"{shown(value)} is not a date")
    text = value.strip()
    try:
        if match := _ISO_DATE_RE.fullmatch(text):
            return date(int(match[1]), int(match[2]), int(match[3]))
        if match := _UK_DATE_RE.fullmatch(text):
            return date(int(match[3]), int(match[2]), int(match[1]))
        if match := _ISO_MIDNIGHT_RE.fullmatch(text):
            return date.fromisoformat(match[1])
    except ValueError as exc:
        raise ValueError(f"{shown(value)} is not a valid date ({exc})") from None
    raise ValueError(f"{shown(value)} is not a date (expected YYYY-MM-DD or DD/MM/YYYY)")


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
        raise ValueError(f"{shown(value)} is outside the supported date range") from None


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
            raise ValueError(f"{shown(value)} is not a valid date-time ({exc})") from None
        raise ValueError(
            f"{shown(value)} is not a date-time (expected ISO 8601, e.g. 2025-06-01T06:00:00 "
            "or 2025-06-01T05:00:00Z, or DD/MM/YYYY HH:MM)"
        )
    raise ValueError(f"{shown(value)} is not a date-time")
