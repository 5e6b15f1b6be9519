"""JSON or CSV: ``?format=csv|json`` first, else the ``Accept`` header (RFC 9110 §12.5.1).

JSON is the default: no ``Accept``, ``*/*``, or equal preference. ``text/csv`` is chosen
only when the client prefers it (a higher ``q``, or it is the only one it accepts).
"""

from __future__ import annotations

from typing import Literal

from central.api.problems import BadRequest

Format = Literal["json", "csv"]
FORMATS = ("json", "csv")


def _quality(accept: str, media: str) -> float:
    """The ``q`` the Accept header gives ``media`` (0 when it is not accepted)."""
    kind = media.split("/", 1)[0]
    best, best_rank = 0.0, -1
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        name = parts[0].lower()
        rank = 2 if name == media else 1 if name == f"{kind}/*" else 0 if name == "*/*" else -1
        if rank < 0 or rank < best_rank:
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if rank > best_rank or q > best:
            best, best_rank = q, rank
    return best


def choose(format_param: str | None, accept: str | None) -> Format:
    """The format of the answer (a bad ``format`` is a 400)."""
    if format_param is not None:
        if format_param not in FORMATS:
            raise BadRequest(f"format must be json or csv, not {format_param[:20]!r}")
        return "csv" if format_param == "csv" else "json"
    if not accept:
        return "json"
    return "csv" if _quality(accept, "text/csv") > _quality(accept, "application/json") else "json"
