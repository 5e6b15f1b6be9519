"""Secrets: read from the environment, a file or systemd credentials, never clear text."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr, ValidationInfo, WithJsonSchema

from gateway.config.paths import resolve_config_path


def _resolve_secret(value: object, info: ValidationInfo) -> SecretStr:
    """Turn a ``{env|file|credential = ...}`` table into the secret's value."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        raise ValueError(
            "secrets are not accepted in clear text; give a table with one of "
            "env = 'VAR', file = 'path' or credential = 'name'"
        )
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError("a secret is a table with exactly one of: env, file, credential")
    ((source, name),) = value.items()
    if not isinstance(name, str) or not name:
        raise ValueError(f"secret source {source!r} needs a non-empty string")
    context = info.context or {}
    environ: Mapping[str, str] = context.get("environ", os.environ)
    if source == "env":
        if name not in environ:
            raise ValueError(f"environment variable {name} is not set")
        return SecretStr(environ[name])
    if source == "file":
        path = resolve_config_path(Path(name), context)
    elif source == "credential":
        directory = environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ValueError(
                f"credential {name!r} needs $CREDENTIALS_DIRECTORY (set by systemd LoadCredential=)"
            )
        path = Path(directory) / name
    else:
        raise ValueError(f"unknown secret source {source!r}; use env, file or credential")
    try:
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None


_SECRET_SCHEMA: dict[str, Any] = {
    "description": "A secret: exactly one of env, file or credential (never clear text).",
    "type": "object",
    "properties": {
        "env": {"type": "string", "description": "environment variable name"},
        "file": {"type": "string", "description": "file path, relative to the config file"},
        "credential": {"type": "string", "description": "name under $CREDENTIALS_DIRECTORY"},
    },
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
}

Secret = Annotated[
    SecretStr, BeforeValidator(_resolve_secret), WithJsonSchema(_SECRET_SCHEMA, mode="validation")
]
"""A secret read from the environment, a file, or systemd credentials at load time."""
