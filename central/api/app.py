"""The central team's read-only HTTP API: ``create_app(reader_factory, settings)``.

Every endpoint is a GET under ``/api/v1`` (the list and its docs: docs/warehouse-api.md §2);
OpenAPI at ``/api/v1/openapi.json``. Each request opens a reader through
``reader_factory`` (one connection, read-only), asks it one question and
closes it; the endpoints are synchronous and run in the server's thread pool, so a slow
query never blocks the event loop. The dashboard's pages are mounted at ``/`` behind the
same authentication gate (:mod:`central.api.guard`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from central import dashboard
from central.api.endpoints_queries import query_router
from central.api.endpoints_runs import runs_router
from central.api.failures import install_handlers
from central.api.guard import AuthGate
from central.api.health import health_router
from central.api.settings import ApiSettings
from central.reader import WarehouseReader
from gateway.core.clock import Clock

PREFIX = "/api/v1"
PUBLIC_PATHS = frozenset({f"{PREFIX}/health", f"{PREFIX}/openapi.json"}) | dashboard.PUBLIC_PATHS
"""Reachable without authentication: the health check and the API's description (neither
says anything about the data), and the dashboard's login form and stylesheet."""


def create_app(reader_factory: Callable[[], WarehouseReader], settings: ApiSettings) -> FastAPI:
    """The API (and the dashboard) over the warehouse ``reader_factory`` opens."""
    app = FastAPI(
        title="Lineside warehouse API",
        version="1",
        description="Read-only access to the central warehouse: runs, reports, traceability, "
        "analytics and fleet status. JSON by default; `?format=csv` or `Accept: text/csv` "
        "for CSV. Authenticate with `Authorization: Bearer <token>` or a TLS client "
        "certificate.",
        openapi_url=f"{PREFIX}/openapi.json",
        # No Swagger page: it would load its scripts from a CDN, and the API must work on a
        # plant network without one. The OpenAPI document is enough for any client tool.
        docs_url=None,
        redoc_url=None,
        middleware=[Middleware(AuthGate, settings=settings, public=PUBLIC_PATHS)],
    )
    app.state.reader_factory = reader_factory
    app.state.settings = settings
    install_handlers(app, settings)
    app.include_router(health_router(), prefix=PREFIX)
    app.include_router(runs_router(), prefix=PREFIX)
    app.include_router(query_router(), prefix=PREFIX)
    app.router.routes.extend(_dashboard_routes(reader_factory, settings.clock))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the bearer scheme every endpoint but the health check needs
    (the gate is a middleware, which FastAPI does not see)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        document.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "a read token"}
        }
        document["security"] = [{"bearer": []}]
        for path, operations in document["paths"].items():
            for operation in operations.values():
                # A bad query string is answered 400 (central/api/failures.py), never 422.
                operation.get("responses", {}).pop("422", None)
                if path in PUBLIC_PATHS:
                    operation["security"] = []
        for name in ("HTTPValidationError", "ValidationError"):
            document["components"].get("schemas", {}).pop(name, None)
        app.openapi_schema = document
    return app.openapi_schema


def _dashboard_routes(
    reader_factory: Callable[[], WarehouseReader], clock: Clock
) -> list[BaseRoute]:
    """The dashboard's pages, served at ``/`` after the API's routes (so ``/api/v1/...``
    always reaches the API). The dashboard package provides them:
    ``central.dashboard.routes(reader_factory, clock)``; this is where they join the app."""
    return dashboard.routes(reader_factory, clock)
