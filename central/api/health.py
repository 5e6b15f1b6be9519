"""``GET /api/v1/health``: unauthenticated, so it says only whether the warehouse answers.

``200 {"status": "ok"}`` or ``503 {"status": "unavailable"}`` (with ``Retry-After``); never
the database's address, its error text or any figure from it.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from central.errors import WarehouseReadError

logger = logging.getLogger(__name__)


def health_router() -> APIRouter:
    """The health endpoint."""
    router = APIRouter(tags=["health"])

    @router.get(
        "/health",
        summary="Whether the warehouse answers (no authentication)",
        responses={503: {"description": "the warehouse does not answer"}},
    )
    def health(request: Request) -> Response:
        settings = request.app.state.settings
        try:
            reader = request.app.state.reader_factory()
            try:
                reader.ping()
            finally:
                reader.close()
        except WarehouseReadError as exc:
            logger.warning("health: warehouse unavailable: %s", exc)
            return JSONResponse(
                {"status": "unavailable"},
                status_code=503,
                headers={"retry-after": str(settings.retry_after_s), "cache-control": "no-store"},
            )
        return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})

    return router
