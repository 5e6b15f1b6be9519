"""Paths in the config: relative to the config file, checked readable at load."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationInfo, WithJsonSchema


def resolve_config_path(path: Path, context: Mapping[str, Any]) -> Path:
    """``path`` with ``~`` expanded and, when relative, taken from the config file's folder
    (``base_dir`` in the validation context), so a config travels with its files."""
    base = context.get("base_dir")
    path = path.expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(os.path.normpath(Path(base) / path))
    return path


def _path_from_config(value: object, info: ValidationInfo) -> object:
    if isinstance(value, str | Path):
        return resolve_config_path(Path(value), info.context or {})
    return value


ConfigPath = Annotated[
    Path,
    BeforeValidator(_path_from_config),
    WithJsonSchema({"type": "string", "format": "path"}, mode="validation"),
]
"""A path; relative ones are taken relative to the directory of the config file."""


def _readable(path: Path, *, folder: bool) -> Path:
    """``path`` when it is a readable file (or folder); the error names the resolved path.

    Checked when the config is loaded, so ``check-config`` (and ``lineside run``, which exits
    3 on a config error) says which named file is missing rather than the TLS library at run
    time, naming none (docs/configuration.md, "Files the config names").
    """
    what = "folder" if folder else "file"
    try:
        found = path.stat()
    except FileNotFoundError:
        raise ValueError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
    kind_ok = stat.S_ISDIR(found.st_mode) if folder else stat.S_ISREG(found.st_mode)
    if not kind_ok:
        raise ValueError(f"not a {what}: {path}")
    if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        raise ValueError(f"{what} not readable by this user (uid {os.getuid()}): {path}")
    return path


ConfigFile = Annotated[ConfigPath, AfterValidator(partial(_readable, folder=False))]
"""A path to a file that must exist and be readable when the config is loaded."""

ConfigFolder = Annotated[ConfigPath, AfterValidator(partial(_readable, folder=True))]
"""A path to a folder that must exist and be readable when the config is loaded."""
