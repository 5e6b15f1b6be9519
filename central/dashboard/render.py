"""The dashboard's templates: Jinja2 with autoescape on for every template.

Everything shown comes from the warehouse, which stores what gateways sent: untrusted text.
Autoescape writes it as text, never markup; the only values marked safe are the charts'
``data:`` URIs, built here from SVG bytes (an ``<img>`` never runs a script in an SVG).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from central.dashboard import format as fmt

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STYLESHEET = HERE / "static" / "dashboard.css"


def svg_uri(svg: bytes) -> str:
    """``svg`` as a ``data:`` URI for an ``<img>`` (base64: nothing in it is markup)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def environment() -> Environment:
    """The templates' environment: autoescaped, undefined names are errors."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=fmt.number,
        count=fmt.count,
        when=fmt.when,
        duration=fmt.duration,
        age=fmt.age,
        verdict=fmt.verdict,
        seg=fmt.segment,
    )
    env.globals["DASH"] = fmt.DASH
    return env


class Renderer:
    """Renders a page template with what every page shares."""

    def __init__(self, *, refresh_s: int | None = 60) -> None:
        self._env = environment()
        self._refresh_s = refresh_s

    def page(self, template: str, **context: Any) -> str:
        """``template`` rendered with ``context`` (and the refresh interval)."""
        context.setdefault("refresh_s", self._refresh_s)
        return self._env.get_template(template).render(**context)


__all__ = ["STYLESHEET", "Renderer", "environment", "svg_uri"]
