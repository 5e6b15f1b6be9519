"""The operator TUI reads the gateway through its API only, and starts without its runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

PROJECT_PACKAGES = ("gateway", "adapters", "rules", "sync", "tui")
TUI_MAY_IMPORT = ("gateway.api", "tui")
API_MODULES = [REPO / "gateway" / "api.py", REPO / "gateway" / "api_fields.py"]
API_MODULES += [REPO / "gateway" / "api_snapshot.py", REPO / "gateway" / "api_answers.py"]


def project_imports(path: Path) -> list[str]:
    """The project modules ``path`` imports (``from tui import render`` is ``tui.render``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found if name.split(".")[0] in PROJECT_PACKAGES]


def within(name: str, allowed: tuple[str, ...]) -> bool:
    return any(name == a or name.startswith(f"{a}.") for a in allowed)


@pytest.mark.parametrize("path", sorted((REPO / "tui").glob("*.py")), ids=lambda p: p.name)
def test_the_tui_imports_only_the_gateway_api(path: Path) -> None:
    outside = [n for n in project_imports(path) if not within(n, TUI_MAY_IMPORT)]
    assert outside == [], f"{path.name} imports {outside}; the TUI may use gateway.api only"


@pytest.mark.parametrize("path", API_MODULES, ids=lambda p: p.name)
def test_the_api_imports_nothing_of_the_runtime(path: Path) -> None:
    allowed = (
        "gateway.api",
        "gateway.api_answers",
        "gateway.api_fields",
        "gateway.api_snapshot",
        "gateway.core.errors",  # the control branch of the one exception tree
        "rules.alarm_rates",
    )
    outside = [n for n in project_imports(path) if not within(n, allowed)]
    assert outside == [], f"{path.name} imports {outside}"


def test_importing_the_tui_loads_neither_mqtt_nor_sqlite_nor_the_store() -> None:
    heavy = ["paho", "aiosqlite", "httpx", "gateway.store", "gateway.status", "sync"]
    code = f"import sys, tui.app; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"
