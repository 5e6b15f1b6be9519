"""The dashboard's routes, mounted by the API app at ``/`` (central/api/app.py).

Each page opens a reader for the request and closes it after (the reader is synchronous:
Starlette runs these endpoints on its thread pool). A warehouse that cannot be read gives
the "warehouse unavailable" page with HTTP 503; an unknown site, line or run gives 404;
neither shows a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from central.dashboard.login import login, logout
from central.dashboard.pages import Page, fleet_page, line_page, site_page, trace_page
from central.dashboard.render import STYLESHEET, Renderer
from central.dashboard.run_page import run_page
from central.errors import Ambiguous, NotFound, WarehouseReadError
from central.reader import WarehouseReader
from gateway.core.clock import Clock

log = logging.getLogger(__name__)

ReaderFactory = Callable[[], WarehouseReader]
PageBuilder = Callable[[WarehouseReader, Request], Page]

RETRY_AFTER_S = 30
"""Seconds a browser is told to wait before trying an unavailable warehouse again."""


def routes(
    reader_factory: ReaderFactory, clock: Clock, *, refresh_s: int | None = 60
) -> list[BaseRoute]:
    """The dashboard's pages and its stylesheet.

    ``clock`` gives the fleet page's "now" (never read inside the reader); ``refresh_s``
    is the pages' meta refresh interval (None: no refresh).
    """
    renderer = Renderer(refresh_s=refresh_s)
    css = STYLESHEET.read_bytes()

    def now() -> datetime:
        return datetime.fromtimestamp(clock.wall_us() / 1_000_000, UTC)

    def endpoint(build: PageBuilder) -> Callable[[Request], Response]:
        def serve(request: Request) -> Response:
            return _serve(reader_factory, renderer, build, request)

        return serve

    async def login_page(request: Request) -> Response:
        return await login(request, renderer)

    def stylesheet(_request: Request) -> Response:
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    return [
        Route("/", endpoint(lambda r, _q: fleet_page(r, now=now())), name="dash_fleet"),
        Route(
            "/sites/{site}",
            endpoint(lambda r, q: site_page(r, q.path_params["site"])),
            name="dash_site",
        ),
        Route(
            "/sites/{site}/lines/{gateway}/{line}",
            endpoint(
                lambda r, q: line_page(
                    r, q.path_params["site"], q.path_params["gateway"], q.path_params["line"]
                )
            ),
            name="dash_line",
        ),
        Route(
            "/runs/{gateway}/{run:path}",
            endpoint(lambda r, q: run_page(r, q.path_params["gateway"], q.path_params["run"])),
            name="dash_run",
        ),
        Route(
            "/trace",
            endpoint(
                lambda r, q: trace_page(
                    r,
                    batch=q.query_params.get("batch", ""),
                    serial=q.query_params.get("serial", ""),
                )
            ),
            name="dash_trace",
        ),
        Route("/login", login_page, methods=["GET", "POST"], name="dash_login"),
        Route("/logout", logout, name="dash_logout"),
        Route("/dashboard.css", stylesheet, name="dash_css"),
    ]


def _serve(
    reader_factory: ReaderFactory, renderer: Renderer, build: PageBuilder, request: Request
) -> Response:
    try:
        with reader_factory() as reader:
            page = build(reader, request)
    except WarehouseReadError as exc:
        log.warning("dashboard: warehouse unavailable: %s", exc)
        # The cause stays in the log: it may name the database's host.
        detail = "The warehouse database cannot be read right now. This page retries by itself."
        return _problem(renderer, 503, "Warehouse unavailable", detail, retry=True)
    except NotFound as exc:
        return _problem(renderer, 404, "Not found", str(exc))
    except Ambiguous as exc:
        return _problem(renderer, 409, "Ambiguous", str(exc))
    return HTMLResponse(renderer.page(page.template, **page.context), status_code=page.status)


def _problem(
    renderer: Renderer, status: int, title: str, detail: str, *, retry: bool = False
) -> Response:
    extra = {"refresh_s": RETRY_AFTER_S} if retry else {}
    body = renderer.page(
        "problem.html", title=title, status=status, detail=detail, retry=retry, **extra
    )
    headers = {"Retry-After": str(RETRY_AFTER_S)} if retry else {}
    return HTMLResponse(body, status_code=status, headers=headers)


__all__ = ["RETRY_AFTER_S", "ReaderFactory", "routes"]
