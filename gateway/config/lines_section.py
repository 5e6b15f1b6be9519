"""``[[lines]]``: the packing lines."""

from __future__ import annotations

from gateway.config.base import Identifier, StrictModel


class LineSection(StrictModel):
    """A packing line."""

    id: Identifier
    """Line id as the ERP and the labels name it (e.g. ``L1``)."""
    name: str = ""
    """Name shown to operators."""
