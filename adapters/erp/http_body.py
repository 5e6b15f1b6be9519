"""Reading the ERP's answer body: declared JSON, bounded in size while it streams, strict
JSON (no NaN), and an operator-readable description of whatever else came (a login page).

See the "What the gateway does with everything else" list in :mod:`adapters.erp.http_source`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final, NoReturn

import httpx

from gateway.core.errors import ErpDataError

# How much of a non-JSON body is read to describe it in the error (it is never parsed).
SNIFF_BYTES: Final = 2048

_HTML_LOGIN_HINTS: Final = (b"login", b"log in", b"sign in", b"signin", b"password", b"sso")


@dataclass(slots=True)
class HttpErpStats:
    """Counters for diagnostics and tests."""

    requests: int = 0
    """GET requests sent (each page and each retry counts)."""
    retries: int = 0
    """Retries after a transient failure."""
    last_body_bytes: int = 0
    """Body bytes read from the last response (the memory the body could take)."""
    max_body_bytes: int = 0
    """The most body bytes read from any one response."""


def media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_media_type(media_type: str) -> bool:
    # application/json, or a structured syntax suffix such as application/problem+json
    # (RFC 6839 §3.1).
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _reject_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON (RFC 8259 §6); Python's json accepts them by default.
    raise ValueError(f"{name} is not a JSON number")


def describe_non_json(media_type: str, head: bytes) -> str:
    """A short, operator-friendly description of a body that should have been JSON."""
    lowered = head.lower()
    shown = media_type or "(none)"
    if media_type in ("text/html", "application/xhtml+xml") or lowered.lstrip().startswith(
        (b"<!doctype html", b"<html", b"<")
    ):
        title = re.search(rb"<title[^>]*>(.*?)</title>", head, re.IGNORECASE | re.DOTALL)
        titled = ""
        if title:
            text = title.group(1).decode("utf-8", "replace").strip()[:80]
            titled = f", title {text!r}"
        what = (
            "an HTML login page"
            if any(hint in lowered for hint in _HTML_LOGIN_HINTS)
            else "an HTML page"
        )
        return f"not JSON: looks like {what} (Content-Type {shown}{titled})"
    return f"not JSON: Content-Type is {shown}"


async def read_json_body(response: httpx.Response, stats: HttpErpStats, limit: int) -> object:
    """The decoded JSON body of ``response``, at most ``limit`` bytes; else ErpDataError."""
    media_type = media_type_of(response.headers.get("content-type"))
    if not is_json_media_type(media_type):
        head = await read_bounded(response, stats, SNIFF_BYTES, truncate=True)
        raise ErpDataError(describe_non_json(media_type, head))
    declared = response.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.strip().isdigit():
        size = int(declared)
        if size > limit:
            stats.last_body_bytes = 0
            raise ErpDataError(
                f"ERP response of {size} bytes exceeds max_response_bytes {limit}; not read"
            )
    body = await read_bounded(response, stats, limit, truncate=False)
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ErpDataError(f"not JSON: the body is not UTF-8 text ({exc.reason})") from exc
    except RecursionError as exc:
        # json.loads recurses per nesting level: "[[[[..." a few hundred kB long is
        # enough to exhaust the stack, and must not crash the poller.
        raise ErpDataError("ERP body is JSON nested too deeply to be a run list") from exc
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        hint = " (truncated?)" if "Expecting" in str(exc) or "Unterminated" in str(exc) else ""
        if body.lstrip().startswith(b"<"):
            raise ErpDataError(describe_non_json("text/html", body[:SNIFF_BYTES])) from exc
        raise ErpDataError(f"ERP body is not valid JSON{hint}: {exc} ({len(body)} bytes)") from exc


async def read_bounded(
    response: httpx.Response, stats: HttpErpStats, limit: int, *, truncate: bool
) -> bytes:
    """Read at most ``limit`` decoded bytes; past it, stop (``truncate``) or refuse.

    Counting decoded bytes also bounds a compressed body that inflates (a gzip bomb).
    """
    chunks: list[bytes] = []
    count = 0
    try:
        async for chunk in response.aiter_bytes():
            count += len(chunk)
            stats.last_body_bytes = count
            stats.max_body_bytes = max(stats.max_body_bytes, count)
            if count > limit:
                if truncate:
                    chunks.append(chunk[: len(chunk) - (count - limit)])
                    break
                raise ErpDataError(
                    f"ERP response exceeds max_response_bytes {limit}; "
                    f"stopped reading after {count} bytes"
                )
            chunks.append(chunk)
    finally:
        # Leaving the stream early closes the connection instead of draining it.
        stats.last_body_bytes = count
    return b"".join(chunks)
