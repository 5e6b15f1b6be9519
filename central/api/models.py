"""OpenAPI schemas of the row dataclasses, with each field's docstring as its description.

The rows (``central/rows.py``) are plain frozen dataclasses whose fields carry docstrings
(the string literal under a field). Python keeps no such docstrings at run time, so they are
read from the class's source with :mod:`ast`; a pydantic model with the same fields and
those descriptions is made once per dataclass and used only for the OpenAPI document (the
responses themselves are encoded by :mod:`central.api.jsonable`, so a model never
reshapes a figure).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import textwrap
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model


def field_docs(cls: type) -> dict[str, str]:
    """Field name → its docstring, from the class's source (empty if there is none)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    classes = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    if not classes:
        return docs
    for current, following in itertools.pairwise(classes[0].body):
        if (
            isinstance(current, ast.AnnAssign)
            and isinstance(current.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[current.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _annotation(hint: Any) -> Any:
    """The pydantic annotation of a dataclass field's type (rows → their models)."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return model_for(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        return list[_annotation(args[0])]  # type: ignore[misc]
    if origin is tuple:
        return list[Any]
    if origin in (typing.Union, types.UnionType):
        converted = tuple(_annotation(a) for a in args)
        return typing.Union[converted]  # noqa: UP007 (built from a tuple)
    if origin is dict or origin is typing.Literal:
        return hint
    if hint is Decimal:
        return str  # exact decimal text (central/api/jsonable.py)
    if hint in (str, int, float, bool, date, datetime, type(None)) or hint is Any:
        return hint
    if isinstance(hint, type) and issubclass(hint, str | int):
        return hint  # str/int enums
    return Any


@cache
def model_for(cls: type) -> type[BaseModel]:
    """The pydantic model documenting dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        description = docs.get(f.name)
        fields[f.name] = (_annotation(hints[f.name]), Field(description=description))
    doc = inspect.getdoc(cls) or None
    model: type[BaseModel] = create_model(
        cls.__name__,
        __config__=ConfigDict(title=cls.__name__, json_schema_extra=None),
        __doc__=doc,
        **fields,
    )
    return model
