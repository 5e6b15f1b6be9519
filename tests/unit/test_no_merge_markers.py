"""No project file keeps a merge's conflict markers: a document or module with one still
parses as text (Markdown renders it, a docstring hides it), so nothing else would notice."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.paths import REPO

MARKER = re.compile(rb"^(<{7} |>{7} |={7}$)", re.MULTILINE)
NEWLINE = b"\n"
TEXT_SUFFIXES = (".py", ".md", ".toml", ".json", ".sql", ".html", ".css", ".service", ".txt")


SKIPPED_DIRS = {"var", "node_modules", "__pycache__", "build", "dist"}


def _project_files() -> list[Path]:
    """The checkout's text files, without hidden folders (.git, .venv, caches) or run data."""
    found = []
    for path in REPO.rglob("*"):
        parts = path.relative_to(REPO).parts
        if any(p.startswith(".") or p in SKIPPED_DIRS or p.endswith(".egg-info") for p in parts):
            continue
        if path.suffix in TEXT_SUFFIXES and path.is_file():
            found.append(path)
    return found


def test_no_project_text_file_holds_a_conflict_marker() -> None:
    files = _project_files()
    assert len(files) > 100  # the whole checkout was read, not an empty listing
    found = [
        f"{path.relative_to(REPO)}:{text[: m.start()].count(NEWLINE) + 1}"
        for path in files
        for text in [path.read_bytes()]
        for m in MARKER.finditer(text)
    ]
    assert found == []
