"""One object for equal values across the stored runs a gateway loads at start.

A gateway keeps every run it was ever told of, parsed, for the join and the run checks:
months of runs on a few lines. Runs after runs name the same line, description, species,
product type and products, and one run's end is often the next one's start; parsed from
their JSON one by one, each would hold its own copy of each, and an empty dict of its own
for the ERP fields beyond the model. Sharing them keeps the parsed runs in well under half
the memory (bench/optimisations.json; docs/operations.md, sizing).

Values are matched by type and ``repr``, never by equality alone: ``Decimal("200")`` equals
``Decimal("200.0")`` and 10:00 UTC equals 11:00+01:00, but the stored text of a run must
come back exactly as it was (:mod:`gateway.core.runs.json_form`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeVar

from gateway.core.runs import ProductionRun

_T = TypeVar("_T")

_SHARED_FIELDS = (
    "line",
    "description",
    "species",
    "product_type",
    "raw_material_kg",
    "pack_date",
    "planned_start",
    "planned_end",
    "actual_start",
    "actual_end",
    "updated",
)
"""The fields of a run whose values repeat from run to run (the run number and batch codes
are the run's own)."""


NO_EXTRA: Mapping[str, object] = MappingProxyType({})
"""The ``extra`` of every loaded run the ERP sent nothing more for: one read-only mapping, not
an empty dict per run."""


class ValueSharing:
    """Hands back the first object seen with the same type and text for each value."""

    def __init__(self) -> None:
        self._seen: dict[object, object] = {}

    def value(self, value: _T) -> _T:
        """``value``, or the equal object of the same type and text seen before it."""
        if value is None:
            return value
        key = value if type(value) is str else (type(value), repr(value))
        return self._seen.setdefault(key, value)  # type: ignore[return-value]  # same type

    def run(self, run: ProductionRun) -> ProductionRun:
        """``run`` with its repeating values and products shared with the runs before it
        (the same run when nothing could be shared)."""
        changes: dict[str, object] = {}
        for name in _SHARED_FIELDS:
            mine = getattr(run, name)
            shared = self.value(mine)
            if shared is not mine:
                changes[name] = shared
        if not run.extra and run.extra is not NO_EXTRA:
            changes["extra"] = NO_EXTRA
        products = self.value(tuple(self.value(p) for p in run.products))
        if products is not run.products:
            changes["products"] = products
        return dataclasses.replace(run, **changes) if changes else run  # type: ignore[arg-type]


__all__ = ["NO_EXTRA", "ValueSharing"]
