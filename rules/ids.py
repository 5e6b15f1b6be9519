"""The rule ids: every alert's ``rule``, named once.

A rule id is stored with each alert transition, synced to the warehouse, shown on the andon
and named in ``[rules.actions]`` and in operator commands (``lineside ack --rule``), so it
never changes once released. Code that decides something by rule (which alerts latch, which
a line mode never suppresses, which the report lists) imports the id or the family from here
rather than writing the text again or matching a prefix: a new rule then has to be placed in
its families on purpose.

The ids of the gateway's other sources (the store, sync, the ERP poller, intake shedding)
are named here too, because the alert policies below include some of them; their modules
keep their own constant, and tests/unit/test_rule_ids.py checks that the two agree.

Pure data.
"""

from __future__ import annotations

from typing import Final

# ℮ (rules/emark.py)
EMARK_MEAN: Final = "emark_mean"
EMARK_MEAN_BATCH: Final = "emark_mean_batch"
EMARK_T1: Final = "emark_t1"
EMARK_T2: Final = "emark_t2"

# giveaway (rules/giveaway.py)
GIVEAWAY: Final = "giveaway"

# HACCP (rules/haccp.py)
HACCP_UPPER: Final = "haccp_upper"
HACCP_LOWER: Final = "haccp_lower"
HACCP_SENSOR_FAULT: Final = "haccp_sensor_fault"

# labels (rules/labels.py)
LABEL_GAP: Final = "label_gap"
LABEL_DUPLICATE: Final = "label_duplicate"
LABEL_OUT_OF_SEQUENCE: Final = "label_out_of_sequence"
LABEL_BATCH: Final = "label_batch"
LABEL_WEIGHT: Final = "label_weight"
LABEL_INVALID: Final = "label_invalid"
LABEL_PRODUCT: Final = "label_product"  # rules/products.py

# shelf life (rules/shelf_life.py)
SHELF_LIFE_USE_BY: Final = "shelf_life_use_by"
SHELF_LIFE_FREEZE_DOWN: Final = "shelf_life_freeze_down"

# run compliance (rules/compliance.py)
COMPLIANCE_GG_IN_PREMIUM: Final = "compliance_gg_in_premium"
COMPLIANCE_TAILS_IN_PREMIUM: Final = "compliance_tails_in_premium"
COMPLIANCE_SPECIES_MISMATCH: Final = "compliance_species_mismatch"
COMPLIANCE_SCANBACK_ORPHAN: Final = "compliance_scanback_orphan"
COMPLIANCE_YIELD: Final = "compliance_yield"
COMPLIANCE_TIER_CASCADE: Final = "compliance_tier_cascade"

# devices (rules/devices.py)
DEVICE_DOWN: Final = "device_down"

# the gateway's other sources
STORE_FULL: Final = "store_full"  # gateway/store/eviction.py
STORE_SEQUENCE_FILE: Final = "store_sequence_file"  # gateway/store.py
STORE_QUARANTINED: Final = "store_quarantined"  # gateway/store.py
SYNC_QUARANTINED: Final = "sync_quarantined"  # sync/outbox.py
SYNC_SESSION_TAKEN_OVER: Final = "sync_session_taken_over"  # sync/mqtt_uplink.py
ERP_UNAVAILABLE: Final = "erp_unavailable"  # gateway/erp_sync.py
ERP_RUN_CHANGED: Final = "erp_run_changed"  # gateway/erp_sync.py
INTAKE_SHED: Final = "intake_shed"  # gateway/shedding.py

# families
EMARK_RULES: Final = frozenset({EMARK_MEAN, EMARK_MEAN_BATCH, EMARK_T1, EMARK_T2})
EMARK_VERDICTS: Final = frozenset({EMARK_MEAN_BATCH, EMARK_T1, EMARK_T2})
"""The ℮ rules that judge packs or a closed batch (not the running mean's early warning)."""
HACCP_RULES: Final = frozenset({HACCP_UPPER, HACCP_LOWER, HACCP_SENSOR_FAULT})
LABEL_RULES: Final = frozenset(
    {
        LABEL_GAP,
        LABEL_DUPLICATE,
        LABEL_OUT_OF_SEQUENCE,
        LABEL_BATCH,
        LABEL_WEIGHT,
        LABEL_INVALID,
        LABEL_PRODUCT,
    }
)
SHELF_LIFE_RULES: Final = frozenset({SHELF_LIFE_USE_BY, SHELF_LIFE_FREEZE_DOWN})
COMPLIANCE_RULES: Final = frozenset(
    {
        COMPLIANCE_GG_IN_PREMIUM,
        COMPLIANCE_TAILS_IN_PREMIUM,
        COMPLIANCE_SPECIES_MISMATCH,
        COMPLIANCE_SCANBACK_ORPHAN,
        COMPLIANCE_YIELD,
        COMPLIANCE_TIER_CASCADE,
    }
)
STORE_RULES: Final = frozenset({STORE_FULL, STORE_SEQUENCE_FILE, STORE_QUARANTINED})

ENGINE_RULES: Final = frozenset(
    {
        *EMARK_RULES,
        GIVEAWAY,
        *HACCP_RULES,
        *LABEL_RULES,
        *SHELF_LIFE_RULES,
        *COMPLIANCE_RULES,
        DEVICE_DOWN,
    }
)
"""Every rule the gateway's rules engine evaluates (gateway/rules_engine/)."""

ALL_RULES: Final = frozenset(
    {
        *ENGINE_RULES,
        *STORE_RULES,
        SYNC_QUARANTINED,
        SYNC_SESSION_TAKEN_OVER,
        ERP_UNAVAILABLE,
        ERP_RUN_CHANGED,
        INTAKE_SHED,
    }
)
"""Every rule id an alert can carry; an operator command naming another is a typo."""

# policies
LATCHING_RULES: Final = frozenset({*LABEL_RULES, SHELF_LIFE_USE_BY})
"""Rules about one thing that happened (a wrong label, a wrong date), not a lasting
condition: active until an operator acknowledges them."""

NEVER_SUPPRESSED: Final = frozenset({*HACCP_RULES, *STORE_RULES, *EMARK_VERDICTS})
"""Alerts that matter even during changeover or washdown: the cold chain, the store, and ℮
verdicts (a batch closes at changeover, and an underweight batch is illegal regardless)."""

__all__ = [
    "ALL_RULES",
    "COMPLIANCE_GG_IN_PREMIUM",
    "COMPLIANCE_RULES",
    "COMPLIANCE_SCANBACK_ORPHAN",
    "COMPLIANCE_SPECIES_MISMATCH",
    "COMPLIANCE_TAILS_IN_PREMIUM",
    "COMPLIANCE_TIER_CASCADE",
    "COMPLIANCE_YIELD",
    "DEVICE_DOWN",
    "EMARK_MEAN",
    "EMARK_MEAN_BATCH",
    "EMARK_RULES",
    "EMARK_T1",
    "EMARK_T2",
    "EMARK_VERDICTS",
    "ENGINE_RULES",
    "ERP_RUN_CHANGED",
    "ERP_UNAVAILABLE",
    "GIVEAWAY",
    "HACCP_LOWER",
    "HACCP_RULES",
    "HACCP_SENSOR_FAULT",
    "HACCP_UPPER",
    "INTAKE_SHED",
    "LABEL_BATCH",
    "LABEL_DUPLICATE",
    "LABEL_GAP",
    "LABEL_INVALID",
    "LABEL_OUT_OF_SEQUENCE",
    "LABEL_PRODUCT",
    "LABEL_RULES",
    "LABEL_WEIGHT",
    "LATCHING_RULES",
    "NEVER_SUPPRESSED",
    "SHELF_LIFE_FREEZE_DOWN",
    "SHELF_LIFE_RULES",
    "SHELF_LIFE_USE_BY",
    "STORE_FULL",
    "STORE_QUARANTINED",
    "STORE_RULES",
    "STORE_SEQUENCE_FILE",
    "SYNC_QUARANTINED",
    "SYNC_SESSION_TAKEN_OVER",
]
