"""The base of every config model and the id syntax."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Ids of gateways, sites, lines, devices and tags: they end up in MQTT topics and file names."""


class StrictModel(BaseModel):
    """Base of every config model: unknown keys rejected, values frozen after load."""

    # strict: a value must have the key's type ("502" is no port, true is no 1), as TOML
    # writes it; a TOML integer still fills a float key (pydantic's strict float takes ints).
    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, strict=True
    )

    @model_validator(mode="before")
    @classmethod
    def _arrays_are_tuples(cls, data: object) -> object:
        # TOML arrays arrive as lists; strict mode takes only tuples for the tuple keys.
        if isinstance(data, dict):
            return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return data


Identifier = Annotated[str, Field(pattern=IDENTIFIER)]
"""An id (see :data:`IDENTIFIER`): letters, digits, ``_``, ``.`` and ``-``, at most 64."""
