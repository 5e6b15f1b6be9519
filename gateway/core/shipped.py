"""The files Lineside ships beside its code: the demo and example configs, the config's JSON
Schema, the broker configuration and ACL, and the systemd units.

In the source tree they live in ``config/`` and ``systemd/``; ``gateway/share/`` holds links
to those two folders, so the same files are the package data of the wheel
(``[tool.setuptools.package-data]`` in ``pyproject.toml``). Read through here, they are found
the same way from a checkout, an editable install or an installed wheel, whatever the
current directory is.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped_path(*parts: str) -> Path:
    """The path of a shipped file, e.g. ``shipped_path("config", "demo.toml")``.

    Wheels are installed unpacked, so the package's resources are plain files; a path is what
    the callers (the config loader, mosquitto) need.
    """
    root = files("gateway") / "share"
    return Path(str(root)).joinpath(*parts)


DEMO_CONFIG = shipped_path("config", "demo.toml")
"""The demo's config: one simulated line (``lineside demo``)."""
EXAMPLE_CONFIG = shipped_path("config", "example.toml")
"""The annotated example of a real line's config."""
