"""What the label rules call things: their rule ids, a label's running number, and the
subjects and names their findings carry (docs/alarms.md §1: a subject is a condition)."""

from __future__ import annotations

from typing import Final

from gateway.core.records import LabelScan
from rules import ids
from rules.model import Product, RunContext

__all__ = [
    "RULE_BATCH",
    "RULE_DUPLICATE",
    "RULE_GAP",
    "RULE_INVALID",
    "RULE_OUT_OF_SEQUENCE",
    "RULE_WEIGHT",
    "batch_subject",
    "label_name",
    "label_subject",
    "printable",
    "product_by_gtin",
    "sequence_number",
    "weight_subject",
]

RULE_GAP: Final = ids.LABEL_GAP
RULE_DUPLICATE: Final = ids.LABEL_DUPLICATE
RULE_OUT_OF_SEQUENCE: Final = ids.LABEL_OUT_OF_SEQUENCE
RULE_BATCH: Final = ids.LABEL_BATCH
RULE_WEIGHT: Final = ids.LABEL_WEIGHT
RULE_INVALID: Final = ids.LABEL_INVALID


def sequence_number(serial: str | None) -> int | None:
    """The label's running number from its AI 21 serial: digits only, else ``None``."""
    if serial is None or not serial or not (serial.isascii() and serial.isdigit()):
        return None
    return int(serial)


def printable(raw: bytes) -> str:
    """Bytes as text with every unprintable character escaped (``\\x1d`` for a GS)."""
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def label_subject(scan: LabelScan, run: RunContext) -> str:
    """The subject of a finding about one label: ``line/run/serial`` (or the raw read)."""
    return f"{scan.line}/{run.run_number}/{scan.serial or printable(scan.raw)}"


def label_name(scan: LabelScan) -> str:
    """How a message names one label: its serial, else its raw read."""
    return scan.serial or printable(scan.raw)


def weight_subject(scan: LabelScan, run: RunContext) -> str:
    """The subject of ``label_weight``: ``line/run/product`` (the PLU of the label's GTIN,
    else the GTIN): a labeller printing the wrong weight is one condition of its product,
    however many labels show it (docs/alarms.md §1)."""
    product = product_by_gtin(scan.gtin, run)
    what = product.plu if product is not None else (scan.gtin or "no GTIN")
    return f"{scan.line}/{run.run_number}/{what}"


def batch_subject(scan: LabelScan, run: RunContext) -> str:
    """The subject of ``label_batch``: ``line/run/batch:<the batch printed>`` (``-`` for
    none): the labeller set to a wrong batch is one condition, a second wrong batch another."""
    printed = printable(scan.batch.encode()) if scan.batch and scan.batch.strip() else "-"
    return f"{scan.line}/{run.run_number}/batch:{printed}"


def _gtin14(gtin: str | None) -> str | None:
    if gtin is None or not (gtin.isascii() and gtin.isdigit()) or len(gtin) > 14:
        return None
    return gtin.zfill(14)


def product_by_gtin(gtin: str | None, run: RunContext) -> Product | None:
    """The run's product with this GTIN (compared as GTIN-14), if there is one."""
    key = _gtin14(gtin)
    if key is None:
        return None
    return next((p for p in run.products if _gtin14(p.gtin) == key), None)
