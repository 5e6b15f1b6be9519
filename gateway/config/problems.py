"""pydantic's validation errors as config problems, each with its TOML key path."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from gateway.config.hints import did_you_mean, keys_at
from gateway.config.lineside_config import CONFIG_REFERENCES, LinesideConfig
from gateway.config.references import Reference
from gateway.config.urls import URL_CREDENTIALS, redact_url
from gateway.core.errors import MISSING, ConfigProblem

SECRET_KEYS = frozenset({"password", "token", "ack_key"})
"""Keys holding secrets (every ``Secret`` field): their values are never echoed in an error
message, nor those of an unknown key that is one of these misspelt."""


def config_problems(exc: ValidationError, raw: Mapping[str, Any]) -> list[ConfigProblem]:
    errors = exc.errors(include_url=False)
    # pydantic also reports a container as "too short" when its only items were invalid;
    # that is noise next to the item's own error, so drop it.
    locations = [e["loc"] for e in errors]
    problems: list[ConfigProblem] = []
    for error in errors:
        loc = error["loc"]
        if error["type"] == CONFIG_REFERENCES:
            references: list[Reference] = (error.get("ctx") or {}).get("problems", [])
            problems.extend(ConfigProblem(*reference) for reference in references)
            continue
        if error["type"] == "too_short" and any(
            other[: len(loc)] == loc and len(other) > len(loc) for other in locations
        ):
            continue
        location = _key_path(loc, raw)
        value: object = MISSING if error["type"] == "missing" else error.get("input", MISSING)
        # A table or list is summarised, an unknown one too: a misspelt [sync.mqtt] holds
        # the password and the token it would have held.
        if isinstance(value, Mapping | list | tuple):
            value = "{...}" if isinstance(value, Mapping) else "[...]"
        hint = ""
        if error["type"] == "extra_forbidden":
            hint = did_you_mean(str(loc[-1]), keys_at(LinesideConfig, loc, raw))
        if any(part in SECRET_KEYS for part in loc if isinstance(part, str)) or any(
            hint == f"; did you mean {key!r}?" for key in SECRET_KEYS
        ):
            value = "***"
        elif error["type"] == URL_CREDENTIALS:
            value = redact_url(value)
        if error["type"] == "extra_forbidden":
            message = f"unknown key{hint or ' (misspelt? see config/example.toml)'}"
        else:
            message = error["msg"].removeprefix("Value error, ") + _quoted_number_hint(
                error["type"], error.get("input"), location
            )
        problems.append(ConfigProblem(location, value, message))
    return problems


_NUMBER_TYPES = {"int_type": int, "float_type": float}
"""pydantic's strict-mode errors for a key that takes a number (the config is strict:
gateway/config/base.py), and what the text must parse as to be that number."""


def _quoted_number_hint(error_type: str, value: object, location: str) -> str:
    """``"; write it without quotes: port = 502"`` for a number written as a TOML string."""
    parse = _NUMBER_TYPES.get(error_type)
    if parse is None or not isinstance(value, str):
        return ""
    text = value.strip()
    try:
        number = parse(text)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    key = location.rsplit(".", 1)[-1]
    written = text if key.endswith("]") else f"{key} = {text}"
    return f"; write it without quotes: {written}"


def _key_path(loc: tuple[int | str, ...], raw: object) -> str:
    """Render a pydantic location as a TOML key path, e.g. ``devices[0].groups[1].tags[2].node``.

    The discriminated-union tag (``opcua`` in ``devices.0.opcua.endpoint``) is not a key in
    the file, so it is dropped by walking the raw data alongside the location.
    """
    parts: list[str] = []
    node: object = raw
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        elif isinstance(node, Mapping) and item in node:
            parts.append(f".{item}" if parts else item)
            node = node[item]
        elif isinstance(node, Mapping) and node.get("kind") == item:
            continue  # union member name
        else:
            parts.append(f".{item}" if parts else item)
            node = None
    return "".join(parts) or "(top level)"
