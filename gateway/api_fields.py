"""The field rules of control requests: what :mod:`gateway.api`'s request models accept.

Every rule raises :class:`ValueError` with the sentence the operator sees, naming the field
(the control socket answers it as ``{"ok": false, "error": ...}``). The rules are the
socket's local access control for *what is accepted* (see gateway/control.py): text bounded
and free of control and format characters (terminal escapes, bidirectional overrides),
numbers that are JSON numbers (``true`` is not one).
"""

from __future__ import annotations

import math
import unicodedata
from typing import Annotated

from pydantic import PlainValidator, ValidationInfo

MAX_OPERATOR_CHARS = 64
MAX_COMMENT_CHARS = 500
MAX_ID_CHARS = 128
MAX_SEQ_ITEMS = 1000
"""Numbers and ranges in one re-queue request."""
MAX_SEQ = 2**63 - 1

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Unicode categories refused in text fields: controls, format characters (bidirectional
overrides, zero-width joiners), surrogates, private use, line and paragraph separators."""


def text(value: object, key: str, max_chars: int, *, required: bool = True) -> str:
    """A text field, stripped: bounded, without control characters; ``""`` when optional
    and absent."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(f"{key} is required")
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text")
    stripped = value.strip()
    if len(stripped) > max_chars:
        raise ValueError(f"{key} is {len(stripped)} characters long; at most {max_chars}")
    for char in stripped:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise ValueError(
                f"{key} contains a control character (U+{ord(char):04X}, e.g. a terminal "
                "escape); refused"
            )
    return stripped


def number(value: object) -> float | None:
    """A JSON number as a float; ``None`` for anything else (``true`` is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        as_float = float(value)
    except OverflowError:
        return None
    return as_float if math.isfinite(as_float) else None


def seq(value: object, key: str) -> int:
    """A stored record's sequence number."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SEQ:
        raise ValueError(f"{key} must be a sequence number (a positive integer)")
    return value


def seq_items(value: object, key: str) -> tuple[int | tuple[int, int], ...]:
    """Sequence numbers and inclusive ranges (``[first, last]``) from a request list."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key} must be a list of sequence numbers or [first, last] ranges")
    if len(value) > MAX_SEQ_ITEMS:
        raise ValueError(f"{key}: at most {MAX_SEQ_ITEMS} numbers or ranges per request")
    items: list[int | tuple[int, int]] = []
    for item in value:
        if isinstance(item, list | tuple) and len(item) == 2:
            first, last = seq(item[0], key), seq(item[1], key)
            if first > last:
                raise ValueError(f"{key}: range {first}-{last} runs backwards")
            items.append((first, last))
        else:
            items.append(seq(item, key))
    return tuple(items)


def positive(value: object, key: str) -> int:
    """A positive integer (a page size)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a positive integer")
    return value


def _name(info: ValidationInfo) -> str:
    return info.field_name or "value"


def _identifier(value: object, info: ValidationInfo) -> str:
    return text(value, _name(info), MAX_ID_CHARS)


def _optional_identifier(value: object, info: ValidationInfo) -> str | None:
    return text(value, _name(info), MAX_ID_CHARS, required=False) or None


def _operator(value: object, info: ValidationInfo) -> str:
    return text(value, _name(info), MAX_OPERATOR_CHARS)


def _optional_operator(value: object, info: ValidationInfo) -> str:
    return text(value, _name(info), MAX_OPERATOR_CHARS, required=False)


def _comment(value: object, info: ValidationInfo) -> str:
    return text(value, _name(info), MAX_COMMENT_CHARS, required=False)


def _reason(value: object, info: ValidationInfo) -> str:
    return text(value, _name(info), MAX_COMMENT_CHARS)


def _minutes(value: object) -> float:
    minutes = number(value)
    if minutes is None or not 1 <= minutes <= 24 * 60:
        raise ValueError("minutes must be a number from 1 to 1440")
    return minutes


def _seq(value: object, info: ValidationInfo) -> int:
    return seq(value, _name(info))


def _after(value: object, info: ValidationInfo) -> int:
    return 0 if value == 0 else seq(value, _name(info))


def _positive(value: object, info: ValidationInfo) -> int:
    return positive(value, _name(info))


def _seq_items(value: object, info: ValidationInfo) -> tuple[int | tuple[int, int], ...]:
    return seq_items(value, _name(info))


Identifier = Annotated[str, PlainValidator(_identifier)]
"""A required identifier: a line, a run number, an alert id, a mode."""
OptionalIdentifier = Annotated[str | None, PlainValidator(_optional_identifier)]
OperatorName = Annotated[str, PlainValidator(_operator)]
"""The name the operator typed (required)."""
OptionalOperatorName = Annotated[str, PlainValidator(_optional_operator)]
Comment = Annotated[str, PlainValidator(_comment)]
"""An optional comment ("" when none)."""
Reason = Annotated[str, PlainValidator(_reason)]
"""A required reason."""
Minutes = Annotated[float, PlainValidator(_minutes)]
Seq = Annotated[int, PlainValidator(_seq)]
After = Annotated[int, PlainValidator(_after)]
"""0 (from the start) or a sequence number."""
PageSize = Annotated[int, PlainValidator(_positive)]
SeqItems = Annotated[tuple[int | tuple[int, int], ...], PlainValidator(_seq_items)]
"""Single sequence numbers and inclusive ``[first, last]`` ranges, in the order given."""
