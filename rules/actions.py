"""Corrective actions: what the operator does when an alert is raised.

HACCP asks for corrective actions to be set in advance for when monitoring shows a critical
control point is not under control (Reg (EC) 852/2004 Art 5(2)(e);
docs/reference/domain-rules.md §3), and the ℮ packer's record asks for the corrections made
as well as the checks (SI 2006/659 reg 9; docs/reference/domain-rules.md §1). Each rule may
carry one action text; the gateway puts it in the alert's detail (``action``) and after its
message, so the andon, the TUI and the warehouse show what to do, not only what is wrong.

The texts below are defaults: a site writes its own in ``[rules.actions]`` (an empty text
removes one). They are plant procedure, not law (docs/alarms.md §5).

Pure data.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_ACTIONS", "RULES_WITH_ACTIONS"]

DEFAULT_ACTIONS: Final[dict[str, str]] = {
    "haccp_upper": (
        "Move the product to chill, check the probe with a hand thermometer, hold the "
        "product packed since the last good reading and notify QA"
    ),
    "haccp_lower": (
        "Check the chiller or freezer setting and the probe, assess the product for "
        "freezing damage and notify QA"
    ),
    "haccp_sensor_fault": (
        "Check the probe and its wiring; monitor the point by hand (hand thermometer, "
        "written record) until it is fixed"
    ),
    "emark_mean": "Raise the checkweigher's target weight and check the filler",
    "emark_mean_batch": (
        "Hold the batch, raise the target weight and notify QA: the batch fails ℮ rule 1"
    ),
    "emark_t1": (
        "Check the filler and the checkweigher's reject setpoint, raise the target weight "
        "and notify QA"
    ),
    "emark_t2": (
        "Pull the named pack(s): they must not carry the ℮ mark; check that the "
        "checkweigher rejects below T1"
    ),
    "shelf_life_use_by": (
        "Stop the labeller, correct the use-by date, pull and relabel the packs since the "
        "last good label"
    ),
    "label_batch": (
        "Stop the labeller, correct the batch code, pull and relabel the packs since the "
        "last good label"
    ),
    "device_down": "Check the device's power and network cable; tell maintenance",
}

RULES_WITH_ACTIONS: Final = frozenset(
    {
        *DEFAULT_ACTIONS,
        "giveaway",
        "label_gap",
        "label_duplicate",
        "label_out_of_sequence",
        "label_weight",
        "label_invalid",
        "label_product",
        "shelf_life_freeze_down",
        "compliance_gg_in_premium",
        "compliance_tails_in_premium",
        "compliance_species_mismatch",
        "compliance_scanback_orphan",
        "compliance_yield",
        "compliance_tier_cascade",
    }
)
"""The rules the gateway's rules engine raises, which ``[rules.actions]`` may name."""
