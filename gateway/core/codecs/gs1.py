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

from collections.abc import Sequence
from datetime import date
from typing import Final

from gateway.core.codecs.gs1_fields import build_label, read_ai, read_value, validate
from gateway.core.codecs.gs1_syntax import (
    DIGITS,
    PREDEFINED_LENGTH_PREFIXES,
    REASONS,
    Cursor,
    Gs1Label,
    Gs1Rejection,
    _Reject,
    excerpt,
    gtin_check_digit,
    show_char,
)

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

# Scanner read terminators trimmed from the end of the data.
_TRAILING_WHITESPACE: Final = " \t\r\n\v\f"


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
        if not 2 <= len(ai) <= 4 or any(c not in DIGITS for c in ai):
            raise ValueError(f"application identifier must be 2-4 digits, got {ai!r}")
        parts.append(ai)
        parts.append(value)
        if i < last and ai[:2] not in PREDEFINED_LENGTH_PREFIXES:
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
        cur = Cursor(text, tuple(sorted({GS, *(s for s in separators if s)}, key=len)))
        cur.has_separator = True  # only the elements' boundaries matter here
        pos = cur.skip_seps(pos)
        while pos < len(text):
            ai, spec, vstart = read_ai(cur, pos)
            value, pos = read_value(cur, ai, spec, vstart)
            if ai == "21":
                return value
            pos = cur.skip_seps(pos)
    except Exception:  # noqa: BLE001 - a read this broken has no serial to salvage
        return None
    return None


# --------------------------------------------------------------------------------------------
# implementation


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
                "non_ascii", f"character {show_char(ch)} at position {i + 1} is not plain ASCII"
            )
        if (code < 0x20 or code == 0x7F) and ch not in allowed_controls:
            raise _Reject(
                "control_character",
                f"{show_char(ch)} at position {i + 1} is not allowed in GS1 data",
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

    cur = Cursor(text, seps)
    # A leading FNC1 (transmitted as GS by scanners without symbology identifiers) is skipped.
    pos = cur.skip_seps(pos)
    if pos >= len(text):
        raise _Reject("empty", "no GS1 data in the scan")
    # Only separators inside the data count as evidence that the scanner transmits FNC1.
    cur.has_separator = any(s in text[pos:] for s in seps)

    elements: list[tuple[str, str]] = []
    seen: dict[str, tuple[str, str]] = {}  # family key -> (AI, value)
    while pos < len(text):
        ai, spec, vstart = read_ai(cur, pos)
        value, pos = read_value(cur, ai, spec, vstart)
        validate(ai, spec, value, vstart, today)
        family = ai[:3] if len(ai) == 4 else ai
        prior = seen.get(family)
        if prior is not None:
            if prior != (ai, value):
                raise _Reject(
                    "duplicate_ai",
                    f"AI ({ai}) {spec.title} at position {vstart - len(ai) + 1} conflicts with "
                    f"the earlier ({prior[0]}): {excerpt(value)} vs {excerpt(prior[1])}",
                )
        else:
            seen[family] = (ai, value)
            elements.append((ai, value))
        pos = cur.skip_seps(pos)

    return build_label(raw_bytes, symbology, tuple(elements), today)
