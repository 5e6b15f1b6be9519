"""What a record of each stream may look like on the wire, derived from the gateway's schema.

The gateway's store is the source of truth: a record is the row of its STRICT table
(:data:`gateway.store.schema.RECORD_TABLES` names the columns the outbox sends, in order; the
migrations in :data:`gateway.store.schema.MIGRATIONS` give each column's declared type, ``NOT NULL``
and default). The outbox sends ``{column: value}`` for those columns, with SQLite's values as
JSON (``sync/outbox.py``): INTEGER → a JSON integer, REAL → a number, TEXT → a string, BLOB
(a scanner's raw read) → lower-case hex, NULL → ``null``.

:func:`validate_record` checks a received record against that with **exact** types and no
coercion: an INTEGER is a JSON integer, never ``3.9``, ``"4"`` or ``true``; a REAL is a finite
number, never a boolean or a string; unknown fields are refused; a ``NOT NULL`` column without a
default must be there and not ``null``; numbers stay within what the gateway's column can hold
(64-bit integers) and strings within :data:`MAX_TEXT_CHARS`. A column the gateway may not have
yet (added by a later migration, nullable or with a default) may be missing: an older gateway
still syncs.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import SyncError
from gateway.store.schema import MIGRATIONS, RECORD_TABLES

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
MAX_TEXT_CHARS = 64 * 1024
"""The longest string (or hex BLOB) accepted in one field: far above any real value (a label
read, an alert's detail), far below what would strain the warehouse."""
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_MISSING = object()
_NUMERIC = frozenset({"integer", "number"})


@dataclass(frozen=True, slots=True)
class FieldType:
    """One column of a stream as JSON."""

    name: str
    kind: str
    """``integer``, ``number``, ``string`` or ``hex`` (a BLOB)."""
    nullable: bool
    required: bool
    """Must be present: ``NOT NULL`` without a default."""


class SchemaViolation(SyncError, ValueError):
    """A record that does not match its stream's schema."""


_KINDS = {"INTEGER": "integer", "REAL": "number", "TEXT": "string", "BLOB": "hex"}


@functools.cache
def stream_schemas() -> dict[str, dict[str, FieldType]]:
    """stream → field → :class:`FieldType`, for every record stream the outbox sends."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        for migration in MIGRATIONS:
            db.executescript(migration)
        schemas: dict[str, dict[str, FieldType]] = {}
        for spec in RECORD_TABLES.values():
            info = {
                str(row[1]): (str(row[2]).upper(), bool(row[3]), row[4] is not None)
                for row in db.execute(f"PRAGMA table_info({spec.table})")
            }
            fields: dict[str, FieldType] = {}
            for column in spec.columns:
                declared, not_null, has_default = info[column]
                required = not_null and not has_default
                fields[column] = FieldType(
                    column, _KINDS[declared], nullable=not not_null, required=required
                )
            schemas[spec.table] = fields
    return schemas


def json_types() -> dict[str, dict[str, str]]:
    """stream → field → JSON type (``integer``, ``number``, ``string``, ``hex``; ``?`` suffix:
    may be null), for documentation and tests."""
    return {
        stream: {f.name: f.kind + ("?" if f.nullable else "") for f in fields.values()}
        for stream, fields in stream_schemas().items()
    }


def validate_record(stream: str, data: Mapping[str, Any]) -> None:
    """Raise :class:`SchemaViolation` unless ``data`` is a valid record of ``stream``."""
    fields = stream_schemas().get(stream)
    if fields is None:
        raise SchemaViolation(f"unknown stream {stream!r}")
    if not fields.keys() >= data.keys():
        unknown = sorted(k for k in data if k not in fields)
        raise SchemaViolation(f"unknown field(s) {unknown[:5]}")
    for name, field in fields.items():
        value = data.get(name, _MISSING)
        if value is _MISSING:
            if field.required:
                raise SchemaViolation(f"{name} is missing")
            continue
        # The values every record is made of, settled without a call; anything else (null,
        # a wrong type, a hex string, an edge) gets the full check and its message.
        kind, exact = field.kind, type(value)
        if exact is str and kind == "string":
            if len(value) <= MAX_TEXT_CHARS:
                continue
        elif exact is int and kind in _NUMERIC:
            if INT_MIN <= value <= INT_MAX:
                continue
        elif exact is float and kind == "number" and math.isfinite(value):
            continue
        _check(field, value)


def _check(field: FieldType, value: object) -> None:
    if value is None:
        if not field.nullable:
            raise SchemaViolation(f"{field.name} must not be null")
        return
    kind = field.kind
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaViolation(f"{field.name} must be an integer, got {_shown(value)}")
        if not INT_MIN <= value <= INT_MAX:
            raise SchemaViolation(f"{field.name} is outside 64 bits")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaViolation(f"{field.name} must be a number, got {_shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaViolation(f"{field.name} must be finite")
        if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
            raise SchemaViolation(f"{field.name} is outside 64 bits")
    else:
        if not isinstance(value, str):
            raise SchemaViolation(f"{field.name} must be a string, got {_shown(value)}")
        limit = MAX_TEXT_CHARS * (2 if kind == "hex" else 1)
        if len(value) > limit:
            raise SchemaViolation(f"{field.name} is longer than {limit} characters")
        if kind == "hex" and not _HEX.fullmatch(value):
            raise SchemaViolation(f"{field.name} must be lower-case hex bytes")


def _shown(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"
