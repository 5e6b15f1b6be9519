"""The whole config file: its sections and the cross-references between them."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from gateway.config.base import StrictModel
from gateway.config.devices import Device
from gateway.config.erp_section import Erp
from gateway.config.gateway_section import GatewaySection
from gateway.config.health_section import HealthSection
from gateway.config.lines_section import LineSection
from gateway.config.references import reference_problems
from gateway.config.rules_section import RulesSection
from gateway.config.store_section import StoreSection
from gateway.config.sync_section import SyncSection

CONFIG_REFERENCES = "config_references"
"""The pydantic error type carrying broken cross-references, each with its own key path."""


class LinesideConfig(StrictModel):
    """A Lineside gateway configuration file."""

    gateway: GatewaySection
    """Identity and logging."""
    store: StoreSection
    """The local store."""
    lines: tuple[LineSection, ...] = Field(min_length=1)
    """The packing lines this gateway serves."""
    devices: tuple[Device, ...] = ()
    """Checkweighers, probes and scanners."""
    erp: Erp | None = None
    """Where production runs come from; without it, runs are started from the line."""
    rules: RulesSection = RulesSection()
    """On-device rules and their thresholds."""
    sync: SyncSection = SyncSection()
    """Where records go: the central warehouse."""
    health: HealthSection | None = None
    """The health and metrics HTTP endpoint; without this section no port is opened."""

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        problems = reference_problems(self)
        if problems:
            # Reported at the referring entries' key paths (see config_problems), not here.
            raise PydanticCustomError(
                CONFIG_REFERENCES,
                "{summary}",
                {
                    "summary": "; ".join(f"{p.location}: {p.reason}" for p in problems),
                    "problems": problems,
                },
            )
        return self

    @property
    def control_socket_path(self) -> Path:
        """The operator command socket actually used."""
        return self.gateway.control_socket or self.store.path.parent / "control.sock"

    def secrets(self) -> list[str]:
        """Every secret value in the config, so logs can redact them."""
        found: list[str] = []

        def walk(node: object) -> None:
            if isinstance(node, SecretStr):
                found.append(node.get_secret_value())
            elif isinstance(node, BaseModel):
                for name in type(node).model_fields:
                    walk(getattr(node, name))
            elif isinstance(node, tuple | list):
                for item in node:
                    walk(item)

        walk(self)
        return [s for s in found if s]
