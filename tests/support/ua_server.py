"""A bare asyncua server on a free loopback port, built by the test that needs it.

For tests that need an address space the project's simulator does not have (other units,
companion-specification types). The server is stopped when the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from asyncua import ua
from asyncua.server.server import Server

from gateway.core.codecs.units import unit_id
from tests.support.ports import free_port

UNECE_NS = "http://www.opcfoundation.org/UA/units/un/cefact"


def eu(code: str, symbol: str) -> ua.EUInformation:
    """An EngineeringUnits value for a UNECE common code (OPC 10000-8 §5.6.3)."""
    return ua.EUInformation(
        NamespaceUri=UNECE_NS,
        UnitId=unit_id(code),
        DisplayName=ua.LocalizedText(symbol),
        Description=ua.LocalizedText(symbol),
    )


@contextlib.asynccontextmanager
async def ua_server() -> AsyncIterator[tuple[Server, str]]:
    """An initialised, anonymous, unsecured server and its endpoint, not yet started: the
    caller adds its nodes, then calls ``server.start()``. Stopped when the block ends."""
    server = Server()
    server.disable_clock()
    await server.init()
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/test"
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    server.set_identity_tokens([ua.AnonymousIdentityToken])
    try:
        yield server, endpoint
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
