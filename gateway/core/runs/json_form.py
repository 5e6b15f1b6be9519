"""A run's fingerprint (what must not change once it runs) and its JSON form for the store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Final, TypeVar

from gateway.core.runs.coercion import shown
from gateway.core.runs.fields import jsonable
from gateway.core.runs.model import Product, ProductionRun, RunStatus, Tier

_T = TypeVar("_T")

_JSON_FORMAT: Final = 1


def _canonical(number: Decimal | None) -> str | None:
    """Value-equal decimals give equal text ("120" and "120.0" -> "120")."""
    return None if number is None else format(number.normalize(), "f")


def run_fingerprint(run: ProductionRun) -> dict[str, object]:
    """The fields whose change after a run has started must be reconciled with an alert.

    Line, batch codes (sorted: their order carries no meaning) and every field of every
    product (sorted by PLU; decimals in canonical text so 120 and 120.0 compare equal), as a
    JSON-able dict: compare two fingerprints with ``==`` or store one as JSON.
    """
    return {
        "line": run.line,
        "batch_codes": sorted(run.batch_codes),
        "products": [
            {
                "plu": p.plu,
                "description": p.description,
                "nominal_g": _canonical(p.nominal_g),
                "tier": p.tier.value,
                "catch_weight": p.catch_weight,
                "tare_g": _canonical(p.tare_g),
                "glaze_pct": _canonical(p.glaze_pct),
                "species": p.species,
                "gtin": p.gtin,
            }
            for p in sorted(run.products, key=lambda p: p.plu)
        ],
    }


def _iso(moment: date | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _dec(number: Decimal | None) -> str | None:
    return None if number is None else str(number)


def run_to_json(run: ProductionRun) -> dict[str, object]:
    """A JSON-able dict for storing a run (e.g. in SQLite); :func:`run_from_json` inverts it.

    Decimals become strings (exact), dates and date-times ISO 8601 text, enums their values.
    """
    return {
        "format": _JSON_FORMAT,
        "run_number": run.run_number,
        "line": run.line,
        "batch_codes": list(run.batch_codes),
        "description": run.description,
        "species": run.species,
        "product_type": run.product_type,
        "products": [
            {
                "plu": p.plu,
                "description": p.description,
                "nominal_g": _dec(p.nominal_g),
                "tier": p.tier.value,
                "catch_weight": p.catch_weight,
                "tare_g": str(p.tare_g),
                "glaze_pct": str(p.glaze_pct),
                "species": p.species,
                "gtin": p.gtin,
            }
            for p in run.products
        ],
        "raw_material_kg": _dec(run.raw_material_kg),
        "pack_date": _iso(run.pack_date),
        "shelf_life_adjust": run.shelf_life_adjust,
        "planned_start": _iso(run.planned_start),
        "planned_end": _iso(run.planned_end),
        "actual_start": _iso(run.actual_start),
        "actual_end": _iso(run.actual_end),
        "status": run.status.value,
        "updated": run.updated.isoformat(),
        "extra": jsonable(run.extra),
    }


def _j(data: Mapping[str, object], key: str, kind: type[_T]) -> _T:
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"stored run field {key!r} is {shown(value)}, not {kind.__name__}")
    return value


def _j_opt(data: Mapping[str, object], key: str, kind: type[_T]) -> _T | None:
    return None if data.get(key) is None else _j(data, key, kind)


def _j_dec(data: Mapping[str, object], key: str) -> Decimal | None:
    text = _j_opt(data, key, str)
    return None if text is None else Decimal(text)


def _j_moment(data: Mapping[str, object], key: str) -> datetime | None:
    text = _j_opt(data, key, str)
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"stored run field {key!r} is {text!r}, without a UTC offset")
    return moment


def run_from_json(data: Mapping[str, object]) -> ProductionRun:
    """Rebuild a run from :func:`run_to_json` output (also after a ``json`` round trip).

    Raises ``ValueError`` if ``data`` is not such a dict (missing key, wrong type, other
    format version).
    """
    try:
        if data.get("format") != _JSON_FORMAT:
            raise ValueError(f"unsupported stored run format {shown(data.get('format'))}")
        products = tuple(
            Product(
                plu=_j(p, "plu", str),
                description=_j(p, "description", str),
                nominal_g=_j_dec(p, "nominal_g"),
                tier=Tier(_j(p, "tier", str)),
                catch_weight=_j(p, "catch_weight", bool),
                tare_g=Decimal(_j(p, "tare_g", str)),
                glaze_pct=Decimal(_j(p, "glaze_pct", str)),
                species=_j_opt(p, "species", str),
                gtin=_j_opt(p, "gtin", str),
            )
            for p in _mappings(_j(data, "products", list))
        )
        updated = _j_moment(data, "updated")
        if updated is None:
            raise ValueError("stored run has no 'updated' time")
        pack_date = _j_opt(data, "pack_date", str)
        return ProductionRun(
            run_number=_j(data, "run_number", str),
            line=_j(data, "line", str),
            batch_codes=tuple(_strings(_j(data, "batch_codes", list))),
            description=_j(data, "description", str),
            species=_j_opt(data, "species", str),
            product_type=_j_opt(data, "product_type", str),
            products=products,
            raw_material_kg=_j_dec(data, "raw_material_kg"),
            pack_date=None if pack_date is None else date.fromisoformat(pack_date),
            shelf_life_adjust=_j(data, "shelf_life_adjust", int),
            planned_start=_j_moment(data, "planned_start"),
            planned_end=_j_moment(data, "planned_end"),
            actual_start=_j_moment(data, "actual_start"),
            actual_end=_j_moment(data, "actual_end"),
            status=RunStatus(_j(data, "status", str)),
            updated=updated,
            extra=dict(_j(data, "extra", dict)),
        )
    except (KeyError, TypeError, AttributeError, ArithmeticError) as exc:
        raise ValueError(f"not a stored run: {type(exc).__name__}: {exc}") from None


def _mappings(items: Iterable[object]) -> list[Mapping[str, object]]:
    out: list[Mapping[str, object]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ValueError(f"stored product {shown(item)} is not an object")
        out.append(item)
    return out


def _strings(items: Iterable[object]) -> list[str]:
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"stored batch code {shown(item)} is not text")
        out.append(item)
    return out
