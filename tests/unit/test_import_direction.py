"""Which layer may import which: the import direction of docs/architecture.md, enforced.

Every ``import`` and ``from ... import`` in the project's packages is read with :mod:`ast`
(at module level and inside functions, including ``TYPE_CHECKING`` blocks: a type-only
import is a dependency too). Each module falls under the contract of the most specific layer
that contains it, and may import only what that contract allows, plus anything outside the
project (the standard library, third-party packages). That ``import tui.app`` loads neither
paho nor aiosqlite is checked in a child process: tests/integration/test_imports.py.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO

PROJECT = ("gateway", "adapters", "rules", "sync", "tui", "central")
"""Top-level packages of the project; imports of anything else are not checked."""

ROOT = ("gateway",)
"""The bare ``gateway`` package: its ``__init__`` holds only ``__version__``."""
CORE = ("gateway.core",)
STORE = ("gateway.store",)
CONFIG = ("gateway.config",)
API = ("gateway.api",)


@dataclass(frozen=True)
class Contract:
    """A layer and the layers its modules may import (their own layer always)."""

    layer: str
    may_import: tuple[str, ...]


CONTRACTS = (
    # The core depends on nothing in the project.
    Contract("gateway.core", ROOT),
    Contract("gateway.store", ROOT + CORE),
    # The config checks rule settings with the rules' own checks (one place for each): the
    # rules are pure and import only the core, so this adds no cycle.
    Contract("gateway.config", ROOT + CORE + ("rules",)),
    # The parts beside each other import only the foundations, never each other, and never
    # the runtime (gateway.service, gateway.pipeline ...) on top of them.
    Contract("adapters", ROOT + CORE + STORE + CONFIG + API),
    Contract("sync", ROOT + CORE + STORE + CONFIG + API),
    Contract("rules", ROOT + CORE),
    # The TUI is its own process and speaks to the gateway only through the control API.
    Contract("tui", API),
    # The central read side reads the warehouse the ingest fills and builds the run report
    # with the gateway's own code (and its output: the same text), so both give the same figures.
    Contract(
        "central",
        ROOT
        + CORE
        + STORE
        + CONFIG
        + (
            "rules",
            "gateway.report",
            "gateway.report_output",
            # The rules' view of a run, so compliance is judged by the gateway's own rules.
            "gateway.rules_engine.run_context",
            "sync.ingest",
        ),
    ),
)

KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()
"""Pairs that break a contract and are accepted for now: none (a test below keeps it honest)."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_project_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _imported(tree: ast.AST) -> Iterator[str]:
    """The project modules a module's code imports (``from pkg import module`` resolved)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if _is_project_module(submodule) else node.module


def _project_imports() -> dict[str, set[str]]:
    imports: dict[str, set[str]] = {}
    for package in PROJECT:
        for path in sorted((REPO / package).rglob("*.py")):
            importer = _module_name(path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            imports[importer] = {
                name
                for name in _imported(tree)
                if name.split(".")[0] in PROJECT and not _within(name, importer)
            }
    return imports


def _contract_of(module: str) -> Contract | None:
    matching = [c for c in CONTRACTS if _within(module, c.layer)]
    return max(matching, key=lambda c: len(c.layer), default=None)


def _allowed(contract: Contract, imported: str) -> bool:
    if _within(imported, contract.layer):
        return True
    # The bare root is allowed as itself only, not as a way into gateway.service & co.
    return any(
        imported == prefix if prefix in ROOT else _within(imported, prefix)
        for prefix in contract.may_import
    )


def violations() -> set[tuple[str, str]]:
    """Every (importer, imported) pair that breaks its importer's contract."""
    found: set[tuple[str, str]] = set()
    for importer, names in _project_imports().items():
        contract = _contract_of(importer)
        if contract is None:
            continue  # the runtime and the commands sit on top: they may import any layer
        found.update((importer, name) for name in names if not _allowed(contract, name))
    return found


def test_the_checker_sees_imports_and_their_direction() -> None:
    # Guards the checker itself: it must resolve what the project really imports, or an
    # empty violation list would prove nothing.
    imports = _project_imports()
    assert imports["rules.model"] >= {"gateway.core.records", "gateway.core.runs"}
    assert "gateway.core.codecs.gs1" in imports["gateway.core.runs.converters"]
    rules = _contract_of("rules.emark")
    assert rules is not None
    assert rules.layer == "rules"
    assert not _allowed(rules, "gateway.service")
    assert not _allowed(rules, "adapters.base")
    assert _allowed(rules, "gateway.core.records")
    sync = _contract_of("sync.mqtt_uplink")
    assert sync is not None
    assert not _allowed(sync, "adapters.base")
    assert not _allowed(sync, "gateway.status")
    assert _allowed(sync, "gateway.store")
    core = _contract_of("gateway.core.runs.parsing")
    assert core is not None
    assert core.layer == "gateway.core"
    assert not _allowed(core, "gateway.store")
    assert _contract_of("gateway.service") is None


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.layer)
def test_no_new_import_breaks_a_contract(contract: Contract) -> None:
    new = sorted(
        (importer, imported)
        for importer, imported in violations() - KNOWN_VIOLATIONS
        if _contract_of(importer) == contract
    )
    assert new == [], f"{contract.layer} may import only {contract.may_import}"


def test_known_violations_are_still_real() -> None:
    # A pair fixed by a later step must leave the list, so the list only ever shrinks.
    assert sorted(KNOWN_VIOLATIONS - violations()) == []


def test_only_the_commands_import_the_central_side() -> None:
    # The gateway runs without the central side: only a ``lineside`` command module may
    # import ``central`` (lazily, inside the command), never the gateway, adapters, sync,
    # rules or TUI.
    importers = sorted(
        importer
        for importer, names in _project_imports().items()
        if any(_within(name, "central") for name in names)
        and not _within(importer, "central")
        and not _within(importer, "gateway.commands")
    )
    assert importers == []
