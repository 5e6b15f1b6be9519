"""Rule ids are named once, in rules/ids.py, and the alert policies are explicit sets."""

from __future__ import annotations

import ast
from pathlib import Path

from gateway import shedding
from gateway.store import eviction
from rules import compliance, devices, emark, giveaway, haccp, ids, labels, products, shelf_life
from rules.actions import RULES_WITH_ACTIONS
from sync import mqtt_takeover, outbox

ROOT = Path(__file__).resolve().parents[2]
_RULE_MODULES = (compliance, devices, emark, giveaway, haccp, labels, products, shelf_life)
_ALL_IDS = frozenset(v for k, v in vars(ids).items() if k.isupper() and isinstance(v, str))


def _module_rule_ids() -> set[str]:
    """The rule ids the rules modules raise: their module-level constants naming a rule."""
    found: set[str] = set()
    for module in _RULE_MODULES:
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and value in _ALL_IDS:
                found.add(value)
    return found


def test_the_engine_rules_are_the_ones_the_rules_modules_raise() -> None:
    assert _module_rule_ids() == ids.ENGINE_RULES
    assert RULES_WITH_ACTIONS == ids.ENGINE_RULES


def test_the_other_sources_name_the_same_ids() -> None:
    # The store and sync may not import rules/ (layering): their own constants must agree.
    assert eviction.ALERT_RULE == ids.STORE_FULL
    assert shedding.ALERT_RULE == ids.INTAKE_SHED
    assert outbox.QUARANTINE_RULE == ids.SYNC_QUARANTINED
    assert mqtt_takeover.TAKEOVER_RULE == ids.SYNC_SESSION_TAKEN_OVER


def test_the_policies_keep_what_the_prefixes_meant() -> None:
    # The sets replaced prefix matching; for every known id they decide the same way.
    never = ("haccp_", "store_", "emark_t2", "emark_t1", "emark_mean_batch")
    engine = ("emark_", "giveaway", "haccp_", "label_", "shelf_life_", "compliance_", "device_")
    for rule in _ALL_IDS:
        assert (rule in ids.NEVER_SUPPRESSED) == rule.startswith(never), rule
        assert (rule in ids.ENGINE_RULES) == rule.startswith(engine), rule
    assert {
        "label_batch",
        "label_weight",
        "label_duplicate",
        "label_gap",
        "label_out_of_sequence",
        "label_product",
        "label_invalid",
        "shelf_life_use_by",
    } == ids.LATCHING_RULES


def _rule_id_literals(path: Path) -> list[tuple[int, str]]:
    """String constants naming an engine rule, outside f-strings (a column header may
    read "giveaway")."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_fstrings = {
        id(node)
        for joined in ast.walk(tree)
        if isinstance(joined, ast.JoinedStr)
        for node in ast.walk(joined)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in ids.ENGINE_RULES
        and id(node) not in in_fstrings
    ]


def test_no_engine_rule_id_is_written_out_again() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for folder in ("gateway", "rules", "sync", "tui")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "rules" / "ids.py"
        for line, value in _rule_id_literals(path)
    ]
    assert found == []


def test_all_rules_names_every_id() -> None:
    assert _ALL_IDS == ids.ALL_RULES
