"""Per-gateway ack keys: what the ingest signs each gateway's acks with.

The **ack keys file** (``lineside ingest --ack-keys FILE``) has one line per gateway
(``#`` comments and blank lines ignored)::

    hull-gw1:Jq3w...random...
    hull-gw2:Zx8v...random...

The key is the text after the first colon, exactly as the gateway has it in
``[sync.mqtt] ack_key`` (a secret table, e.g. ``{ credential = "ack-key" }``); both sides use
its UTF-8 bytes as the HMAC-SHA256 key (:func:`sync.protocol.sign_ack`). Unlike the HTTPS
tokens file it must hold the keys themselves (a signature needs the key, not a hash of it):
it is a credential of the ingest (mode 0600, or systemd ``LoadCredential=``). It is read
again when it changes (checked at most once a second), so a gateway's key is added or rotated
without a restart; a file that no longer parses leaves the previous keys in force.

:func:`new_ack_key` makes a key: 32 random bytes, URL-safe base64.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from pathlib import Path

from gateway.core.errors import SyncError
from sync.ingest.auth import GATEWAY_ID
from sync.protocol import MIN_ACK_KEY_BYTES

logger = logging.getLogger(__name__)

_RELOAD_CHECK_S = 1.0


class AckKeyFileError(SyncError, ValueError):
    """The ack keys file cannot be read or has a malformed line."""


def new_ack_key() -> str:
    """A fresh ack key: 256 random bits, URL-safe base64 (no colon, no newline)."""
    return secrets.token_urlsafe(32)


def parse_ack_keys(text: str, *, source: str = "<ack keys>") -> dict[str, bytes]:
    """gateway → key from the text of an ack keys file."""
    keys: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        gateway, colon, key = line.partition(":")
        if not colon or not GATEWAY_ID.fullmatch(gateway):
            raise AckKeyFileError(f"{source}:{number}: expected <gateway id>:<key>")
        if gateway in keys:
            raise AckKeyFileError(f"{source}:{number}: gateway {gateway} is listed twice")
        if len(key.encode()) < MIN_ACK_KEY_BYTES:
            raise AckKeyFileError(
                f"{source}:{number}: the key of {gateway} is shorter than {MIN_ACK_KEY_BYTES} bytes"
            )
        keys[gateway] = key.encode()
    return keys


def read_ack_keys(path: Path) -> dict[str, bytes]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AckKeyFileError(f"{path}: {exc}") from None
    return parse_ack_keys(text, source=str(path))


class AckKeys:
    """The gateways' ack keys, from a file (re-read when it changes) or a mapping.

    ``AckKeys(path=...)`` or ``AckKeys(keys={...})``; values may be given as text (the
    gateway's secret) or bytes.
    """

    def __init__(
        self, *, path: Path | None = None, keys: dict[str, str | bytes] | None = None
    ) -> None:
        if (path is None) == (keys is None):
            raise ValueError("give an ack keys file or a mapping")
        self.path = path
        self._keys: dict[str, bytes] = {
            gateway: key.encode() if isinstance(key, str) else key
            for gateway, key in (keys or {}).items()
        }
        for gateway, key in self._keys.items():
            if len(key) < MIN_ACK_KEY_BYTES:
                raise ValueError(f"the ack key of {gateway} is shorter than {MIN_ACK_KEY_BYTES}")
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        if path is not None:
            self._load(force=True)

    def _load(self, *, force: bool = False) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._checked < _RELOAD_CHECK_S:
            return
        self._checked = now
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError as exc:
            if force:
                raise AckKeyFileError(f"{self.path}: {exc}") from None
            logger.error("ack keys file %s unreadable (the previous keys stay): %s", self.path, exc)
            return
        if stamp == self._stamp and not force:
            return
        try:
            keys = read_ack_keys(self.path)
        except AckKeyFileError as exc:
            if force:
                raise
            logger.error("ack keys file not reloaded (the previous one stays in force): %s", exc)
            self._stamp = stamp
            return
        with self._lock:
            self._keys = keys
        if not force:
            logger.info("ack keys file %s reloaded: %d gateway(s)", self.path, len(keys))
        self._stamp = stamp

    def key(self, gateway: str) -> bytes | None:
        """The key ``gateway``'s acks are signed with, or None."""
        self._load()
        with self._lock:
            return self._keys.get(gateway)

    @property
    def gateways(self) -> frozenset[str]:
        self._load()
        with self._lock:
            return frozenset(self._keys)
