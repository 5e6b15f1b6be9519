"""docs/warehouse-schema.md names every column of every warehouse view and every flag bit,
so the page cannot fall behind a migration or a new flag."""

from __future__ import annotations

import re

from gateway.core.records import RecordFlag
from sync.ingest.warehouse import edge_columns
from tests.support.paths import REPO

PAGE = (REPO / "docs" / "warehouse-schema.md").read_text(encoding="utf-8")


def _documented_columns() -> dict[str, list[str]]:
    sections = re.split(r"^### `(\w+)`", PAGE, flags=re.MULTILINE)
    return {
        name: re.findall(r"^\| `(\w+)` \|", body, flags=re.MULTILINE)
        for name, body in zip(sections[1::2], sections[2::2], strict=True)
    }


def test_every_view_column_is_documented_in_order() -> None:
    documented = _documented_columns()
    for stream, columns in edge_columns().items():
        assert documented.get(stream) == [name for name, _ in columns], stream


def test_every_flag_bit_is_documented() -> None:
    for flag in RecordFlag:
        assert re.search(rf"^\| \d+ \| {flag.value} \| `{flag.name}` \|", PAGE, re.M), flag.name
