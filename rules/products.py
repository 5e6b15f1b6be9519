"""Which product each pack is, and whether its label names the same product.

A run packs several products (docs/products.md). Judging a pack as the wrong product makes a
false legal record: catch-weight packs counted in a fixed-weight ℮ batch, giveaway against
a nominal quantity they do not have. So the product is decided from the best source there
is, in this order, and a pack with no answer is flagged, never given a guess:

1. **the device**: the checkweigher's program number (or product code), mapped to a PLU
   in the device's ``programs``. A checkweigher is set up per product, so this is what
   it was actually weighing against;
2. **the pack's own label**: the GTIN (AI 01) of the label read for this pack (its AI 21
   serial is the pack's label number), among the products the device's settings allow;
3. **the nominal setting**: the checkweigher's Qn matches exactly one fixed-weight product
   of the run; a Qn of 0 (or a catch-weight mode flag) says the device weighs without a
   nominal quantity, which leaves the run's catch-weight products;
4. **the only product left**: after the device's mode has ruled products out, a single
   candidate.

A label never overrides what the device's settings say: a label naming a product the
checkweigher is not set for (a 400 g fixed-weight label on a pack weighed with no nominal
quantity, after a changeover) does not decide that pack; it is the wrong label that
:func:`check_label_product` reports. So where the nominal setting leaves one product, the
label can only agree with it, and the pack is decided (``nominal``) as it is stored,
without waiting for the label; the label decides (``label``) where the settings leave
several products.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from gateway.core.records import LabelScan, PackEvent
from rules import ids
from rules.model import Finding, Product, RunContext, Severity

__all__ = [
    "RULE_LABEL_PRODUCT",
    "SOURCES",
    "ProductDecision",
    "candidates",
    "check_label_product",
    "decide",
    "product_by_gtin",
    "product_by_plu",
]

RULE_LABEL_PRODUCT: Final = ids.LABEL_PRODUCT
SOURCES: Final = ("device", "nominal", "label", "only_product")


@dataclass(frozen=True, slots=True)
class ProductDecision:
    """The product of a pack and how it was decided; ``plu`` None: not decided."""

    plu: str | None
    source: str | None
    reason: str = ""
    """Why no product could be decided (for the record and the operator)."""
    left: int = 0
    """Undecided: how many of the run's products the device's settings leave."""


def gtin14(gtin: str | None) -> str | None:
    """A GTIN as 14 digits (GTIN-8/12/13 padded with zeros), or None if it is not one."""
    if gtin is None or not (gtin.isascii() and gtin.isdigit()) or len(gtin) > 14:
        return None
    return gtin.zfill(14)


def product_by_gtin(gtin: str | None, run: RunContext) -> Product | None:
    """The run's product with this GTIN, or None."""
    key = gtin14(gtin)
    if key is None:
        return None
    return next((p for p in run.products if gtin14(p.gtin) == key), None)


def product_by_plu(plu: str | None, run: RunContext) -> Product | None:
    """The run's product with this PLU, or None."""
    return next((p for p in run.products if p.plu == plu), None) if plu else None


def _is_catch_weight(product: Product) -> bool:
    return product.catch_weight or product.nominal_g is None


def candidates(pack: PackEvent, run: RunContext) -> tuple[list[Product], bool]:
    """The run's products the device's settings leave, and whether its nominal narrowed them.

    A nominal setting above 0 leaves the fixed-weight products with that Qn; a nominal of 0
    or a catch-weight mode flag leaves the catch-weight products; a fixed mode flag leaves
    the fixed-weight ones.
    """
    left = list(run.products)
    if pack.catch_weight is not None:
        left = [p for p in left if _is_catch_weight(p) == pack.catch_weight]
    if pack.nominal_g is None:
        return left, False
    if pack.nominal_g <= 0:
        return [p for p in left if _is_catch_weight(p)], True
    nominal = Decimal(repr(float(pack.nominal_g)))
    return [p for p in left if not _is_catch_weight(p) and p.nominal_g == nominal], True


def decide(
    pack: PackEvent,
    run: RunContext,
    programs: Mapping[str, str],
    *,
    label: LabelScan | None = None,
) -> ProductDecision:
    """The product of ``pack`` from its device's program, its nominal, ``label``, or the one
    product left (see the module docstring for the order and why)."""
    if pack.program is not None:
        plu = programs.get(pack.program)
        if plu is None:
            return ProductDecision(None, None, f"program {pack.program} is not in programs")
        if product_by_plu(plu, run) is None:
            return ProductDecision(
                None, None, f"program {pack.program} packs PLU {plu}, not a product of the run"
            )
        return ProductDecision(plu, "device")
    left, narrowed = candidates(pack, run)
    if narrowed and len(left) == 1:
        return ProductDecision(left[0].plu, "nominal")
    if label is not None:
        product = product_by_gtin(label.gtin, run)
        if product is not None and product in left:
            return ProductDecision(product.plu, "label")
    if len(left) == 1:
        return ProductDecision(left[0].plu, "only_product")
    if not left:
        return ProductDecision(None, None, "no product of the run fits the device's setting")
    return ProductDecision(
        None,
        None,
        f"{len(left)} products of the run fit: {', '.join(p.plu for p in left)}",
        left=len(left),
    )


def _name(product: Product) -> str:
    return f"{product.plu} {product.description}".strip()


def check_label_product(
    scan: LabelScan,
    run: RunContext,
    packed: Product | None,
    subject: str,
) -> Sequence[Finding]:
    """``label_product`` (CRITICAL) when a label names a product other than the one packed.

    * the label's GTIN is no product of the run (a label from another run or another line);
    * it names another product of the run than ``packed``: the product of the label's own
      pack where known, else the product the line is packing now (old labels after a
      changeover, the classic cause of an allergen recall).

    Nothing is said when the label carries no GTIN (the read is rejected elsewhere) or the
    run lists no GTIN for any product (nothing to compare with).
    """
    key = gtin14(scan.gtin)
    if key is None or not any(gtin14(p.gtin) for p in run.products):
        return []
    named = product_by_gtin(scan.gtin, run)
    detail: dict[str, object] = {
        "device": scan.device,
        "run_number": run.run_number,
        "serial": scan.serial,
        "gtin": scan.gtin,
        "scan_us": scan.ts_us,
        "label_plu": named.plu if named is not None else None,
        "packed_plu": packed.plu if packed is not None else None,
    }
    if named is None:
        message = (
            f"label {subject} has GTIN {scan.gtin}, which is no product of run "
            f"{run.run_number}: wrong label"
        )
    elif packed is not None and named.plu != packed.plu:
        message = (
            f"label {subject} is for {_name(named)} but the line packs {_name(packed)}: wrong label"
        )
    else:
        return []
    return [
        Finding(
            rule=RULE_LABEL_PRODUCT,
            subject=subject,
            active=True,
            severity=Severity.CRITICAL,
            message=message,
            ts_us=scan.ts_us,
            line=scan.line,
            detail=detail,
        )
    ]
