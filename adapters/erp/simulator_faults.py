"""The kinds of garbage the ERP simulator can serve instead of a page of runs
(docs/reference/reliability.md §7 row 15), and how each is answered."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from adapters.erp.simulated_day import bad_rows
from adapters.erp.simulator_asgi import Send, respond, respond_json

HUGE_BYTES: Final = 10 * 1024 * 1024
CHUNK_BYTES: Final = 64 * 1024
# A dripping response gives up by itself after this long, so a stuck client cannot keep
# the simulator from shutting down.
DRIP_MAX_S: Final = 30.0

LOGIN_PAGE: Final = b"""<!DOCTYPE html>
<html><head><title>ERP - Sign in</title></head>
<body><form method="post" action="/login">
<label>User <input name="user"></label>
<label>Password <input type="password" name="password"></label>
<button>Log in</button></form></body></html>
"""


class ErpFault(StrEnum):
    """Kinds of garbage and failure the simulator can serve instead of runs."""

    DOWN = "down"
    """503 Service Unavailable (the ERP is offline)."""
    HTML_LOGIN = "html_login"
    """200 with an HTML login page (a proxy or SSO in the way)."""
    TRUNCATED = "truncated"
    """200 application/json whose body stops half way (Content-Length matches the cut)."""
    WRONG_TYPES = "wrong_types"
    """200 with the real runs plus rows of wrong types and missing fields."""
    WRONG_SHAPE = "wrong_shape"
    """200 with a JSON object that has no ``runs`` list (schema drift)."""
    HUGE = "huge"
    """200 with a 10 MB body, declared in Content-Length."""
    HUGE_CHUNKED = "huge_chunked"
    """200 with a 10 MB body sent chunked, with no Content-Length."""
    RATE_LIMITED = "rate_limited"
    """429 Too Many Requests with ``Retry-After``."""
    SERVER_ERROR = "server_error"
    """500 Internal Server Error."""
    SLOW_DRIP = "slow_drip"
    """200 application/json, one byte every ``drip_interval_s``, never finishing."""
    REDIRECT_HTTP = "redirect_http"
    """302 to the same path over plain ``http://``."""


PAGE_FAULTS: Final = frozenset({ErpFault.TRUNCATED, ErpFault.WRONG_TYPES})
"""Faults built from the page of runs the request asked for."""


@dataclass(slots=True)
class FaultState:
    fault: ErpFault
    remaining: int | None
    retry_after: str


async def serve_page_fault(fault: ErpFault, page: dict[str, object], send: Send) -> None:
    """A fault built from the page of runs the request asked for."""
    if fault is ErpFault.TRUNCATED:
        full = json.dumps(page).encode()
        await respond(send, 200, full[: len(full) // 2], b"application/json")
    elif fault is ErpFault.WRONG_TYPES:
        runs = page["runs"]
        garbled = {**page, "runs": [*bad_rows(), *(runs if isinstance(runs, list) else [])]}
        await respond_json(send, 200, garbled)
