"""Keyset paging of the ERP's run endpoint (pure): the ``(Updated, RunNumber)`` position,
reading a page's ``next`` key or deriving it from the last row, refusing a key that does not
move forward, and keeping only the newest occurrence of a run served twice.

The contract is in :mod:`adapters.erp.http_source`'s docstring.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo

from gateway.core.errors import ErpDataError
from gateway.core.runs import ProductionRun, coerce_datetime

# parse_run matches keys on their lower-case letters and digits only ("Updated", "UPDATED").
_KEY_NOISE = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True, slots=True)
class PageKey:
    """A keyset position ``(Updated, RunNumber)``: everything after it is asked for next."""

    updated_since: str
    """``Updated`` as it goes on the wire (the server's own text, sent back verbatim)."""
    after_run: str | None
    """The run number tie-break; None only for the watermark a poll starts from."""
    at: datetime
    """``updated_since`` read as an aware date-time, to check that paging moves forward."""

    def __str__(self) -> str:
        return f"(updated_since={self.updated_since!r}, after_run={self.after_run!r})"


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[object]
    next: PageKey | None
    """The server's ``next`` key, or None: the last page, or (``derive``) unsaid."""
    derive: bool = False
    """The server said nothing about paging: a full page continues after its last row."""


def newest_only(runs: list[ProductionRun]) -> list[ProductionRun]:
    """Keep the last occurrence of each run number: later in keyset order is newer."""
    last = {run.run_number: index for index, run in enumerate(runs)}
    if len(last) == len(runs):
        return runs
    return [run for index, run in enumerate(runs) if last[run.run_number] == index]


def check_forward(key: PageKey | None, following: PageKey, sent_at_instant: set[str]) -> None:
    """Refuse a next key that does not lie after the one just sent."""
    if key is None:
        return
    if following.at < key.at:
        raise ErpDataError(f"ERP paging goes backwards: next {following} after {key}")
    if following.at == key.at and (
        key.after_run is None
        or following.after_run is None
        or following.after_run in sent_at_instant
    ):
        raise ErpDataError(
            f"ERP paging does not move forward: next {following} after {key}; "
            "stopping so the poll cannot loop"
        )


def key_after(row: object, tz: tzinfo) -> PageKey:
    """The key of a page's last row, when the server gave no ``next`` (see module doc)."""
    updated: object = None
    run_number: object = None
    if isinstance(row, Mapping):
        for name, value in row.items():
            normal = _KEY_NOISE.sub("", str(name).lower())
            if normal == "updated":
                updated = value
            elif normal == "runnumber":
                run_number = value
    try:
        return key_of(updated, run_number, tz)
    except ErpDataError as exc:
        raise ErpDataError(
            f"ERP sent a full page without 'next', and its last row gives no key to "
            f"continue from: {exc}"
        ) from None


def key_of(updated: object, run_number: object, tz: tzinfo) -> PageKey:
    if not isinstance(updated, str) or not updated.strip():
        raise ErpDataError(f"updated_since must be an ISO 8601 date-time, not {updated!r}")
    try:
        at = coerce_datetime(updated, tz)
    except (ValueError, TypeError, OverflowError):
        raise ErpDataError(f"updated_since {updated!r} is not an ISO 8601 date-time") from None
    if isinstance(run_number, int) and not isinstance(run_number, bool):
        after_run = str(run_number)
    elif isinstance(run_number, str) and run_number.strip():
        after_run = run_number
    else:
        raise ErpDataError(f"after_run must be a run number, not {run_number!r}")
    return PageKey(updated, after_run, at)


def updated_of(row: Mapping[str, object], tz: tzinfo) -> datetime | None:
    """The readable ``Updated`` of a rejected row, so the watermark moves past it.

    The ErpSource contract: a garbage row is not fetched again on every poll; it comes
    back when the ERP changes it (and bumps its ``Updated``).
    """
    for key, value in row.items():
        if _KEY_NOISE.sub("", str(key).lower()) == "updated":
            try:
                return coerce_datetime(value, tz)
            except (ValueError, TypeError, OverflowError):
                return None
    return None


def page_of(body: object, tz: tzinfo) -> Page:
    if isinstance(body, list):
        return Page(rows=body, next=None)
    if not isinstance(body, dict):
        raise ErpDataError(
            f"ERP response must be an object with 'runs' or a list, not {type(body).__name__}"
        )
    rows = body.get("runs")
    if not isinstance(rows, list):
        keys = ", ".join(sorted(map(str, body))[:10]) or "none"
        raise ErpDataError(
            f"ERP response has no 'runs' list (keys: {keys}; runs is {type(rows).__name__})"
        )
    if "next" not in body:
        next_page = body.get("next_page")
        if next_page is not None:
            raise ErpDataError(
                f"ERP pages by number (next_page {next_page!r}); the gateway needs keyset "
                "paging ('next' with updated_since and after_run), which cannot lose runs"
            )
        return Page(rows=rows, next=None, derive=True)
    following = body["next"]
    if following is None:
        return Page(rows=rows, next=None)
    if not isinstance(following, dict):
        raise ErpDataError(
            f"ERP next must be an object with updated_since and after_run, or null, "
            f"not {type(following).__name__}"
        )
    try:
        key = key_of(following.get("updated_since"), following.get("after_run"), tz)
    except ErpDataError as exc:
        raise ErpDataError(f"ERP next key is unusable: {exc}") from None
    return Page(rows=rows, next=key)
