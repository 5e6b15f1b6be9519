"""The canonical JSON of a record, defined once for both ends of the sync. Pure.

The warehouse stores and hashes each record's ``data`` as canonical JSON: sorted keys, no
whitespace, finite numbers only, non-ASCII characters written as themselves (UTF-8 on the
wire), so equal data always has equal text and one SHA-256 (docs/topics-and-payloads.md,
"Canonical record text").

The gateway writes a batch's ``records`` array in that form (:func:`canonical_json` of the
list of ``{"seq", "data"}`` objects, whose keys sort as ``data`` then ``seq``), so the ingest
can hash and store each record's text as it received it instead of encoding the record again.
:func:`scan_records` finds those texts.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable
from typing import Any

_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
)
"""What ``json.dumps`` with these options builds on every call; made once (every record is
encoded, so this is on the path of every record)."""


def _one_shot_encoder() -> Callable[[Any], str]:
    """``_CANONICAL.encode``, without making a new C encoder on every call.

    ``JSONEncoder.encode`` builds the C encoder (``json.encoder.c_make_encoder``) from its
    options each time, about a quarter of the cost of encoding one record. This builds it
    once with the same options, in the order ``JSONEncoder.iterencode`` passes them, so the
    text is the same byte for byte (tests/unit/test_canonical_json.py). No circular-reference
    check: a payload decoded from JSON cannot refer to itself. Where the C encoder is
    missing (another Python), the encoder's own method.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _CANONICAL.encode
    encode = make(
        None,
        _CANONICAL.default,
        json.encoder.encode_basestring,  # ensure_ascii=False
        None,
        _CANONICAL.key_separator,
        _CANONICAL.item_separator,
        _CANONICAL.sort_keys,
        _CANONICAL.skipkeys,
        _CANONICAL.allow_nan,
    )

    def one_shot(data: Any) -> str:
        return "".join(encode(data, 0))

    return one_shot


canonical_json: Callable[[Any], str] = _one_shot_encoder()
"""The canonical JSON text of a value (``ValueError`` for NaN or an infinity)."""

_ITEM_HEAD = '{"data":'
"""How a record of a canonical ``records`` array starts: its keys sort ``data`` first."""
_ITEM_TAIL = re.compile(r',"seq":(0|[1-9][0-9]{0,18})\}([,\]])')
"""How it ends: its sequence number (at most 19 digits, as many as a BIGINT has), the brace,
and the comma before the next record or the array's end."""

ScanOnce = Callable[[str, int], tuple[Any, int]]
"""A JSON decoder's ``scan_once``: the value at an index and the index after it; raises
``StopIteration`` where no value starts."""


def value_scanner(decoder: json.JSONDecoder) -> ScanOnce:
    """The decoder's scanner (C where there is one), with its own options (a
    ``parse_constant`` that refuses NaN stays in force)."""
    scanner: ScanOnce = json.scanner.make_scanner(decoder)  # type: ignore[arg-type]
    return scanner


def scan_records(
    text: str, start: int, scan: ScanOnce
) -> tuple[list[tuple[int, Any]], list[str], int] | None:
    """The ``(seq, data)`` records of the canonical ``records`` array whose ``[`` is at
    ``start``, each record's ``data`` text as it stands in ``text``, and the index after the
    ``]``.

    ``None`` as soon as the array is not in the gateway's form (an item not
    ``{"data":…,"seq":N}`` exactly, any whitespace, a ``seq`` that is not a plain
    non-negative integer, an empty array): the caller then decodes the whole body as JSON,
    which gives the same value or the same error as ever. Every data text returned is the
    exact span ``scan`` read the record's ``data`` from, so the text always says what the
    decoded record says.
    """
    startswith = text.startswith
    if not startswith("[", start):
        return None
    records: list[tuple[int, Any]] = []
    texts: list[str] = []
    tail = _ITEM_TAIL.match
    head = len(_ITEM_HEAD)
    pos = start + 1
    while True:
        if not startswith(_ITEM_HEAD, pos):
            return None
        begin = pos + head
        try:
            data, end = scan(text, begin)
        except (StopIteration, ValueError):  # not a value here, or a number past its limits
            return None
        found = tail(text, end)
        if found is None:
            return None
        records.append((int(found[1]), data))
        texts.append(text[begin:end])
        pos = found.end()
        if found[2] == "]":
            return records, texts, pos


__all__ = ["ScanOnce", "canonical_json", "scan_records", "value_scanner"]
