"""How the dashboard writes a figure: one function per kind, shared by the pages and their
tests (a figure on a page is compared with the API's JSON written the same way)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from urllib.parse import quote

DASH = "–"
"""Shown for a figure that does not exist (no packs, catch weight, unknown)."""


def number(value: float | Decimal | int | None, places: int = 1) -> str:
    """A measured figure with ``places`` decimals; :data:`DASH` for None."""
    if value is None:
        return DASH
    return f"{float(value):,.{places}f}"


def count(value: int | None) -> str:
    """A count with thousands separators; :data:`DASH` for None."""
    return DASH if value is None else f"{value:,}"


def when(value: datetime | date | None) -> str:
    """A UTC time to the second (a date as itself); :data:`DASH` for None."""
    if value is None:
        return DASH
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.isoformat()


def duration(seconds: float | None) -> str:
    """Seconds as the largest two units (``1 h 05 min``, ``3 min 20 s``, ``12 s``)."""
    if seconds is None:
        return DASH
    whole = round(seconds)
    sign = "-" if whole < 0 else ""
    whole = abs(whole)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days} d {hours:02d} h"
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    if minutes:
        return f"{sign}{minutes} min {secs:02d} s"
    return f"{sign}{secs} s"


def age(seconds: float | None) -> str:
    """How long since a gateway's last contact; a negative age (the gateway or the warehouse
    stamps with a clock ahead of the server's) says so in words, never as a negative time."""
    if seconds is not None and round(seconds) < 0:
        return f"clock ahead by {duration(-seconds)}"
    return duration(seconds)


def segment(value: str) -> str:
    """``value`` as one URL path segment (a ``/`` in a run number stays inside it)."""
    return quote(value, safe="")


def verdict(value: str | None) -> str:
    """The ℮ verdict as shown: PASS, FAIL or :data:`DASH` (no batch closed)."""
    return DASH if value is None else value.upper()


__all__ = ["DASH", "age", "count", "duration", "number", "segment", "verdict", "when"]
