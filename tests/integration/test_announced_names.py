"""The gateway announces its configured names to the warehouse as a ``names`` device event
at start, only when they differ from the last one in its store (docs/warehouse-schema.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.announced_names import announce_names, names_detail
from gateway.config import LinesideConfig, parse_config
from gateway.core.clock import ManualClock
from gateway.core.errors import ConfigError
from gateway.store import Store


def _config(db: Path, *, site_name: str | None = None, **lines: str) -> LinesideConfig:
    gateway: dict[str, Any] = {"id": "gw-test", "site": "test-site"}
    if site_name is not None:
        gateway["site_name"] = site_name
    return parse_config(
        {
            "gateway": gateway,
            "store": {"path": str(db)},
            "lines": [{"id": line, "name": name} for line, name in lines.items()] or [{"id": "L1"}],
        }
    )


async def _announced(store: Store) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await store.fetchall(
        "SELECT device, kind, detail FROM device_events WHERE kind = 'names' ORDER BY seq"
    )
    return [(device, kind, json.loads(detail)) for device, kind, detail in rows]


async def test_names_are_recorded_once_and_again_when_they_change(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    first = _config(db, site_name="Hull smokehouse", L1="Fillet", L2="Portions")
    async with Store(first.store, ManualClock(wall_us=1_000)) as store:
        assert await announce_names(first, store, store.clock)
        await store.commit_pending()
        assert not await announce_names(first, store, store.clock)  # unchanged: nothing
        renamed = _config(db, site_name="Hull smokehouse", L1="Fillet", L2="Trim")
        assert await announce_names(renamed, store, store.clock)
        await store.commit_pending()
        assert await _announced(store) == [
            (
                "gw-test",
                "names",
                {"site_name": "Hull smokehouse", "lines": {"L1": "Fillet", "L2": "Portions"}},
            ),
            (
                "gw-test",
                "names",
                {"site_name": "Hull smokehouse", "lines": {"L1": "Fillet", "L2": "Trim"}},
            ),
        ]


async def test_a_gateway_without_names_announces_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path / "store.db")
    assert names_detail(config) == {"site_name": None, "lines": {}}
    async with Store(config.store, ManualClock(wall_us=1_000)) as store:
        assert not await announce_names(config, store, store.clock)
        await store.commit_pending()
        assert await _announced(store) == []


def test_site_name_is_strict(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="site_name"):
        _config(tmp_path / "store.db", site_name="")
    with pytest.raises(ConfigError, match="site_name"):
        _config(tmp_path / "store.db", site_name="x" * 201)
