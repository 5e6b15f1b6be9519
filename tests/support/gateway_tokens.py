"""Gateway tokens for tests that POST to the ingest: ``token_for(gateway)`` and the
``tokens(...)`` the ingest verifies them against (hashed, as a tokens file holds them)."""

from __future__ import annotations

import hashlib

from sync.ingest.auth import TokenFile


def token_for(gateway: str) -> str:
    """A fixed token per gateway id (the shape ``lineside ingest-token add`` makes)."""
    return f"{gateway}.{hashlib.sha256(b'test token ' + gateway.encode()).hexdigest()[:43]}"


def tokens(*gateways: str) -> TokenFile:
    """What the ingest knows: the hashes of these gateways' tokens."""
    return TokenFile.from_tokens({gateway: token_for(gateway) for gateway in gateways})


def bearer(gateway: str) -> dict[str, str]:
    """The Authorization header of ``gateway``."""
    return {"authorization": f"Bearer {token_for(gateway)}"}
