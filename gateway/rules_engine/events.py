"""The names of the events the rules engine writes or reacts to: stored ``DeviceEvent``
kinds, read back by a restart (gateway/rules_replay.py) and by the warehouse."""

from __future__ import annotations

from typing import Final

OPERATOR_SOURCE: Final = "operator"
"""The ``device`` of events an operator caused (line modes)."""
LINE_MODE_EVENT: Final = "line_mode"
PACK_PRODUCT_EVENT: Final = "pack_product"
"""The product of a pack decided after it was stored (by its label), or found undecidable."""
CHANGEOVER_EVENT: Final = "changeover"
"""A checkweigher announces a changeover (its status bit): the line's ℮ batches close."""

__all__ = ["CHANGEOVER_EVENT", "LINE_MODE_EVENT", "OPERATOR_SOURCE", "PACK_PRODUCT_EVENT"]
