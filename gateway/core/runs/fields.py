"""The known fields of one ERP object (a run row or a product), found under any spelling.

Keys are matched case-insensitively, ignoring ``_``, ``-`` and spaces; a key given twice with
different values is a problem; unknown keys are kept, made JSON-able, for ``extra``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

from gateway.core.runs.coercion import shown, squash

_T = TypeVar("_T")

# Normalised key (see squash) -> the field's ERP name, for a run row and for one product.
# The table is the "ERP field mapping" in the docstring of gateway.core.runs.parsing.
RUN_KEYS: Final[dict[str, str]] = {
    "runnumber": "RunNumber",
    "line": "Line",
    "batchcode": "BatchCode",
    "batchcodes": "BatchCodes",
    "description": "Description",
    "species": "Species",
    "producttype": "ProductType",
    "products": "Products",
    "rawmaterialkg": "RawMaterialKg",
    "packdate": "PackDate",
    "shelflifeadjust": "ShelfLifeAdjust",
    "plannedstart": "PlannedStart",
    "plannedend": "PlannedEnd",
    "actualstart": "ActualStart",
    "actualend": "ActualEnd",
    "status": "Status",
    "updated": "Updated",
}
PRODUCT_KEYS: Final[dict[str, str]] = {
    "plu": "PLU",
    "description": "Description",
    "nominalweight": "NominalWeight",
    "nominalg": "NominalWeight",
    "nominalweightg": "NominalWeight",
    "tier": "Tier",
    "catchweight": "CatchWeight",
    "tare": "Tare",
    "tareg": "Tare",
    "glaze": "Glaze",
    "glazepct": "Glaze",
    "species": "Species",
    "gtin": "GTIN",
}


def absent(value: object) -> bool:
    """None and blank text are how the ERP says "no value"."""
    return value is None or (isinstance(value, str) and not value.strip())


def jsonable(value: object) -> object:
    """A JSON-able form of an unknown ERP value (kept in ``extra``)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class Fields:
    """The known fields of one object (run row or product) by ERP name, with the key as sent."""

    def __init__(
        self,
        raw: Mapping[Any, object],
        table: Mapping[str, str],
        where: str,
        reasons: list[str],
    ) -> None:
        self.where = where
        self.reasons = reasons
        self.found: dict[str, tuple[str, object]] = {}
        self.unknown: dict[str, object] = {}
        for key, value in raw.items():
            sent = str(key)
            name = table.get(squash(sent))
            if name is None:
                self.unknown[sent] = value
                continue
            if name in self.found:
                first_key, first = self.found[name]
                if absent(value):
                    continue
                if not absent(first) and first != value:
                    reasons.append(
                        f"{where}{name} is given twice with different values: "
                        f"{first_key} = {shown(first)} and {sent} = {shown(value)}"
                    )
                    continue
            self.found[name] = (sent, value)

    def get(self, name: str) -> tuple[str, object] | None:
        """(label for messages, value) if the field is present and not blank."""
        got = self.found.get(name)
        if got is None or absent(got[1]):
            return None
        return f"{self.where}{got[0]}", got[1]

    def convert(self, name: str, convert: Callable[[object], _T]) -> _T | None:
        """The converted value, or None if absent or invalid (the reason is recorded)."""
        got = self.get(name)
        if got is None:
            return None
        label, value = got
        try:
            return convert(value)
        except ValueError as exc:
            self.reasons.append(f"{label}: {exc}")
            return None

    def require(self, name: str, convert: Callable[[object], _T], why: str = "") -> _T | None:
        """As :meth:`convert`, and record a reason if the field is absent."""
        if self.get(name) is None:
            self.reasons.append(f"{self.where}{name} is missing or blank{why}")
            return None
        return self.convert(name, convert)
