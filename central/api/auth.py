"""Who may read the warehouse: bearer tokens (stored hashed) and/or TLS client certificates.

Tokens are the ingest's kind (:mod:`sync.ingest.auth`): ``<name>.<secret>``, 256 random
bits, only a hash stored, in a **tokens file of their own** (``lineside warehouse token
add NAME --tokens FILE``). A read token is never an ingest token: the ingest's file lists
who may *write*, this one who may *read*, and neither is accepted by the other service.

With mutual TLS (``--tls-client-ca``) the handshake has already refused every client
without a certificate signed by that CA, so such a connection is authenticated as it
stands; a token is then needed only when the server has no client CA.

A browser cannot send a bearer header on a plain link, so the same token is accepted from
the ``lineside_token`` cookie (set by the dashboard's login form; HttpOnly,
SameSite=Strict). Everything but ``/api/v1/health`` needs one of the three.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from central.api.settings import ApiSettings

COOKIE = "lineside_token"
"""The cookie a browser may carry the token in (the dashboard's login sets it)."""
REALM = "lineside-warehouse"
CHALLENGE = f'Bearer realm="{REALM}"'
INVALID = f'Bearer realm="{REALM}", error="invalid_token"'


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not authenticated: the 401's reason and its challenge."""

    reason: str
    challenge: str


def presented_token(connection: HTTPConnection) -> str | None:
    """The token a request carries: its bearer header, else its cookie."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    cookie = connection.cookies.get(COOKIE, "").strip()
    return cookie or None


async def authenticate(connection: HTTPConnection, settings: ApiSettings) -> str | Refusal:
    """Who is reading (a token's name, or ``client-certificate``), or why nobody is."""
    token = presented_token(connection)
    if token is None:
        if settings.client_certificates:
            return "client-certificate"
        return Refusal("a bearer token is required", CHALLENGE)
    if settings.tokens is None:
        if settings.client_certificates:
            return "client-certificate"
        return Refusal("no read tokens are configured", CHALLENGE)
    # An scrypt hash takes tens of milliseconds: off the event loop.
    name = await asyncio.to_thread(settings.tokens.authenticate, token)
    if name is None:
        return Refusal("the token is not valid", INVALID)
    return name
