"""Field converters of the run parser: each takes one ERP value, returns it checked or raises
``ValueError`` with the reason."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Final

from gateway.core.codecs.gs1 import gtin_check_digit
from gateway.core.runs.coercion import coerce_decimal, shown

# Glaze is a percentage of the gross frozen weight (docs/reference/domain-rules.md §1.1: net
# excludes glaze); bounded to 0-50 %: more ice than fish is a data error.
_MAX_GLAZE_PCT: Final = Decimal(50)


def as_identifier(value: object) -> str:
    """An identifier (run number, line, PLU): text stripped, or an integer as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    raise ValueError(f"{shown(value)} is not text")


def as_text(value: object) -> str:
    """Free text, stripped."""
    if isinstance(value, str):
        return value.strip()
    raise ValueError(f"{shown(value)} is not text")


def named(parse: Callable[[str], str | None]) -> Callable[[object], str]:
    """An explicit species/product type: normalised if recognised, else kept (lower case)."""

    def convert(value: object) -> str:
        text = " ".join(as_text(value).split())
        return parse(text) or text.lower()

    return convert


def at_least_zero(value: object) -> Decimal:
    """A number >= 0 (raw material kg, tare)."""
    number = coerce_decimal(value)
    if number < 0:
        raise ValueError(f"{shown(value)} is negative")
    return number


def above_zero(value: object) -> Decimal:
    """A number > 0 (the nominal quantity)."""
    number = coerce_decimal(value)
    if number <= 0:
        raise ValueError(f"{shown(value)} is not above zero")
    return number


def glaze_percent(value: object) -> Decimal:
    """A glaze percentage within 0-50 %."""
    number = coerce_decimal(value)
    if not 0 <= number <= _MAX_GLAZE_PCT:
        raise ValueError(f"{shown(value)} is outside 0-{_MAX_GLAZE_PCT} %")
    return number


def gtin14(value: object) -> str:
    """GTIN-8/12/13/14 with a valid mod-10 check digit (GS1 GenSpecs §7.9.1), as GTIN-14."""
    text = as_identifier(value)
    if not (text.isascii() and text.isdigit() and len(text) in (8, 12, 13, 14)):
        raise ValueError(f"{shown(value)} is not a GTIN (8, 12, 13 or 14 digits)")
    expected = gtin_check_digit(text[:-1])
    if expected != int(text[-1]):
        raise ValueError(f"{shown(value)} has a wrong check digit (expected {expected})")
    # AI (01) carries GTIN-14; shorter GTINs are right-aligned with leading zeros (GenSpecs §3).
    return text.rjust(14, "0")
