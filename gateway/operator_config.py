"""What an operator command needs from the gateway's config, and nothing more.

``ack``, ``alerts``, ``report``, ``reconcile`` and the other operator commands need the
gateway's id, its store and its control socket: the ``[gateway]`` and ``[store]`` sections.
Loading the whole config would resolve its secrets (``{ credential = ... }``, token and
password files), which an operator in the ``lineside-operators`` group cannot read, and would
fail on a secret that only the gateway's unit provides. So only those two sections are
validated here, with the same models and the same relative-path rule as
:func:`gateway.config.load_config`; the rest of the file is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.config import GatewaySection, StoreSection
from gateway.config.loading import read_toml
from gateway.core.errors import MISSING, ConfigError, ConfigProblem


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    """The gateway's identity, store and control socket, from its config file."""

    gateway: GatewaySection
    store: StoreSection

    @property
    def control_socket_path(self) -> Path:
        """The operator command socket actually used (as ``LinesideConfig`` has it)."""
        return self.gateway.control_socket or self.store.path.parent / "control.sock"


def _section(
    raw: Mapping[str, Any], key: str, model: type[BaseModel], context: dict[str, Any]
) -> tuple[Any, list[ConfigProblem]]:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        return None, [ConfigProblem(key, MISSING, f"a [{key}] table is required")]
    try:
        return model.model_validate(value, context=context), []
    except ValidationError as exc:
        problems = [
            ConfigProblem(
                ".".join([key, *(str(part) for part in error["loc"])]),
                MISSING if error["type"] == "missing" else error.get("input", MISSING),
                error["msg"].removeprefix("Value error, "),
            )
            for error in exc.errors(include_url=False)
        ]
        return None, problems


def load_operator_config(path: str | Path) -> OperatorConfig:
    """Read ``[gateway]`` and ``[store]`` of a config file; secrets are never resolved.

    Raises :class:`ConfigError` with key paths, as :func:`gateway.config.load_config` does.
    """
    path = Path(path)
    shown = str(path)
    raw = read_toml(path)
    context = {"base_dir": path.resolve().parent, "environ": os.environ}
    gateway, gateway_problems = _section(raw, "gateway", GatewaySection, context)
    store, store_problems = _section(raw, "store", StoreSection, context)
    problems = gateway_problems + store_problems
    if problems:
        raise ConfigError(shown, problems)
    return OperatorConfig(gateway=gateway, store=store)
