"""The names a gateway announces to the warehouse: its site's name and its lines' names,
as a ``names`` device event (docs/warehouse-schema.md, "Dimensions").

Ids travel in every record; names live only in the config. At start the gateway records
the configured names when they differ from the last ``names`` event in its store, so the
warehouse can label its sites and lines without reading any gateway's config, and a
rename reaches it as a record like any other (in order, acknowledged, never lost).
"""

from __future__ import annotations

import json
import logging

from gateway.config import LinesideConfig
from gateway.core.clock import Clock
from gateway.core.records import DeviceEvent
from gateway.store import Store

log = logging.getLogger(__name__)

NAMES_KIND = "names"

LAST_NAMES = "SELECT detail FROM device_events WHERE kind = 'names' ORDER BY seq DESC LIMIT 1"


def names_detail(config: LinesideConfig) -> dict[str, object]:
    """``{"site_name": str | None, "lines": {line id: name}}`` of the config (lines without
    a name are left out)."""
    return {
        "site_name": config.gateway.site_name,
        "lines": {line.id: line.name for line in config.lines if line.name},
    }


async def last_announced(store: Store) -> dict[str, object] | None:
    """The detail of the last ``names`` event in the store, if any."""
    rows = await store.fetchall(LAST_NAMES)
    if not rows:
        return None
    try:
        detail = json.loads(rows[0][0])
    except (TypeError, ValueError):
        return None
    return detail if isinstance(detail, dict) else None


async def announce_names(config: LinesideConfig, store: Store, clock: Clock) -> bool:
    """Record the configured names if they differ from the last announced; whether it did.

    Nothing is recorded when no name is configured and none was ever announced.
    """
    detail = names_detail(config)
    last = await last_announced(store)
    if last is None and detail == {"site_name": None, "lines": {}}:
        return False
    if last == detail:
        return False
    store.submit(
        DeviceEvent(ts_us=clock.wall_us(), device=config.gateway.id, kind=NAMES_KIND, detail=detail)
    )
    log.info("names changed: recorded for the warehouse")
    return True


__all__ = ["LAST_NAMES", "NAMES_KIND", "announce_names", "last_announced", "names_detail"]
