"""The GS1 syntax the parser checks against: the supported AIs, the character sets, the
rejection reasons and the cursor over one scanner read (pure: no I/O, no clock reads).

The AI table and the rules for each field are in :mod:`gateway.core.codecs.gs1`'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final, Literal, get_args

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

DIGITS: Final = frozenset("0123456789")

# GS1 AI encodable character set 82 (GS1 General Specifications §7.11): digits, upper and lower
# case letters and ! " % & ' ( ) * + , - . / : ; < = > ? _  -- no space, no # $ @ [ \ ] ^ ` { | } ~.
CSET82: Final = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!\"%&'()*+,-./:;<=>?_"
)

# GS1 General Specifications §7.8.5 (figure "Element strings with predefined length using GS1
# Application Identifiers"): element strings whose AI starts with these two digits have a
# predefined length and need no FNC1 separator after them. Every other AI is variable length.
PREDEFINED_LENGTH_PREFIXES: Final = frozenset(
    {"00", "01", "02", "03", "04", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20"}
    | {"31", "32", "33", "34", "35", "36", "41"}
)


@dataclass(frozen=True, slots=True)
class AiSpec:
    """Format of one supported AI's data field (GS1 Barcode Syntax Dictionary notation)."""

    title: str
    numeric: bool  # N (digits) vs X (character set 82)
    length: int  # exact length if fixed, otherwise maximum
    fixed: bool
    kind: Literal["gtin", "date", "text", "weight", "price"]


AIS: Final[dict[str, AiSpec]] = {
    # §3 AI (01): N14 with mod-10 check digit (§7.9.1).
    "01": AiSpec("GTIN", numeric=True, length=14, fixed=True, kind="gtin"),
    # §3 AI (10): X..20.
    "10": AiSpec("BATCH/LOT", numeric=False, length=20, fixed=False, kind="text"),
    # §3 AIs (11), (13), (15), (17): N6 YYMMDD; the syntax dictionary allows DD = 00.
    "11": AiSpec("PROD DATE", numeric=True, length=6, fixed=True, kind="date"),
    "13": AiSpec("PACK DATE", numeric=True, length=6, fixed=True, kind="date"),
    "15": AiSpec("BEST BEFORE", numeric=True, length=6, fixed=True, kind="date"),
    "17": AiSpec("USE BY", numeric=True, length=6, fixed=True, kind="date"),
    # §3 AI (21): X..20.
    "21": AiSpec("SERIAL", numeric=False, length=20, fixed=False, kind="text"),
}
# §3 AI (310n): NET WEIGHT (kg), N6; n = number of implied decimals, 0-5 in the syntax dictionary.
for _n in range(6):
    AIS[f"310{_n}"] = AiSpec("NET WEIGHT (kg)", True, 6, fixed=True, kind="weight")
# §3 AI (392n): PRICE (single monetary area), N..15; n = implied decimals, 0-9.
for _n in range(10):
    AIS[f"392{_n}"] = AiSpec("PRICE", True, 15, fixed=False, kind="price")
del _n

# Four-digit AI families among the supported AIs, keyed by their first two digits.
FOUR_DIGIT_PREFIXES: Final = frozenset({"31", "39"})


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


def gtin_check_digit(digits: str) -> int:
    """Return the GS1 mod-10 check digit for ``digits`` (the data digits, without the check digit).

    Works for GTIN-8/12/13/14, SSCC, GLN and every other GS1 key using the standard algorithm:
    from the rightmost data digit moving left, weights 3, 1, 3, 1, ...; the check digit is
    ``(10 - sum % 10) % 10`` (GS1 General Specifications §7.9.1).

    Raises ``ValueError`` if ``digits`` is empty or contains anything but ASCII digits 0-9.
    """
    if not digits or any(c not in DIGITS for c in digits):
        raise ValueError(f"check digit input must be ASCII digits, got {digits!r}")
    total = sum((3, 1)[i % 2] * (ord(c) - 48) for i, c in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


class _Reject(Exception):
    """Raised inside the parser; converted to a Gs1Rejection at the top level."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason: Reason = reason
        self.detail = detail


def show_char(ch: str) -> str:
    """Render one character for an operator message."""
    code = ord(ch)
    if code == 0x1D:
        return "GS (0x1D)"
    if code < 0x20 or code == 0x7F:
        return f"control character 0x{code:02X}"
    if code > 0x7E:
        return f"U+{code:04X}"
    return repr(ch)


def excerpt(text: str, limit: int = 24) -> str:
    """Short printable excerpt of ``text`` for operator messages."""
    cut = text[:limit]
    return repr(cut) + ("..." if len(text) > limit else "")


class Cursor:
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
