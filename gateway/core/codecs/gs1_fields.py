"""Reading and checking one GS1 element string's fields: the AI at a position, its value,
its characters, dates and implied decimals, and the label built from them (pure)."""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal

from gateway.core.codecs.gs1_syntax import (
    AIS,
    CSET82,
    DIGITS,
    FOUR_DIGIT_PREFIXES,
    AiSpec,
    Cursor,
    Gs1Label,
    _Reject,
    excerpt,
    gtin_check_digit,
    show_char,
)


def read_ai(cur: Cursor, pos: int) -> tuple[str, AiSpec, int]:
    """Identify the AI at ``pos``; return it, its spec and where its value starts."""
    text = cur.text
    head = text[pos : pos + 2]
    if not head or head[0] not in DIGITS or (len(head) == 2 and head[1] not in DIGITS):
        bad = head[0] if head[0] not in DIGITS else head[1]
        at = pos + 1 if head[0] not in DIGITS else pos + 2
        raise _Reject(
            "trailing_garbage",
            f"unexpected {show_char(bad)} at position {at} where an application identifier "
            f"should start ({excerpt(text[pos:])})",
        )
    if len(head) < 2:
        raise _Reject(
            "truncated",
            f"data ends at position {pos + 1} in the middle of an application identifier",
        )
    if head in AIS:
        return head, AIS[head], pos + 2
    if head in FOUR_DIGIT_PREFIXES:
        ai = text[pos : pos + 4]
        if ai in AIS:
            return ai, AIS[ai], pos + 4
        if len(ai) < 4 and all(c in DIGITS for c in ai):
            raise _Reject(
                "truncated",
                f"data ends at position {len(text)} in the middle of application identifier {ai!r}",
            )
        raise _Reject(
            "unknown_ai",
            f"application identifier ({_ai_name(text, pos)}) at position {pos + 1} "
            "is not supported",
        )
    raise _Reject(
        "unknown_ai",
        f"application identifier ({_ai_name(text, pos)}) at position {pos + 1} is not supported",
    )


def _ai_name(text: str, pos: int) -> str:
    """Best-effort name of an unsupported AI for messages: AI length follows its first two
    digits (GS1 General Specifications §3.2 AI table)."""
    head = text[pos : pos + 2]
    if head in {"23", "24", "25", "40", "41", "42", "71"}:
        width = 3
    elif head in {"31", "32", "33", "34", "35", "36", "39", "43"} or head[:1] in {"7", "8"}:
        width = 4
    else:
        width = 2
    name = text[pos : pos + width]
    while name and name[-1] not in DIGITS:
        name = name[:-1]
    return name


def read_value(cur: Cursor, ai: str, spec: AiSpec, vstart: int) -> tuple[str, int]:
    """Cut the value of ``ai`` starting at ``vstart``; return it and the position after it."""
    text = cur.text
    where = f"AI ({ai}) {spec.title}"
    if spec.fixed:
        value = text[vstart : vstart + spec.length]
        # A GS (or a substitute that cannot be data) inside a fixed field means it was cut short.
        cut = cur.find_sep(vstart)
        sep = text[cut : cut + cur.sep_at(cut)]
        if cut < vstart + len(value) and any(c not in DIGITS for c in sep):
            got = cut - vstart
            raise _Reject(
                "truncated",
                f"{where} needs {spec.length} digits but a separator follows after {got} "
                f"(position {cut + 1})",
            )
        if len(value) < spec.length:
            raise _Reject(
                "truncated",
                f"{where} needs {spec.length} digits but the data ends after {len(value)}",
            )
        return value, vstart + spec.length

    end = cur.find_sep(vstart)
    value = text[vstart:end]
    if not value:
        raise _Reject("truncated", f"{where} at position {vstart + 1} has no value")
    # Character checks first: a stray '|' is more telling than the length it causes.
    check_chars(ai, spec, value, vstart)
    if len(value) > spec.length:
        if end == len(text) and not cur.has_separator:
            raise _Reject(
                "missing_separator",
                f"{where} value at position {vstart + 1} runs to {len(value)} characters "
                f"(max {spec.length}) and the scan contains no GS separator: is the scanner "
                "dropping FNC1?",
            )
        raise _Reject(
            "too_long",
            f"{where} value at position {vstart + 1} is {len(value)} characters long "
            f"(max {spec.length})",
        )
    return value, end


def check_chars(ai: str, spec: AiSpec, value: str, vstart: int) -> None:
    where = f"AI ({ai}) {spec.title}"
    for i, ch in enumerate(value):
        if spec.numeric and ch not in DIGITS:
            raise _Reject(
                "bad_numeric",
                f"{where} must be digits but has {show_char(ch)} at position {vstart + i + 1}",
            )
        if ch not in CSET82:
            hint = " (a separator the scanner sends but that is not configured?)"
            raise _Reject(
                "bad_character",
                f"{where} has {show_char(ch)} at position {vstart + i + 1}, which is not allowed "
                "in GS1 data" + (hint if ch in "|{}[]^~#$@\\` \x1c\x1e" else ""),
            )


def validate(ai: str, spec: AiSpec, value: str, vstart: int, today: date) -> None:
    """Check the content rules of a value already cut to length."""
    if spec.fixed:
        check_chars(ai, spec, value, vstart)
    if spec.kind == "gtin":
        # GS1 General Specifications §7.9.1: mod-10 check digit over the first 13 digits.
        expected = gtin_check_digit(value[:13])
        if int(value[13]) != expected:
            raise _Reject(
                "bad_check_digit",
                f"AI ({ai}) GTIN {value} has check digit {value[13]}, expected {expected}",
            )
    elif spec.kind == "date":
        _decode_date(ai, spec, value, today)


def _decode_date(ai: str, spec: AiSpec, value: str, today: date) -> date:
    """Decode YYMMDD; DD = 00 means the last day of the month; century per GenSpecs §7.12."""
    yy, mm, dd = int(value[0:2]), int(value[2:4]), int(value[4:6])
    where = f"AI ({ai}) {spec.title} {value}"
    if not 1 <= mm <= 12:
        raise _Reject("bad_date", f"{where}: month {mm:02d} does not exist")
    # GS1 General Specifications §7.12: take the century of `today`; if the resulting year is
    # 51..99 years ahead use the previous century, if 50..99 years behind use the next one.
    diff = yy - today.year % 100
    year = today.year - today.year % 100 + yy
    if diff > 50:
        year -= 100
    elif diff <= -50:
        year += 100
    if not 1 <= year <= 9999:
        raise _Reject("bad_date", f"{where}: year {year} is outside the calendar")
    last = calendar.monthrange(year, mm)[1]
    if dd == 0:
        # Syntax dictionary "yymmd0": DD = 00 is allowed; for AI (15) and (17) GenSpecs §3
        # defines it as the last day of the month (leap years included). Applied to 11/13 too.
        return date(year, mm, last)
    if dd > last:
        raise _Reject("bad_date", f"{where}: {year}-{mm:02d} has no day {dd:02d}")
    return date(year, mm, dd)


def _implied_decimal(digits: str, decimals: int) -> Decimal:
    """Value of ``digits`` with ``decimals`` implied decimal places, exactly (no rounding)."""
    return Decimal((0, tuple(int(c) for c in digits), -decimals))


def build_label(
    raw: bytes, symbology: str | None, elements: tuple[tuple[str, str], ...], today: date
) -> Gs1Label:
    values = dict(elements)
    dates: dict[str, date] = {
        ai: _decode_date(ai, AIS[ai], values[ai], today)
        for ai in ("11", "13", "15", "17")
        if ai in values
    }
    weight = price = None
    for ai, value in elements:
        if AIS[ai].kind == "weight":
            weight = _implied_decimal(value, int(ai[3]))
        elif AIS[ai].kind == "price":
            price = _implied_decimal(value, int(ai[3]))
    return Gs1Label(
        raw=raw,
        symbology=symbology,
        elements=elements,
        gtin=values.get("01"),
        batch=values.get("10"),
        production_date=dates.get("11"),
        pack_date=dates.get("13"),
        best_before=dates.get("15"),
        use_by=dates.get("17"),
        serial=values.get("21"),
        net_weight_kg=weight,
        price=price,
    )
