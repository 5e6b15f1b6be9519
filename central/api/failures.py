"""Errors as answers: never a traceback, always JSON ``{"error": ..., "reason": ...}``.

``400`` a query parameter that cannot be answered (FastAPI's own validation errors too,
which it would answer 422: a bad query string is a bad request); ``404`` nothing matches
(:class:`~central.errors.NotFound`); ``409`` a run number on more than one gateway and no
``gateway`` given (:class:`~central.errors.Ambiguous`); ``503`` with ``Retry-After`` when the
warehouse cannot be reached (:class:`~central.errors.WarehouseReadError`); ``500`` anything
else, logged by the server with its traceback and answered without it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from central.api.problems import BadRequest
from central.api.settings import ApiSettings
from central.errors import Ambiguous, CentralError, NotFound, WarehouseReadError

logger = logging.getLogger(__name__)


def problem(
    status: int, error: str, reason: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON refusal."""
    return JSONResponse(
        {"error": error, "reason": reason},
        status_code=status,
        headers={"cache-control": "no-store", **(headers or {})},
    )


def _validation_reason(exc: RequestValidationError) -> str:
    reasons = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "query")
        reasons.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(reasons) or "invalid request"


def install_handlers(app: FastAPI, settings: ApiSettings) -> None:
    """Map every error to its answer."""
    retry = {"retry-after": str(settings.retry_after_s)}

    async def invalid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem(400, "bad_request", _validation_reason(exc))

    async def central(request: Request, exc: Exception) -> Response:
        if isinstance(exc, BadRequest):
            return problem(400, "bad_request", str(exc))
        if isinstance(exc, NotFound):
            return problem(404, "not_found", str(exc))
        if isinstance(exc, Ambiguous):
            return problem(409, "ambiguous", str(exc))
        if isinstance(exc, WarehouseReadError):
            logger.warning("%s: warehouse unavailable: %s", ascii(request.url.path[:200]), exc)
            return problem(503, "unavailable", "warehouse unavailable", retry)
        logger.error("%s: %s", ascii(request.url.path[:200]), exc)
        return problem(500, "internal_error", "the request failed")

    async def http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        reason = str(exc.detail) if exc.status_code != 405 else "only GET is served"
        headers: dict[str, Any] = dict(exc.headers or {})
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return problem(exc.status_code, error, reason, headers)

    async def unexpected(_: Request, exc: Exception) -> Response:
        # Starlette raises it again once this answer is sent: the server logs it with its
        # traceback (uvicorn's "Exception in ASGI application"), the client never sees it.
        del exc
        return problem(500, "internal_error", "the request failed")

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(CentralError, central)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, unexpected)
