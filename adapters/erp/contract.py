"""The ERP contract as data: the JSON Schema of one response page, and a checker for it.

The schema (``erp-runs.schema.json`` beside this module, documented in docs/erp-contract.md)
is the canonical form of what :mod:`adapters.erp.http_source` reads. This module checks a
decoded page against it and against :func:`gateway.core.runs.parse_run`, so that an ERP
developer hears both what breaks the contract and what the gateway would actually refuse.

The checker implements the JSON Schema 2020-12 keywords the schema uses (and refuses a
schema using any other), rather than adding a validator dependency for one small document.
Pure: no I/O besides reading the packaged schema, no clock reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from functools import cache
from importlib import resources
from typing import Final, Literal

from gateway.core.runs import RunRejection, parse_run

__all__ = [
    "SUPPORTED_KEYWORDS",
    "Finding",
    "check_page",
    "load_schema",
    "schema_violations",
]

SCHEMA_RESOURCE: Final = "erp-runs.schema.json"

SUPPORTED_KEYWORDS: Final = frozenset(
    {
        "$schema",
        "$id",
        "$defs",
        "$ref",
        "title",
        "description",
        "type",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "anyOf",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "minLength",
        "pattern",
        "if",
        "then",
        "else",
        "not",
        "minItems",
    }
)

Severity = Literal["rejected", "contract"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with a page.

    ``severity`` is ``rejected`` when the gateway refuses the page or the run (it will not be
    used), ``contract`` when the gateway tolerates it but the contract does not allow it.
    """

    path: str
    message: str
    severity: Severity

    def __str__(self) -> str:
        where = self.path or "(response)"
        return f"{where}: {self.message}"


@cache
def load_schema() -> Mapping[str, object]:
    """The packaged ERP response schema."""
    text = resources.files("adapters.erp").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    schema: Mapping[str, object] = json.loads(text)
    return schema


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: object, name: str) -> bool:
    actual = _json_type(value)
    return actual == name or (name == "number" and actual == "integer")


def _shown(value: object) -> str:
    kind = _json_type(value)
    if kind in ("object", "array"):
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text}" if kind != "null" else "null"


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Checker:
    def __init__(self, root: Mapping[str, object]) -> None:
        self.root = root

    def resolve(self, ref: str) -> Mapping[str, object]:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref is supported, not {ref!r}")
        node: object = self.root
        for part in ref[2:].split("/"):
            if not isinstance(node, Mapping):
                raise ValueError(f"$ref {ref!r} does not resolve")
            node = node[part]
        if not isinstance(node, Mapping):
            raise ValueError(f"$ref {ref!r} does not name a schema")
        return node

    def errors(self, schema: Mapping[str, object], value: object, path: str) -> list[Finding]:
        unknown = set(schema) - SUPPORTED_KEYWORDS
        if unknown:
            raise ValueError(f"schema keyword(s) not supported: {', '.join(sorted(unknown))}")
        out: list[Finding] = []
        ref = schema.get("$ref")
        if isinstance(ref, str):
            out += self.errors(self.resolve(ref), value, path)
        if "type" in schema:
            wanted = schema["type"]
            names = [wanted] if isinstance(wanted, str) else list(wanted)  # type: ignore[call-overload]
            if not any(_is_type(value, str(n)) for n in names):
                expected = " or ".join(f"{'an' if str(n)[0] in 'aeio' else 'a'} {n}" for n in names)
                # A wrong type makes every other keyword here meaningless.
                return [
                    *out,
                    Finding(path, f"expected {expected}, got {_shown(value)}", "contract"),
                ]
        if "enum" in schema:
            choices = schema["enum"]
            assert isinstance(choices, list)
            if not any(value == c and _json_type(value) == _json_type(c) for c in choices):
                listed = ", ".join(json.dumps(c) for c in choices)
                out.append(
                    Finding(path, f"expected one of {listed}, got {_shown(value)}", "contract")
                )
        if "const" in schema and not (
            value == schema["const"] and _json_type(value) == _json_type(schema["const"])
        ):
            out.append(Finding(path, f"expected {json.dumps(schema['const'])}", "contract"))
        out += self._number(schema, value, path)
        out += self._string(schema, value, path)
        out += self._object(schema, value, path)
        fewest = schema.get("minItems")
        if isinstance(fewest, int) and isinstance(value, list) and len(value) < fewest:
            out.append(Finding(path, f"expected at least {fewest} item(s)", "contract"))
        items = schema.get("items")
        if isinstance(items, Mapping) and isinstance(value, list):
            for index, item in enumerate(value):
                out += self.errors(items, item, _child(path, index))
        any_of = schema.get("anyOf")
        if isinstance(any_of, list):
            branches = [(branch, self.errors(branch, value, path)) for branch in any_of]
            if all(found for _, found in branches):
                # Report the branch that got furthest (the fewest complaints); "expected
                # null" only when nothing else is offered (a value was given, after all).
                offered = [found for branch, found in branches if branch != {"type": "null"}]
                candidates: list[list[Finding]] = offered or [found for _, found in branches]
                shortest: list[Finding] = min(candidates, key=len)
                out += _merge_type_mismatches(branches, path) or shortest
        negated = schema.get("not")
        if isinstance(negated, Mapping) and not self.errors(negated, value, path):
            out.append(Finding(path, "matches a form the contract excludes", "contract"))
        condition = schema.get("if")
        if isinstance(condition, Mapping):
            branch = schema.get("else" if self.errors(condition, value, path) else "then")
            if isinstance(branch, Mapping):
                out += self.errors(branch, value, path)
        return out

    @staticmethod
    def _number(schema: Mapping[str, object], value: object, path: str) -> list[Finding]:
        if not _is_type(value, "number"):
            return []
        assert isinstance(value, int | float)
        out: list[Finding] = []
        low, high, above = (
            schema.get("minimum"),
            schema.get("maximum"),
            schema.get("exclusiveMinimum"),
        )
        if isinstance(low, int | float) and value < low:
            out.append(Finding(path, f"expected at least {low:g}, got {value:g}", "contract"))
        if isinstance(high, int | float) and value > high:
            out.append(Finding(path, f"expected at most {high:g}, got {value:g}", "contract"))
        if isinstance(above, int | float) and value <= above:
            out.append(Finding(path, f"expected above {above:g}, got {value:g}", "contract"))
        return out

    @staticmethod
    def _string(schema: Mapping[str, object], value: object, path: str) -> list[Finding]:
        if not isinstance(value, str):
            return []
        out: list[Finding] = []
        shortest = schema.get("minLength")
        if isinstance(shortest, int) and len(value) < shortest:
            out.append(Finding(path, "expected text, got an empty string", "contract"))
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and value and not re.search(pattern, value):
            what = schema.get("description") or f"text matching {pattern}"
            out.append(Finding(path, f"{_shown(value)} is not {_first_clause(what)}", "contract"))
        return out

    def _object(self, schema: Mapping[str, object], value: object, path: str) -> list[Finding]:
        if not isinstance(value, dict):
            return []
        out: list[Finding] = []
        required = schema.get("required")
        if isinstance(required, list):
            out += [
                Finding(_child(path, str(name)), "is required but missing", "contract")
                for name in required
                if name not in value
            ]
        properties = schema.get("properties")
        known = properties if isinstance(properties, Mapping) else {}
        for key, item in value.items():
            sub = known.get(key)
            if isinstance(sub, Mapping):
                out += self.errors(sub, item, _child(path, key))
            elif schema.get("additionalProperties") is False:
                out.append(Finding(_child(path, key), "is not part of the contract", "contract"))
        return out


def _merge_type_mismatches(
    branches: list[tuple[Mapping[str, object], list[Finding]]], path: str
) -> list[Finding]:
    """One "expected a string or an integer" instead of the first branch's complaint alone."""
    expected: list[str] = []
    got = ""
    for _, found in branches:
        if len(found) != 1 or found[0].path != path or not found[0].message.startswith("expected "):
            return []
        wanted, _, got = found[0].message.removeprefix("expected ").partition(", got ")
        expected.append(wanted)
    if not got or len(expected) < 2:
        return []
    named = [e for e in expected if e != "a null"] or expected
    return [Finding(path, f"expected {' or '.join(named)}, got {got}", "contract")]


def _first_clause(description: object) -> str:
    """A schema description's first sentence, lower-cased, for "X is not <what>"."""
    text = str(description).split(";")[0].split(". ")[0].rstrip(".")
    return text[:1].lower() + text[1:] if not text.startswith("ISO") else text


def schema_violations(
    document: object, schema: Mapping[str, object] | None = None
) -> list[Finding]:
    """Every place ``document`` breaks the schema (the packaged one unless given), with paths.

    Raises ``ValueError`` if the schema uses a keyword this checker does not implement.
    """
    root = load_schema() if schema is None else schema
    return _Checker(root).errors(root, document, "")


def check_page(document: object, *, tz: tzinfo) -> list[Finding]:
    """What is wrong with one decoded ERP page: the contract's complaints and the gateway's.

    The gateway's reasons come from :func:`parse_run` for each row (``rejected``: that run
    would not be used); a top-level shape the gateway cannot page through is ``rejected``
    too. Everything else the schema finds is ``contract``.
    """
    findings = schema_violations(document)
    rows: Sequence[object] = ()
    if isinstance(document, list):
        rows = document
    elif isinstance(document, dict) and isinstance(document.get("runs"), list):
        rows = document["runs"]
    else:
        findings.insert(
            0,
            Finding("runs", "the gateway needs an object with a 'runs' list", "rejected"),
        )
    for index, row in enumerate(rows):
        where = _child("runs", index)
        if not isinstance(row, Mapping):
            findings.append(
                Finding(where, f"a run must be an object, got {_shown(row)}", "rejected")
            )
            continue
        parsed = parse_run(row, tz=tz)
        if isinstance(parsed, RunRejection):
            findings += [
                Finding(where, f"the gateway rejects this run: {reason}", "rejected")
                for reason in parsed.reasons
            ]
    return _grouped(findings)


def _grouped(findings: list[Finding]) -> list[Finding]:
    """Without repeats, each run's findings together (contract first, then the gateway's)."""

    def run_of(finding: Finding) -> int:
        match = re.match(r"runs\[([0-9]+)\]", finding.path)
        return int(match[1]) if match else -1

    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=run_of)
