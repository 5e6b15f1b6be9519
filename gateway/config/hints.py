""" "Did you mean" for config files: the nearest known key or id to a misspelt one.

Pure: it only looks at the config models and the raw TOML data.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""`` when none is close."""
    known = sorted(set(candidates))
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if not close:
        # Case slips (l1 for L1) score low in difflib; compare them case-blind too.
        close = [k for k in known if k.lower() == word.lower()][:1]
    return f"; did you mean {close[0]!r}?" if close else ""


def keys_at(root: type[BaseModel], loc: tuple[int | str, ...], raw: object) -> list[str]:
    """The keys a model accepts at ``loc`` (a pydantic error location, whose last part is the
    unknown key itself), walking ``raw`` alongside to pick the member of a ``kind`` union."""
    annotation: Any = root
    node: object = raw
    for item in loc[:-1]:
        if isinstance(item, int):
            node = node[item] if isinstance(node, list | tuple) and item < len(node) else None
            annotation = _item_type(annotation)
            continue
        model = _model_in(annotation, node)
        if model is None:
            return []
        field = model.model_fields.get(item)
        if field is None:
            continue  # the union member's name in a location (devices.0.opcua.id)
        node = node.get(item) if isinstance(node, Mapping) else None
        annotation = field.annotation
    model = _model_in(annotation, node)
    return list(model.model_fields) if model is not None else []


def _item_type(annotation: Any) -> Any:
    """The type of one item of a ``tuple[X, ...]`` annotation."""
    if get_origin(annotation) is Annotated:
        return _item_type(get_args(annotation)[0])
    if get_origin(annotation) in (tuple, list):
        return get_args(annotation)[0]
    return None


def _model_in(annotation: Any, node: object) -> type[BaseModel] | None:
    """The model a value of ``annotation`` is validated with; for a ``kind`` union, the
    member whose ``kind`` is the value's."""
    if get_origin(annotation) is Annotated:
        return _model_in(get_args(annotation)[0], node)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [m for m in (_model_in(a, node) for a in get_args(annotation)) if m]
        if len(members) == 1:
            return members[0]
        kind = node.get("kind") if isinstance(node, Mapping) else None
        for member in members:
            field = member.model_fields.get("kind")
            literal = field is not None and get_origin(field.annotation) is Literal
            if literal and field is not None and kind in get_args(field.annotation):
                return member
    return None
