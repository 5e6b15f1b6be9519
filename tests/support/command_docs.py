"""The JSON documents' keys as docs/command-output.md lists them."""

from __future__ import annotations

import re

from tests.support.paths import REPO


def documented_keys(section: str) -> set[str]:
    """The keys in the table of a section (``## The report document``) of the page."""
    text = (REPO / "docs" / "command-output.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", body, flags=re.MULTILINE))
