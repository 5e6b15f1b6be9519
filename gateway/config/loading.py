"""Loading a config file: TOML in, a validated :class:`LinesideConfig` or a ConfigError out."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config.lineside_config import LinesideConfig
from gateway.config.problems import config_problems
from gateway.core.errors import NO_VALUE, ConfigError, ConfigProblem


def read_toml(path: str | Path) -> dict[str, Any]:
    """A config file's TOML as a dict; raise :class:`ConfigError` if it cannot be read or
    parsed (the gateway's and the operator commands' one way of reading a config)."""
    path = Path(path)
    shown = str(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            shown, [ConfigProblem("(file)", str(path), exc.strerror or str(exc))]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            shown, [ConfigProblem("(file)", str(path), f"not UTF-8: {exc}")]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, [ConfigProblem("(syntax)", NO_VALUE, f"TOML: {exc}")]) from None


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> LinesideConfig:
    """Read and validate a config file; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    shown = str(path)
    raw = read_toml(path)
    return parse_config(raw, source=shown, base_dir=path.resolve().parent, environ=environ)


def parse_config(
    raw: Mapping[str, Any],
    *,
    source: str = "<config>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> LinesideConfig:
    """Validate already-parsed TOML data (see :func:`load_config`)."""
    context = {"base_dir": base_dir, "environ": os.environ if environ is None else environ}
    try:
        return LinesideConfig.model_validate(raw, context=context)
    except ValidationError as exc:
        raise ConfigError(source, config_problems(exc, raw)) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, as committed in ``config/lineside.schema.json``."""
    schema = LinesideConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Lineside gateway configuration"
    return schema
