"""docs/warehouse-analytics.md names every column of every analytics view in order, and
every field of the reader's rows carries the description the docs and the API use."""

from __future__ import annotations

import ast
import re
import sqlite3

import pytest

from sync.ingest.migrations import gateway_backlog_ddl
from sync.ingest.migrations.analytics_ddl import VIEWS
from sync.ingest.migrations.pack_products_ddl import VIEW, index_statement, view_statements
from sync.ingest.migrations.typed_ddl import sqlite_statements
from tests.support.paths import REPO

PAGE = (REPO / "docs" / "warehouse-analytics.md").read_text(encoding="utf-8")


def _view_columns() -> dict[str, list[str]]:
    db = sqlite3.connect(":memory:")
    try:
        statements = (
            *sqlite_statements(),
            index_statement(False),
            *view_statements(False),
            *gateway_backlog_ddl.upgrade_statements(postgres=False),
        )
        for statement in statements:
            db.execute(statement)
        return {v: [r[1] for r in db.execute(f"PRAGMA table_info({v})")] for v in (VIEW, *VIEWS)}
    finally:
        db.close()


def _documented() -> dict[str, list[str]]:
    sections = re.split(r"^### `(\w+)`", PAGE, flags=re.MULTILINE)
    return {
        name: re.findall(r"^\| `(\w+)` \|", body, flags=re.MULTILINE)
        for name, body in zip(sections[1::2], sections[2::2], strict=True)
    }


def test_every_view_column_is_documented_in_order() -> None:
    documented = _documented()
    for view, columns in _view_columns().items():
        assert documented.get(view) == columns, view


@pytest.mark.parametrize("module", ["central/rows.py", "central/series_rows.py"])
def test_every_row_field_has_a_description(module: str) -> None:
    tree = ast.parse((REPO / module).read_text(encoding="utf-8"))
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes
    for cls in classes:
        body = cls.body
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                after = body[i + 1] if i + 1 < len(body) else None
                described = (
                    isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)
                )
                assert described, f"{cls.name}.{ast.unparse(node.target)}"
