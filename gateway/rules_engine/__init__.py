"""Runs the pure rules (:mod:`rules`) on the gateway's records and keeps the alert book.

The parts, one job each:

* :mod:`.engine`: :class:`RulesEngine`, which takes each stored record and the time passing,
  and rebuilds its state at a restart;
* :mod:`.packs_and_labels`: the product of each pack, its ℮ and giveaway, label checks;
* :mod:`.operator_actions`: acknowledge, shelve, line modes, the andon summary;
* :mod:`.state`: the engine's state, and findings turned into alert records;
* :mod:`.run_context`: an ERP run and a probe's config as the rules see them;
* :mod:`.alert_folding`: alerts rebuilt from stored transitions;
* :mod:`.events`: the names of the events the engine writes.
"""

from __future__ import annotations

from gateway.rules_engine.alert_folding import fold_alerts
from gateway.rules_engine.engine import RulesEngine
from gateway.rules_engine.events import (
    CHANGEOVER_EVENT,
    LINE_MODE_EVENT,
    OPERATOR_SOURCE,
    PACK_PRODUCT_EVENT,
)
from gateway.rules_engine.run_context import probe_limits, run_context

__all__ = [
    "CHANGEOVER_EVENT",
    "LINE_MODE_EVENT",
    "OPERATOR_SOURCE",
    "PACK_PRODUCT_EVENT",
    "RulesEngine",
    "fold_alerts",
    "probe_limits",
    "run_context",
]
