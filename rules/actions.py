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

from rules import ids

__all__ = ["DEFAULT_ACTIONS", "RULES_WITH_ACTIONS"]

DEFAULT_ACTIONS: Final[dict[str, str]] = {
    ids.HACCP_UPPER: (
        "Move the product to chill, check the probe with a hand thermometer, hold the "
        "product packed since the last good reading and notify QA"
    ),
    ids.HACCP_LOWER: (
        "Check the chiller or freezer setting and the probe, assess the product for "
        "freezing damage and notify QA"
    ),
    ids.HACCP_SENSOR_FAULT: (
        "Check the probe and its wiring; monitor the point by hand (hand thermometer, "
        "written record) until it is fixed"
    ),
    ids.EMARK_MEAN: "Raise the checkweigher's target weight and check the filler",
    ids.EMARK_MEAN_BATCH: (
        "Hold the batch, raise the target weight and notify QA: the batch fails ℮ rule 1"
    ),
    ids.EMARK_T1: (
        "Check the filler and the checkweigher's reject setpoint, raise the target weight "
        "and notify QA"
    ),
    ids.EMARK_T2: (
        "Pull the named pack(s): they must not carry the ℮ mark; check that the "
        "checkweigher rejects below T1"
    ),
    ids.SHELF_LIFE_USE_BY: (
        "Stop the labeller, correct the use-by date, pull and relabel the packs since the "
        "last good label"
    ),
    ids.LABEL_BATCH: (
        "Stop the labeller, correct the batch code, pull and relabel the packs since the "
        "last good label"
    ),
    ids.DEVICE_DOWN: "Check the device's power and network cable; tell maintenance",
}

RULES_WITH_ACTIONS: Final = ids.ENGINE_RULES
"""The rules the gateway's rules engine raises, which ``[rules.actions]`` may name."""
