"""Gateway identities at the HTTPS ingest: per-gateway bearer tokens, stored as hashes.

A gateway's token is ``<gateway id>.<secret>`` (``lineside ingest-token add`` makes one: 32
random bytes, URL-safe base64). The gateway sends it as ``Authorization: Bearer <token>``
(``[sync.https] token`` in its config, a secret table); the ingest never stores it, only a
hash in the **tokens file**, one line per gateway (``#`` comments and blank lines ignored)::

    hull-gw1:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    hull-gw2:scrypt:16384:8:1:<salt, base64>:<hash, base64>

``sha256`` suits the generated tokens (256 random bits: a fast hash loses nothing);
``scrypt`` is there for a token a person chose. The file is a credential of the ingest (mode
0600, or systemd ``LoadCredential=``): it holds no secret a gateway could use, but it is the
list of who may write. It is read again when it changes (checked at most once a second), so a
gateway is added or revoked without a restart.

:meth:`TokenFile.authenticate` answers *which gateway* a token proves, or None: the id in the
token names the line to check, and the comparison is constant-time. Authorisation (the batch
must be that gateway's) is the HTTP app's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from gateway.core.errors import SyncError

logger = logging.getLogger(__name__)

GATEWAY_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_RELOAD_CHECK_S = 1.0
_CACHE_SIZE = 1024


class TokenFileError(SyncError, ValueError):
    """The tokens file cannot be read or has a malformed line."""


@dataclass(frozen=True, slots=True)
class TokenHash:
    """One gateway's stored token hash."""

    scheme: str
    """``sha256`` or ``scrypt``."""
    params: tuple[int, int, int] = (0, 0, 0)
    salt: bytes = b""
    digest: bytes = b""

    def text(self) -> str:
        """As written in the tokens file (after ``<gateway>:``)."""
        if self.scheme == "sha256":
            return f"sha256:{self.digest.hex()}"
        n, r, p = self.params
        salt = base64.b64encode(self.salt).decode()
        return f"scrypt:{n}:{r}:{p}:{salt}:{base64.b64encode(self.digest).decode()}"

    def verify(self, token: str) -> bool:
        """Whether ``token`` hashes to this (constant-time comparison)."""
        raw = token.encode()
        if self.scheme == "sha256":
            return hmac.compare_digest(hashlib.sha256(raw).digest(), self.digest)
        n, r, p = self.params
        computed = hashlib.scrypt(
            raw, salt=self.salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=len(self.digest)
        )
        return hmac.compare_digest(computed, self.digest)

    @classmethod
    def parse(cls, text: str) -> TokenHash:
        """The part of a tokens-file line after ``<gateway>:``."""
        scheme, _, rest = text.partition(":")
        if scheme not in ("sha256", "scrypt"):
            raise TokenFileError(f"unknown hash scheme {scheme!r} (use sha256 or scrypt)")
        try:
            parsed = _parse_sha256(rest) if scheme == "sha256" else _parse_scrypt(rest)
        except ValueError as exc:  # binascii.Error is a ValueError
            raise TokenFileError(f"malformed {scheme} hash: {exc}") from None
        if parsed is None:
            raise TokenFileError(f"malformed {scheme} hash")
        return parsed


def _parse_sha256(text: str) -> TokenHash | None:
    digest = bytes.fromhex(text)
    return TokenHash("sha256", digest=digest) if len(digest) == 32 else None


def _parse_scrypt(text: str) -> TokenHash | None:
    n, r, p, salt, digest = text.split(":")
    params = (int(n), int(r), int(p))
    decoded = base64.b64decode(digest, validate=True)
    if params[0] < 2**10 or params[0] & (params[0] - 1) or min(params) < 1 or len(decoded) < 16:
        return None  # n a power of two ≥ 1024, r and p ≥ 1, a real hash
    return TokenHash("scrypt", params, base64.b64decode(salt, validate=True), decoded)


def hash_token(token: str, *, scheme: str = "sha256") -> TokenHash:
    """The hash to store for ``token``."""
    if scheme == "sha256":
        return TokenHash("sha256", digest=hashlib.sha256(token.encode()).digest())
    if scheme == "scrypt":
        salt = secrets.token_bytes(16)
        digest = hashlib.scrypt(token.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
        return TokenHash("scrypt", (SCRYPT_N, SCRYPT_R, SCRYPT_P), salt, digest)
    raise ValueError(f"unknown hash scheme {scheme!r}")


def new_token(gateway: str) -> str:
    """A fresh token for ``gateway``: its id, a dot, 256 random bits (URL-safe base64)."""
    if not GATEWAY_ID.fullmatch(gateway):
        raise ValueError(f"not a gateway id: {gateway!r}")
    return f"{gateway}.{secrets.token_urlsafe(32)}"


def token_gateway(token: str) -> str | None:
    """The gateway id a token names (the part before its last dot), if it is one."""
    gateway, dot, secret = token.rpartition(".")
    if not dot or not secret or not GATEWAY_ID.fullmatch(gateway):
        return None
    return gateway


def parse_tokens(text: str, *, source: str = "<tokens>") -> dict[str, TokenHash]:
    """gateway → hash from the text of a tokens file."""
    tokens: dict[str, TokenHash] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        gateway, colon, rest = line.partition(":")
        if not colon or not GATEWAY_ID.fullmatch(gateway):
            raise TokenFileError(f"{source}:{number}: expected <gateway id>:<scheme>:<hash>")
        if gateway in tokens:
            raise TokenFileError(f"{source}:{number}: gateway {gateway} is listed twice")
        try:
            tokens[gateway] = TokenHash.parse(rest)
        except TokenFileError as exc:
            raise TokenFileError(f"{source}:{number}: {exc}") from None
    return tokens


INGEST_HEADER = "# gateway id:hash of its ingest token (lineside ingest-token add ...)"


def format_tokens(tokens: dict[str, TokenHash], *, header: str = INGEST_HEADER) -> str:
    """The text of a tokens file (``header``: its first line, a comment)."""
    lines = [header]
    lines += [f"{gateway}:{tokens[gateway].text()}" for gateway in sorted(tokens)]
    return "\n".join(lines) + "\n"


def write_tokens(path: Path, tokens: dict[str, TokenHash], *, header: str = INGEST_HEADER) -> None:
    """Replace the tokens file atomically (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(format_tokens(tokens, header=header))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def read_tokens(path: Path) -> dict[str, TokenHash]:
    """The tokens file (an empty mapping when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"{path}: {exc}") from None
    return parse_tokens(text, source=str(path))


class TokenFile:
    """The gateways' token hashes, from a file (re-read when it changes) or a mapping.

    ``TokenFile(path=...)`` or ``TokenFile(tokens={...})``. Thread-safe: scrypt checks run
    off the event loop. A token that verified once is remembered (by its SHA-256, never in
    clear) until the file changes, so a scrypt hash costs its work once per token.
    """

    def __init__(
        self, *, path: Path | None = None, tokens: dict[str, TokenHash] | None = None
    ) -> None:
        if (path is None) == (tokens is None):
            raise ValueError("give a tokens file or a mapping")
        self.path = path
        self._tokens: dict[str, TokenHash] = dict(tokens or {})
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        if path is not None:
            self._load(force=True)

    @classmethod
    def from_tokens(cls, tokens: dict[str, str]) -> TokenFile:
        """From gateway → clear token (tests): hashed here, as the file would hold them."""
        return cls(tokens={gateway: hash_token(token) for gateway, token in tokens.items()})

    @property
    def gateways(self) -> frozenset[str]:
        """The gateways that have a token."""
        self._load()
        return frozenset(self._tokens)

    def _load(self, *, force: bool = False) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._checked < _RELOAD_CHECK_S:
            return
        self._checked = now
        try:
            stat = self.path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and not force:
            return
        try:
            tokens = read_tokens(self.path)
        except TokenFileError as exc:
            if force:
                raise
            # Keep the last good list rather than lock every gateway out on a typo.
            logger.error("tokens file not reloaded (the previous one stays in force): %s", exc)
            self._stamp = stamp
            return
        with self._lock:
            self._tokens = tokens
            self._verified.clear()
        if self._stamp is not None or not force:
            logger.info("tokens file %s reloaded: %d gateway(s)", self.path, len(tokens))
        self._stamp = stamp

    def authenticate(self, token: str) -> str | None:
        """The gateway this token proves, or None. May take tens of ms (scrypt): call it off
        the event loop."""
        self._load()
        gateway = token_gateway(token)
        if gateway is None:
            return None
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            stored = self._tokens.get(gateway)
            if self._verified.get(key) == gateway:
                self._verified.move_to_end(key)
                return gateway
        if stored is None or not stored.verify(token):
            return None
        with self._lock:
            if self._tokens.get(gateway) is stored:
                self._verified[key] = gateway
                while len(self._verified) > _CACHE_SIZE:
                    self._verified.popitem(last=False)
        return gateway
