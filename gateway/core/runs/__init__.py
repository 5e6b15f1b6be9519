"""Production runs as Lineside understands them, parsed from the ERP's mixed representations.

One batch of fish feeds one run on one line, and several products come out of it (e.g.
Premium 120 g, Premium 240 g, GG 280 g, Family Pack); exception runs carry several batch
codes. Pure: no I/O, no clock reads.

- :mod:`~gateway.core.runs.model`: the types (run, product, tier, status, rejection);
- :mod:`~gateway.core.runs.parsing`: ``parse_run``, with the ERP field mapping;
- :mod:`~gateway.core.runs.fields`, :mod:`~gateway.core.runs.converters`: how one field is
  found and checked;
- :mod:`~gateway.core.runs.coercion`, :mod:`~gateway.core.runs.vocabulary`,
  :mod:`~gateway.core.runs.free_text`: the ERP's flags, numbers, dates, words and free text;
- :mod:`~gateway.core.runs.json_form`: the fingerprint and the stored JSON form;
- :mod:`~gateway.core.runs.versions`: a run as one stored version record.
"""

from __future__ import annotations

from gateway.core.runs.coercion import coerce_bool, coerce_date, coerce_datetime, coerce_decimal
from gateway.core.runs.free_text import parse_product_type, parse_species
from gateway.core.runs.json_form import run_fingerprint, run_from_json, run_to_json
from gateway.core.runs.model import Product, ProductionRun, RunRejection, RunStatus, Tier
from gateway.core.runs.parsing import parse_run
from gateway.core.runs.versions import run_version
from gateway.core.runs.vocabulary import (
    parse_shelf_life_adjust,
    parse_status,
    parse_tier,
    split_batch_codes,
)

__all__ = [
    "Product",
    "ProductionRun",
    "RunRejection",
    "RunStatus",
    "Tier",
    "coerce_bool",
    "coerce_date",
    "coerce_datetime",
    "coerce_decimal",
    "parse_product_type",
    "parse_run",
    "parse_shelf_life_adjust",
    "parse_species",
    "parse_status",
    "parse_tier",
    "run_fingerprint",
    "run_from_json",
    "run_to_json",
    "run_version",
    "split_batch_codes",
]
