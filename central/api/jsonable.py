"""The API's JSON: row dataclasses as objects, times as ISO 8601 UTC, decimals as text.

- ``datetime`` → ``2026-06-15T15:06:40.000000Z`` (UTC, microseconds: the warehouse's own
  precision), ``date`` → ``2026-06-15``;
- ``Decimal`` (the edge's exact decimal figures: ℮ limits, nominal weights) → a JSON string
  holding the exact decimal text, so nothing is rounded through a binary float;
- ``float`` → a JSON number (Python's shortest repr: the same double on every reader);
  NaN and infinities (never expected) → null, since JSON has no such numbers;
- tuples, lists and sets → arrays; enums → their value; dataclasses → objects.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` (a naive datetime is taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def dumps(value: Any) -> bytes:
    """The response body for ``value``."""
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":")).encode()
