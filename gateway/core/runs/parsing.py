"""Parse one ERP production-run row into a :class:`ProductionRun` or a :class:`RunRejection`.

``parse_run`` turns one ERP row (the legacy ``RunNumber`` table, or one object of the HTTP
ERP's JSON) into a :class:`ProductionRun`, or a :class:`RunRejection` listing *every* problem
found; it never raises.

ERP field mapping
-----------------
Keys are matched case-insensitively, ignoring ``_``, ``-`` and spaces, so ``RunNumber``,
``run_number`` and ``RUN NUMBER`` are the same key. A key given twice (``RunNumber`` and
``run_number``) with different values is a problem. ``None`` and blank text count as absent.
Unknown keys go to ``ProductionRun.extra`` under their original name, with their values made
JSON-able (Decimal -> str, date/datetime -> ISO text, non-finite floats and other objects ->
str); unknown keys inside a product go there as ``"Products[i].Key"``.

Run row (ERP key / alias -> field: accepted values)::

    RunNumber / run_number        -> run_number       required; text or integer, stripped
    Line / line                   -> line             required; text or integer, stripped
    BatchCode / batch_code        -> batch_codes      text split on , ; and line breaks
    BatchCodes / batch_codes      -> batch_codes      list (or text, split the same way);
                                                      merged after BatchCode, duplicates
                                                      dropped; at least one code required
    Description / description     -> description      text, stripped, case kept (default "")
    Species / species             -> species          explicit wins, else from Description
    ProductType / product_type    -> product_type     explicit wins, else from Description
    Products / products           -> products         list of product objects; absent -> ()
    RawMaterialKg / raw_material_kg -> raw_material_kg  decimal >= 0
    PackDate / pack_date          -> pack_date        coerce_date
    ShelfLifeAdjust / shelf_life_adjust -> shelf_life_adjust  0..3, "+1", "rubber clock" (1),
                                                      "superchill" (2), "superchill +3" (3);
                                                      absent -> 0
    PlannedStart, PlannedEnd,     -> planned_start,   coerce_datetime (no offset -> tz), UTC;
    ActualStart, ActualEnd           ...              an end before its start is a problem
    Status / status               -> status           parse_status; absent -> ActualEnd set:
                                                      finished, ActualStart set: running,
                                                      else planned
    Updated / updated             -> updated          required; coerce_datetime (watermark)

Each object in ``Products``::

    PLU / plu                     -> plu              required; text or integer; unique in run
    Description / description     -> description      text, stripped (default "")
    NominalWeight / nominal_g     -> nominal_g        grams, decimal > 0; required unless catch
      (also nominal_weight_g)                         weight; None (ignored) for catch weight
    Tier / tier                   -> tier             required; parse_tier
    CatchWeight / catch_weight    -> catch_weight     coerce_bool (default False)
    Tare / tare_g                 -> tare_g           grams, decimal >= 0 (default 0)
    Glaze / glaze_pct             -> glaze_pct        percent, 0..50 (default 0)
    Species / species             -> species          explicit wins, else from Description
    GTIN / gtin                   -> gtin             8/12/13/14 digits, valid check digit;
                                                      stored as GTIN-14 (as in GS1 AI 01)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from gateway.core.runs.coercion import coerce_bool, coerce_date, coerce_datetime, shown
from gateway.core.runs.converters import (
    above_zero,
    as_identifier,
    as_text,
    at_least_zero,
    glaze_percent,
    gtin14,
    named,
)
from gateway.core.runs.fields import PRODUCT_KEYS, RUN_KEYS, Fields, jsonable
from gateway.core.runs.free_text import parse_product_type, parse_species
from gateway.core.runs.model import Product, ProductionRun, RunRejection, RunStatus
from gateway.core.runs.vocabulary import (
    parse_shelf_life_adjust,
    parse_status,
    parse_tier,
    split_batch_codes,
)


def parse_run(raw: Mapping[str, object], *, tz: tzinfo) -> ProductionRun | RunRejection:
    """Parse one ERP production-run row; never raises.

    ``raw`` is the row as delivered (keys and values: see the module docstring's field
    mapping). ``tz`` is the ERP's time zone, applied to date-times without an offset. Returns
    a :class:`ProductionRun`, or a :class:`RunRejection` whose ``reasons`` name every problem
    found (field as the ERP sent it, value, what was expected), not just the first.
    """
    try:
        copy = {str(k): v for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    except Exception:  # noqa: BLE001 - defensive: parse_run must never raise
        copy = {}
    try:
        return _parse_run(raw, copy, tz)
    except Exception as exc:  # noqa: BLE001 - defensive: parse_run must never raise
        return RunRejection(
            raw=copy,
            reasons=(f"the row could not be parsed (internal error {type(exc).__name__}: {exc})",),
        )


def _parse_run(raw: object, copy: dict[str, object], tz: tzinfo) -> ProductionRun | RunRejection:
    if not isinstance(raw, Mapping):
        return RunRejection(raw=copy, reasons=(f"the row {shown(raw)} is not an object",))
    reasons: list[str] = []
    fields = Fields(raw, RUN_KEYS, "", reasons)
    extra = {key: jsonable(value) for key, value in fields.unknown.items()}

    run_number = fields.require("RunNumber", as_identifier)
    line = fields.require("Line", as_identifier)

    batch_codes = _batch_codes(fields)
    description = fields.convert("Description", as_text) or ""
    species = _named_or_described(fields, "Species", parse_species, description)
    product_type = _named_or_described(fields, "ProductType", parse_product_type, description)

    products: tuple[Product, ...] = ()
    if (got := fields.get("Products")) is not None:
        products = _parse_products(*got, reasons, extra)

    raw_material_kg = fields.convert("RawMaterialKg", at_least_zero)
    pack_date = fields.convert("PackDate", coerce_date)
    shelf_life_adjust = fields.convert("ShelfLifeAdjust", parse_shelf_life_adjust) or 0

    def moment(value: object) -> datetime:
        return coerce_datetime(value, tz)

    planned_start = fields.convert("PlannedStart", moment)
    planned_end = fields.convert("PlannedEnd", moment)
    actual_start = fields.convert("ActualStart", moment)
    actual_end = fields.convert("ActualEnd", moment)
    for start, end, which in (
        (planned_start, planned_end, "Planned"),
        (actual_start, actual_end, "Actual"),
    ):
        if start is not None and end is not None and end < start:
            reasons.append(
                f"{which}End {end.isoformat()} is before {which}Start {start.isoformat()}"
            )

    status = _status(fields, actual_start, actual_end)
    updated = fields.require("Updated", moment, " (it is the incremental watermark)")

    if reasons or run_number is None or line is None or status is None or updated is None:
        return RunRejection(raw=copy, reasons=tuple(reasons), run_number=run_number or None)
    return ProductionRun(
        run_number=run_number,
        line=line,
        batch_codes=batch_codes,
        description=description,
        species=species,
        product_type=product_type,
        products=products,
        raw_material_kg=raw_material_kg,
        pack_date=pack_date,
        shelf_life_adjust=shelf_life_adjust,
        planned_start=planned_start,
        planned_end=planned_end,
        actual_start=actual_start,
        actual_end=actual_end,
        status=status,
        updated=updated,
        extra=extra,
    )


def _batch_codes(fields: Fields) -> tuple[str, ...]:
    """BatchCode then BatchCodes, merged without duplicates; at least one is required."""
    batch_codes: list[str] = []
    batch_problem = False
    for name in ("BatchCode", "BatchCodes"):
        if fields.get(name) is not None:
            codes = fields.convert(name, split_batch_codes)
            batch_problem |= codes is None
            batch_codes.extend(codes or ())
    if not batch_codes and not batch_problem:
        fields.reasons.append("BatchCode/BatchCodes is missing or empty: a run needs a batch code")
    return tuple(dict.fromkeys(batch_codes))


def _named_or_described(
    fields: Fields, name: str, parse: Callable[[str], str | None], description: str
) -> str | None:
    """The field as given (normalised where recognised), else what the description names.

    A given but unreadable value is a recorded problem, not a reason to guess from the text.
    """
    value = fields.convert(name, named(parse))
    if value is None and fields.get(name) is None:
        value = parse(description)
    return value


def _status(
    fields: Fields, actual_start: datetime | None, actual_end: datetime | None
) -> RunStatus | None:
    """Status as given (None if unreadable), else from the actual start and end."""
    if fields.get("Status") is not None:
        return fields.convert("Status", lambda v: parse_status(v, started=actual_start is not None))
    if actual_end is not None:
        return RunStatus.FINISHED
    if actual_start is not None:
        return RunStatus.RUNNING
    return RunStatus.PLANNED


def _parse_products(
    label: str, value: object, reasons: list[str], extra: dict[str, object]
) -> tuple[Product, ...]:
    if not isinstance(value, list | tuple):
        reasons.append(f"{label}: {shown(value)} is not a list of products")
        return ()
    products: list[Product] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(value):
        where = f"{label}[{index}]"
        if not isinstance(item, Mapping):
            reasons.append(f"{where}: {shown(item)} is not a product object")
            continue
        plu, product = _parse_product(where, item, reasons, extra)
        if plu is None:
            continue
        if plu in first_index:
            reasons.append(f"{where}: PLU {plu!r} is already {label}[{first_index[plu]}]")
            continue
        first_index[plu] = index
        if product is not None:
            products.append(product)
    return tuple(products)


def _parse_product(
    where: str, raw: Mapping[Any, object], reasons: list[str], extra: dict[str, object]
) -> tuple[str | None, Product | None]:
    """(PLU if readable, the product if it has no problem)."""
    before = len(reasons)
    plu_fields = Fields(raw, PRODUCT_KEYS, f"{where} ", reasons)
    plu = plu_fields.require("PLU", as_identifier)
    # Name the PLU in every later message about this product: that is what people look up.
    fields = plu_fields
    if plu:
        fields = Fields(raw, PRODUCT_KEYS, f"{where} (PLU {plu!r}) ", [])
        fields.reasons = reasons
    for key, value in fields.unknown.items():
        extra[f"{where}.{key}"] = jsonable(value)

    description = fields.convert("Description", as_text) or ""
    tier = fields.require("Tier", parse_tier)
    catch_weight = fields.convert("CatchWeight", coerce_bool) or False
    nominal_g: Decimal | None = None
    if not catch_weight:
        # Qn is what the ℮ rules are applied against; catch-weight packs have none
        # (docs/reference/domain-rules.md §1.1; docs/reference/glossary.md "Fixed weight vs catch
        # weight").
        nominal_g = fields.require(
            "NominalWeight", above_zero, " (required unless CatchWeight is yes)"
        )
    tare_g = fields.convert("Tare", at_least_zero)
    glaze_pct = fields.convert("Glaze", glaze_percent)
    species = _named_or_described(fields, "Species", parse_species, description)
    gtin = fields.convert("GTIN", gtin14)

    if len(reasons) > before or not plu or tier is None:
        return plu or None, None
    return plu, Product(
        plu=plu,
        description=description,
        nominal_g=nominal_g,
        tier=tier,
        catch_weight=catch_weight,
        tare_g=tare_g if tare_g is not None else Decimal(0),
        glaze_pct=glaze_pct if glaze_pct is not None else Decimal(0),
        species=species,
        gtin=gtin,
    )
