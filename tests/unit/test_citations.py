"""Citations in the code point inside the repository, and what they cite is there.

A comment that cites ``docs/reference/reliability.md §7 row 6`` is only worth its words if a
reader of the repository can open that page and find that row. These tests read every
Python file of the shipped packages: a cited page must exist, a cited section must be a
heading of that page, a cited row a row of its table, and no citation may name a document
outside the repository (docs/architecture.md, "Where each behaviour lives, and its test").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.support.paths import REPO

PACKAGES = ("gateway", "adapters", "rules", "sync", "tui", "central")

REFERENCE_PAGES = ("reliability.md", "domain-rules.md", "glossary.md")
"""The reference pages, which must always be cited by their path under docs/reference/."""

OUTSIDE = re.compile(r"seed-production|\bbrief|\.\./shared|/home/|/Users/")
"""Documents that are not in the repository, or paths on someone's machine."""

BARE = re.compile(r"(?<![\w/.-])(domain-rules|reliability|glossary)(\.md)?`{0,2}\s*(§|\")")
"""A reference page cited by its name alone, without its path."""

CITATION = re.compile(
    r"(?P<page>docs/[\w/.-]+\.md)`{0,2}\s*"
    r"(?P<sections>(?:§[\d.]*\d(?:,\s*)?)+)?"
    r"(?:\s*rows?\s+(?P<rows>\d+(?:\s*(?:-|,|and)\s*\d+)*))?"
)
"""``docs/<page>.md``, optionally followed by ``§n.m`` sections and ``row n`` or ``rows n-m``."""


@dataclass(frozen=True)
class Citation:
    source: Path
    line: int
    page: str
    sections: tuple[str, ...]
    rows: tuple[int, ...]

    def where(self) -> str:
        return f"{self.source.relative_to(REPO)}:{self.line}"


def _sources() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))]


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _rows(spec: str | None) -> tuple[int, ...]:
    if spec is None:
        return ()
    rows: list[int] = []
    for part in re.split(r"\s*(?:,|and)\s*", spec):
        first, _, last = part.partition("-")
        rows.extend(range(int(first), int(last or first) + 1))
    return tuple(rows)


def _citations() -> list[Citation]:
    found = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for match in CITATION.finditer(text):
            found.append(
                Citation(
                    source=path,
                    line=_line_of(text, match.start()),
                    page=match["page"],
                    sections=tuple(re.findall(r"§([\d.]*\d)", match["sections"] or "")),
                    rows=_rows(match["rows"]),
                )
            )
    return found


@cache
def _page(page: str) -> str:
    return (REPO / page).read_text(encoding="utf-8")


def _headings(page: str) -> set[str]:
    return set(re.findall(r"^#+\s*§([\d.]+)", _page(page), re.MULTILINE))


def _has_row(page: str, section: str, row: int) -> bool:
    text = _page(page)
    start = re.search(rf"^#+\s*§{re.escape(section)}\b.*$", text, re.MULTILINE)
    if start is None:
        return False
    end = re.search(r"^#+\s", text[start.end() :], re.MULTILINE)
    body = text[start.end() : start.end() + end.start()] if end else text[start.end() :]
    return re.search(rf"^\|\s*{row}\s*\|", body, re.MULTILINE) is not None


def test_the_code_cites_pages_of_the_repository() -> None:
    citations = _citations()
    # The code cites the reference pages and the topic pages many times over; far fewer
    # would mean the pattern above stopped matching, not that the citations went away.
    assert len(citations) > 50
    assert {c.page for c in citations} >= {
        "docs/reference/reliability.md",
        "docs/reference/domain-rules.md",
        "docs/alarms.md",
    }


def test_no_citation_points_outside_the_repository() -> None:
    wrong = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for match in OUTSIDE.finditer(text):
            wrong.append(f"{path.relative_to(REPO)}:{_line_of(text, match.start())}: {match[0]}")
        for name in REFERENCE_PAGES:
            for match in re.finditer(re.escape(name), text):
                if not text[: match.start()].endswith("docs/reference/"):
                    line = _line_of(text, match.start())
                    wrong.append(f"{path.relative_to(REPO)}:{line}: {name} without its path")
        for match in BARE.finditer(text):
            line = _line_of(text, match.start())
            wrong.append(f"{path.relative_to(REPO)}:{line}: {match[0]!r} without its path")
    assert wrong == []


def test_every_cited_page_exists() -> None:
    missing = [f"{c.where()}: {c.page}" for c in _citations() if not (REPO / c.page).is_file()]
    assert missing == []


def test_every_cited_section_is_a_heading_of_its_page() -> None:
    missing = [
        f"{c.where()}: {c.page} has no §{section}"
        for c in _citations()
        if (REPO / c.page).is_file()
        for section in c.sections
        if section not in _headings(c.page)
    ]
    assert missing == []


def test_every_cited_row_is_in_its_section() -> None:
    cited = [c for c in _citations() if c.rows]
    assert cited, "the fault matrix rows are cited by number"
    missing = [
        f"{c.where()}: {c.page} §{c.sections[-1]} has no row {row}"
        for c in cited
        for row in c.rows
        if not c.sections or not _has_row(c.page, c.sections[-1], row)
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("text", "rows"),
    [("row 6", (6,)), ("rows 16-17", (16, 17)), ("rows 19, 22", (19, 22))],
)
def test_row_citations_are_read_as_written(text: str, rows: tuple[int, ...]) -> None:
    match = CITATION.search(f"(docs/reference/reliability.md §7 {text})")
    assert match is not None
    assert _rows(match["rows"]) == rows
