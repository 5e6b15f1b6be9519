"""The token files both token commands keep (``lineside ingest-token`` for the gateways'
upload tokens, ``lineside warehouse token`` for the read API's): list, revoke and mint, with
the same file format, the same atomic rewrite and the same errors. Only a token's hash is
stored; the token itself is shown once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.commands.common import EXIT_USAGE, CommandFailed

if TYPE_CHECKING:
    from sync.ingest.auth import TokenHash


@dataclass(frozen=True, slots=True)
class TokenFile:
    """One tokens file and the command that keeps it."""

    command: str
    """How errors name the command, e.g. ``lineside warehouse token``."""
    path: Path
    reader: str
    """Who re-reads the file after a change, e.g. ``the ingest``."""
    header: str | None = None
    """The file's first line; None: the ingest's own."""

    def load(self) -> dict[str, TokenHash]:
        from sync.ingest.auth import TokenFileError, read_tokens  # noqa: PLC0415

        try:
            return read_tokens(self.path)
        except TokenFileError as exc:
            raise CommandFailed(f"{self.command}: {exc}") from None

    def save(self, tokens: dict[str, TokenHash]) -> None:
        from sync.ingest.auth import write_tokens  # noqa: PLC0415

        if self.header is None:
            write_tokens(self.path, tokens)
        else:
            write_tokens(self.path, tokens, header=self.header)

    def list(self) -> None:
        """Print each name and its hash scheme (never a hash)."""
        tokens = self.load()
        for name in sorted(tokens):
            print(f"{name}\t{tokens[name].scheme}")

    def revoke(self, name: str) -> None:
        tokens = self.load()
        if tokens.pop(name, None) is None:
            raise CommandFailed(f"{self.command}: {name} has no token in {self.path}")
        self.save(tokens)
        print(f"{name}: token revoked ({self.reader} re-reads {self.path} within a second)")

    def mint(self, name: str, scheme: str) -> tuple[str, dict[str, TokenHash]]:
        """A new token for ``name`` and the file's tokens with its hash in (not saved yet:
        the caller may have to write the token somewhere first)."""
        from sync.ingest.auth import hash_token, new_token  # noqa: PLC0415

        tokens = self.load()
        try:
            token = new_token(name)
        except ValueError as exc:
            raise CommandFailed(f"{self.command}: {exc}", EXIT_USAGE) from None
        tokens[name] = hash_token(token, scheme=scheme)
        return token, tokens
