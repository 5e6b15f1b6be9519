"""The layering rules of the house, enforced mechanically."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import REPO

PURE = [
    REPO / "rules",
    REPO / "gateway" / "core" / "codecs",
    REPO / "gateway" / "core" / "errors.py",
    REPO / "gateway" / "core" / "link.py",
    REPO / "gateway" / "core" / "records.py",
    REPO / "gateway" / "core" / "runs",
    REPO / "adapters" / "roles.py",
    REPO / "adapters" / "rejections.py",
    REPO / "adapters" / "pack_signals.py",
    REPO / "adapters" / "opcua" / "browse_fragment.py",
    REPO / "adapters" / "erp" / "sql_guard.py",
    REPO / "gateway" / "shedding.py",
]
FORBIDDEN_IN_PURE = {
    "asyncio",
    "socket",
    "asyncua",
    "pymodbus",
    "paho",
    "httpx",
    "aiosqlite",
    "time",
}


def _python_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "path",
    [p for root in PURE for p in _python_files(root)],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_pure_modules_do_no_io_and_read_no_clock(path: Path) -> None:
    assert not (_imports(path) & FORBIDDEN_IN_PURE)
