"""The dashboard's token login: a browser cannot send a bearer header on a plain link, so
the login form puts the read token in the ``lineside_token`` cookie, which the API's
authentication gate (central/api/guard.py) accepts like the header.

The form does not judge the token: the gate does, on the next page. The cookie is
HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it, so no
cross-site request forgery) and Secure when the page came over HTTPS.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from central.dashboard.render import Renderer

COOKIE = "lineside_token"
"""The cookie the gate reads (central/api/auth.py ``COOKIE``)."""
COOKIE_MAX_AGE_S = 12 * 3600
"""A login lasts a shift; then the browser forgets the token."""
FORM_MAX_BYTES = 4096
"""A login form is a token (about 60 characters): anything larger is refused."""
PUBLIC_PATHS = frozenset({"/login", "/dashboard.css"})
"""What a browser needs before it has logged in: the form and its stylesheet."""


def login_form(renderer: Renderer, *, problem: str | None = None, status: int = 200) -> Response:
    """The login page."""
    body = renderer.page("login.html", title="Log in", problem=problem, refresh_s=None)
    return Response(body, status_code=status, media_type="text/html")


async def login(request: Request, renderer: Renderer) -> Response:
    """GET: the form. POST: the token into the cookie, then the fleet page."""
    if request.method != "POST":
        return login_form(renderer)
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > FORM_MAX_BYTES:
        return login_form(renderer, problem="The form is too large.", status=413)
    body = await request.body()
    if len(body) > FORM_MAX_BYTES:
        return login_form(renderer, problem="The form is too large.", status=413)
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=4)
    token = (fields.get("token") or [""])[0].strip()
    if not token or not token.isprintable() or len(token) > 512:
        return login_form(renderer, problem="Give a read token.", status=400)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def logout(_request: Request) -> Response:
    """Forget the token, back to the form."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


__all__ = ["COOKIE", "PUBLIC_PATHS", "login", "login_form", "logout"]
