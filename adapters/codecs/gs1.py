"""Pure GS1 element-string helpers and parser (no I/O, no asyncio, no clock reads).

Scanners on the packing line deliver GS1 element strings: application identifier (AI) + value
pairs, optionally preceded by a symbology identifier (``]C1``, ``]e0``, ``]d2``, ``]Q3``), with
FNC1 separators transmitted as ASCII GS (0x1D) after variable-length values. ``parse_gs1``
turns one read into a :class:`Gs1Label` or a :class:`Gs1Rejection`; it never raises.

Supported AIs (GS1 General Specifications §3, GS1 Barcode Syntax Dictionary)::

    01    GTIN                N14, check digit          predefined length
    10    BATCH/LOT           X..20                     variable, separator unless last
    11    PROD DATE           N6 YYMMDD, DD may be 00   predefined length
    13    PACK DATE           N6 YYMMDD, DD may be 00   predefined length
    15    BEST BEFORE         N6 YYMMDD, DD may be 00   predefined length
    17    USE BY / EXPIRY     N6 YYMMDD, DD may be 00   predefined length
    21    SERIAL              X..20                     variable, separator unless last
    310n  NET WEIGHT (kg)     N6, n = 0-5 decimals      predefined length
    392n  PRICE               N..15, n = 0-9 decimals   variable, separator unless last

Rejection reason codes (``Gs1Rejection.reason``), a fixed set:

``empty``                 nothing but whitespace, symbology identifier or separators
``not_text``              bytes that are not valid UTF-8
``non_ascii``             a character outside 7-bit ASCII
``control_character``     a control character that is not a configured separator
``unsupported_symbology`` a ``]xy`` prefix other than ``]C1``, ``]e0``, ``]d2``, ``]Q3``
``unknown_ai``            digits where an AI starts that are not a supported AI
``trailing_garbage``      a non-digit where an AI should start (e.g. after a fixed field)
``truncated``             data ends (or a separator comes) before an AI or value is complete
``too_long``              a variable-length value longer than the AI allows
``missing_separator``     as ``too_long``, but the read has no separator at all (scanner
                          probably not transmitting FNC1/GS)
``bad_numeric``           a non-digit in a numeric field
``bad_character``         a character outside GS1 AI encodable character set 82
``bad_check_digit``       GTIN check digit does not match
``bad_date``              impossible date (month, day) or a year outside the calendar
``duplicate_ai``          the same AI (or the same 310n / 392n family) twice, different values
``internal_error``        a bug in this parser (never expected; the read is rejected, not lost)
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final, Literal, get_args

__all__ = [
    "GS",
    "REASONS",
    "SYMBOLOGIES",
    "Gs1Label",
    "Gs1Rejection",
    "encode_element_string",
    "gtin_check_digit",
    "parse_gs1",
]

GS: Final = "\x1d"
"""ASCII group separator: how FNC1-as-separator is transmitted by scanners (GenSpecs §7.8.5)."""

SYMBOLOGIES: Final = frozenset({"]C1", "]e0", "]d2", "]Q3"})
"""Accepted symbology identifiers (ISO/IEC 15424 as used in GS1 General Specifications §5):
GS1-128, GS1 DataBar (incl. Expanded), GS1 DataMatrix, GS1 QR Code."""

Reason = Literal[
    "empty",
    "not_text",
    "non_ascii",
    "control_character",
    "unsupported_symbology",
    "unknown_ai",
    "trailing_garbage",
    "truncated",
    "too_long",
    "missing_separator",
    "bad_numeric",
    "bad_character",
    "bad_check_digit",
    "bad_date",
    "duplicate_ai",
    "internal_error",
]

REASONS: Final[frozenset[str]] = frozenset(get_args(Reason))
"""Every value ``Gs1Rejection.reason`` can take (see the module docstring for meanings)."""

_DIGITS: Final = frozenset("0123456789")

# GS1 AI encodable character set 82 (GS1 General Specifications §7.11): digits, upper and lower
# case letters and ! " % & ' ( ) * + , - . / : ; < = > ? _  -- no space, no # $ @ [ \ ] ^ ` { | } ~.
_CSET82: Final = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!\"%&'()*+,-./:;<=>?_"
)

# GS1 General Specifications §7.8.5 (figure "Element strings with predefined length using GS1
# Application Identifiers"): element strings whose AI starts with these two digits have a
# predefined length and need no FNC1 separator after them. Every other AI is variable length.
_PREDEFINED_LENGTH_PREFIXES: Final = frozenset(
    {"00", "01", "02", "03", "04", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20"}
    | {"31", "32", "33", "34", "35", "36", "41"}
)

# Scanner read terminators trimmed from the end of the data.
_TRAILING_WHITESPACE: Final = " \t\r\n\v\f"


@dataclass(frozen=True, slots=True)
class _AiSpec:
    """Format of one supported AI's data field (GS1 Barcode Syntax Dictionary notation)."""

    title: str
    numeric: bool  # N (digits) vs X (character set 82)
    length: int  # exact length if fixed, otherwise maximum
    fixed: bool
    kind: Literal["gtin", "date", "text", "weight", "price"]


_AIS: Final[dict[str, _AiSpec]] = {
    # §3 AI (01): N14 with mod-10 check digit (§7.9.1).
    "01": _AiSpec("GTIN", numeric=True, length=14, fixed=True, kind="gtin"),
    # §3 AI (10): X..20.
    "10": _AiSpec("BATCH/LOT", numeric=False, length=20, fixed=False, kind="text"),
    # §3 AIs (11), (13), (15), (17): N6 YYMMDD; the syntax dictionary allows DD = 00.
    "11": _AiSpec("PROD DATE", numeric=True, length=6, fixed=True, kind="date"),
    "13": _AiSpec("PACK DATE", numeric=True, length=6, fixed=True, kind="date"),
    "15": _AiSpec("BEST BEFORE", numeric=True, length=6, fixed=True, kind="date"),
    "17": _AiSpec("USE BY", numeric=True, length=6, fixed=True, kind="date"),
    # §3 AI (21): X..20.
    "21": _AiSpec("SERIAL", numeric=False, length=20, fixed=False, kind="text"),
}
# §3 AI (310n): NET WEIGHT (kg), N6; n = number of implied decimals, 0-5 in the syntax dictionary.
for _n in range(6):
    _AIS[f"310{_n}"] = _AiSpec("NET WEIGHT (kg)", True, 6, fixed=True, kind="weight")
# §3 AI (392n): PRICE (single monetary area), N..15; n = implied decimals, 0-9.
for _n in range(10):
    _AIS[f"392{_n}"] = _AiSpec("PRICE", True, 15, fixed=False, kind="price")
del _n

# Four-digit AI families among the supported AIs, keyed by their first two digits.
_FOUR_DIGIT_PREFIXES: Final = frozenset({"31", "39"})


@dataclass(frozen=True, slots=True)
class Gs1Label:
    """A successfully parsed GS1 element string.

    ``elements`` holds every (AI, value) pair in scan order, values exactly as transmitted
    (an exact repeat of an AI with the same value is kept once). The other fields are
    decoded conveniences; ``None`` when the AI is absent.
    """

    raw: bytes
    symbology: str | None
    elements: tuple[tuple[str, str], ...]
    gtin: str | None = None
    batch: str | None = None
    production_date: date | None = None
    pack_date: date | None = None
    best_before: date | None = None
    use_by: date | None = None
    serial: str | None = None
    net_weight_kg: Decimal | None = None
    price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Gs1Rejection:
    """A read that is not an acceptable GS1 element string.

    ``reason`` is one of :data:`REASONS` (machine code, stable); ``detail`` is a sentence for
    the operator screen naming the AI and/or 1-based character position.
    """

    raw: bytes
    reason: str
    detail: str


class _Reject(Exception):
    """Raised inside the parser; converted to a Gs1Rejection at the top level."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason: Reason = reason
        self.detail = detail


def gtin_check_digit(digits: str) -> int:
    """Return the GS1 mod-10 check digit for ``digits`` (the data digits, without the check digit).

    Works for GTIN-8/12/13/14, SSCC, GLN and every other GS1 key using the standard algorithm:
    from the rightmost data digit moving left, weights 3, 1, 3, 1, ...; the check digit is
    ``(10 - sum % 10) % 10`` (GS1 General Specifications §7.9.1).

    Raises ``ValueError`` if ``digits`` is empty or contains anything but ASCII digits 0-9.
    """
    if not digits or any(c not in _DIGITS for c in digits):
        raise ValueError(f"check digit input must be ASCII digits, got {digits!r}")
    total = sum((3, 1)[i % 2] * (ord(c) - 48) for i, c in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def encode_element_string(
    elements: Sequence[tuple[str, str]],
    *,
    separator: str = GS,
    symbology: str = "]C1",
) -> str:
    """Build a transmitted GS1 element string from ``(AI, value)`` pairs, in order.

    The ``symbology`` identifier (``"]C1"`` by default; ``""`` for none) is prepended and
    ``separator`` (GS by default, i.e. FNC1 as transmitted) is inserted after every element
    whose AI does not have a predefined length, unless it is the last element
    (GS1 General Specifications §7.8.5). Values are not validated, so simulators and tests can
    also build deliberately bad labels. Raises ``ValueError`` if an AI is not 2-4 ASCII digits.
    """
    parts = [symbology]
    last = len(elements) - 1
    for i, (ai, value) in enumerate(elements):
        if not 2 <= len(ai) <= 4 or any(c not in _DIGITS for c in ai):
            raise ValueError(f"application identifier must be 2-4 digits, got {ai!r}")
        parts.append(ai)
        parts.append(value)
        if i < last and ai[:2] not in _PREDEFINED_LENGTH_PREFIXES:
            parts.append(separator)
    return "".join(parts)


def parse_gs1(
    raw: bytes | str,
    *,
    today: date,
    separators: Sequence[str] = (),
) -> Gs1Label | Gs1Rejection:
    """Parse one scanner read into a :class:`Gs1Label`, or explain why not; never raises.

    ``raw`` is the read as delivered (bytes must be UTF-8, and in practice are ASCII).
    Trailing whitespace/CR/LF is trimmed; an optional symbology identifier (``]C1``, ``]e0``,
    ``]d2``, ``]Q3``) and a leading FNC1/GS are skipped. ASCII GS always separates elements;
    ``separators`` adds substitutes some scanners send instead (e.g. ``"|"``, ``"<GS>"``,
    ``"{GS}"``, or ``"%"`` for GS1 QR, GenSpecs §7.8.5). Substitutes are only looked for where
    a variable-length value may end or between elements, so a substitute made of characters
    that can occur in batch/serial values (``%``, ``<GS>``) cuts such a value short -- configure
    only what the scanner really sends.

    ``today`` anchors the two-digit-year century window (GS1 General Specifications §7.12).
    """
    try:
        raw_bytes = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    except Exception:  # noqa: BLE001 - defensive: parse_gs1 must never raise
        raw_bytes = b""
    try:
        return _parse(raw, raw_bytes, today, separators)
    except _Reject as rej:
        return Gs1Rejection(raw=raw_bytes, reason=rej.reason, detail=rej.detail)
    except Exception as exc:  # noqa: BLE001 - defensive: parse_gs1 must never raise
        return Gs1Rejection(
            raw=raw_bytes,
            reason="internal_error",
            detail=f"label could not be parsed (internal error {type(exc).__name__})",
        )


def salvage_serial(raw: bytes, *, separators: Sequence[str] = ()) -> str | None:
    """The serial (AI 21) of a read that :func:`parse_gs1` rejected, where the read's
    structure still shows it (a wrong GTIN check digit, an impossible date): that label was
    read, only not valid, so its number must not be reported missing. None when the
    elements cannot be told apart up to AI 21. Never raises."""
    try:
        text = _decode(raw).rstrip(_TRAILING_WHITESPACE)
        pos = 3 if text.startswith("]") else 0
        cur = _Cursor(text, tuple(sorted({GS, *(s for s in separators if s)}, key=len)))
        cur.has_separator = True  # only the elements' boundaries matter here
        pos = cur.skip_seps(pos)
        while pos < len(text):
            ai, spec, vstart = _read_ai(cur, pos)
            value, pos = _read_value(cur, ai, spec, vstart)
            if ai == "21":
                return value
            pos = cur.skip_seps(pos)
    except Exception:  # noqa: BLE001 - a read this broken has no serial to salvage
        return None
    return None


# --------------------------------------------------------------------------------------------
# implementation


def _show(ch: str) -> str:
    """Render one character for an operator message."""
    code = ord(ch)
    if code == 0x1D:
        return "GS (0x1D)"
    if code < 0x20 or code == 0x7F:
        return f"control character 0x{code:02X}"
    if code > 0x7E:
        return f"U+{code:04X}"
    return repr(ch)


def _excerpt(text: str, limit: int = 24) -> str:
    """Short printable excerpt of ``text`` for operator messages."""
    cut = text[:limit]
    return repr(cut) + ("..." if len(text) > limit else "")


class _Cursor:
    """The text being parsed plus the separator set; positions are 0-based internally."""

    __slots__ = ("has_separator", "seps", "text")

    def __init__(self, text: str, seps: tuple[str, ...]) -> None:
        self.text = text
        self.seps = seps
        self.has_separator = False

    def sep_at(self, pos: int) -> int:
        """Length of the separator starting at ``pos`` (0 if none)."""
        for sep in self.seps:  # longest first, so "<GS>" wins over "<"
            if self.text.startswith(sep, pos):
                return len(sep)
        return 0

    def skip_seps(self, pos: int) -> int:
        """Skip any run of separators starting at ``pos``."""
        while pos < len(self.text):
            n = self.sep_at(pos)
            if n == 0:
                break
            pos += n
        return pos

    def find_sep(self, pos: int) -> int:
        """Position of the first separator at or after ``pos``, or ``len(text)``."""
        best = len(self.text)
        for sep in self.seps:
            i = self.text.find(sep, pos, best)
            if i != -1 and i < best:
                best = i
        return best


def _decode(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Reject(
                "not_text",
                f"label data is not text: byte 0x{raw[exc.start]:02X} at byte {exc.start + 1} "
                "is not valid UTF-8",
            ) from None
    return raw


def _parse(raw: bytes | str, raw_bytes: bytes, today: date, separators: Sequence[str]) -> Gs1Label:
    text = _decode(raw).rstrip(_TRAILING_WHITESPACE)

    seps = tuple(sorted({GS, *(s for s in separators if s)}, key=len, reverse=True))
    allowed_controls = {c for s in seps for c in s if ord(c) < 0x20 or ord(c) == 0x7F}
    for i, ch in enumerate(text):
        code = ord(ch)
        if code > 0x7F:
            raise _Reject(
                "non_ascii", f"character {_show(ch)} at position {i + 1} is not plain ASCII"
            )
        if (code < 0x20 or code == 0x7F) and ch not in allowed_controls:
            raise _Reject(
                "control_character",
                f"{_show(ch)} at position {i + 1} is not allowed in GS1 data",
            )

    symbology: str | None = None
    pos = 0
    if text.startswith("]"):
        prefix = text[:3]
        if prefix not in SYMBOLOGIES:
            raise _Reject(
                "unsupported_symbology",
                f"symbology identifier {prefix!r} is not a supported GS1 symbology "
                "(expected ]C1, ]e0, ]d2 or ]Q3)",
            )
        symbology = prefix
        pos = 3

    cur = _Cursor(text, seps)
    # A leading FNC1 (transmitted as GS by scanners without symbology identifiers) is skipped.
    pos = cur.skip_seps(pos)
    if pos >= len(text):
        raise _Reject("empty", "no GS1 data in the scan")
    # Only separators inside the data count as evidence that the scanner transmits FNC1.
    cur.has_separator = any(s in text[pos:] for s in seps)

    elements: list[tuple[str, str]] = []
    seen: dict[str, tuple[str, str]] = {}  # family key -> (AI, value)
    while pos < len(text):
        ai, spec, vstart = _read_ai(cur, pos)
        value, pos = _read_value(cur, ai, spec, vstart)
        _validate(ai, spec, value, vstart, today)
        family = ai[:3] if len(ai) == 4 else ai
        prior = seen.get(family)
        if prior is not None:
            if prior != (ai, value):
                raise _Reject(
                    "duplicate_ai",
                    f"AI ({ai}) {spec.title} at position {vstart - len(ai) + 1} conflicts with "
                    f"the earlier ({prior[0]}): {_excerpt(value)} vs {_excerpt(prior[1])}",
                )
        else:
            seen[family] = (ai, value)
            elements.append((ai, value))
        pos = cur.skip_seps(pos)

    return _build_label(raw_bytes, symbology, tuple(elements), today)


def _read_ai(cur: _Cursor, pos: int) -> tuple[str, _AiSpec, int]:
    """Identify the AI at ``pos``; return it, its spec and where its value starts."""
    text = cur.text
    head = text[pos : pos + 2]
    if not head or head[0] not in _DIGITS or (len(head) == 2 and head[1] not in _DIGITS):
        bad = head[0] if head[0] not in _DIGITS else head[1]
        at = pos + 1 if head[0] not in _DIGITS else pos + 2
        raise _Reject(
            "trailing_garbage",
            f"unexpected {_show(bad)} at position {at} where an application identifier "
            f"should start ({_excerpt(text[pos:])})",
        )
    if len(head) < 2:
        raise _Reject(
            "truncated",
            f"data ends at position {pos + 1} in the middle of an application identifier",
        )
    if head in _AIS:
        return head, _AIS[head], pos + 2
    if head in _FOUR_DIGIT_PREFIXES:
        ai = text[pos : pos + 4]
        if ai in _AIS:
            return ai, _AIS[ai], pos + 4
        if len(ai) < 4 and all(c in _DIGITS for c in ai):
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
    while name and name[-1] not in _DIGITS:
        name = name[:-1]
    return name


def _read_value(cur: _Cursor, ai: str, spec: _AiSpec, vstart: int) -> tuple[str, int]:
    """Cut the value of ``ai`` starting at ``vstart``; return it and the position after it."""
    text = cur.text
    where = f"AI ({ai}) {spec.title}"
    if spec.fixed:
        value = text[vstart : vstart + spec.length]
        # A GS (or a substitute that cannot be data) inside a fixed field means it was cut short.
        cut = cur.find_sep(vstart)
        sep = text[cut : cut + cur.sep_at(cut)]
        if cut < vstart + len(value) and any(c not in _DIGITS for c in sep):
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
    _check_chars(ai, spec, value, vstart)
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


def _check_chars(ai: str, spec: _AiSpec, value: str, vstart: int) -> None:
    where = f"AI ({ai}) {spec.title}"
    for i, ch in enumerate(value):
        if spec.numeric and ch not in _DIGITS:
            raise _Reject(
                "bad_numeric",
                f"{where} must be digits but has {_show(ch)} at position {vstart + i + 1}",
            )
        if ch not in _CSET82:
            hint = " (a separator the scanner sends but that is not configured?)"
            raise _Reject(
                "bad_character",
                f"{where} has {_show(ch)} at position {vstart + i + 1}, which is not allowed "
                "in GS1 data" + (hint if ch in "|{}[]^~#$@\\` \x1c\x1e" else ""),
            )


def _validate(ai: str, spec: _AiSpec, value: str, vstart: int, today: date) -> None:
    """Check the content rules of a value already cut to length."""
    if spec.fixed:
        _check_chars(ai, spec, value, vstart)
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


def _decode_date(ai: str, spec: _AiSpec, value: str, today: date) -> date:
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


def _build_label(
    raw: bytes, symbology: str | None, elements: tuple[tuple[str, str], ...], today: date
) -> Gs1Label:
    values = dict(elements)
    dates: dict[str, date] = {
        ai: _decode_date(ai, _AIS[ai], values[ai], today)
        for ai in ("11", "13", "15", "17")
        if ai in values
    }
    weight = price = None
    for ai, value in elements:
        if _AIS[ai].kind == "weight":
            weight = _implied_decimal(value, int(ai[3]))
        elif _AIS[ai].kind == "price":
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
