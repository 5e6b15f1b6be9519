"""Small gateway configurations for tests."""

from __future__ import annotations

from pathlib import Path


def minimal_config_text(db_path: Path, **store: object) -> str:
    """A valid config with one line and no devices, as TOML text."""
    extra = "".join(f"{k} = {v!r}\n" for k, v in store.items())
    return (
        '[gateway]\nid = "gw-test"\nsite = "test-site"\n\n'
        f'[store]\npath = "{db_path}"\n{extra}\n'
        '[[lines]]\nid = "L1"\n'
    )
