"""A run as the store keeps each of its versions (a ``RunVersion`` record), built one way.

The poller, the operator's start and end, and every seeded store (tests, benches) write
versions; the ``runs`` table is rebuilt from them after a restart (``load_known_runs``), so
they must all carry the run's number, line and status exactly as its JSON form does.
"""

from __future__ import annotations

from typing import Literal

from gateway.core.records import RunVersion
from gateway.core.runs.json_form import run_to_json
from gateway.core.runs.model import ProductionRun

__all__ = ["run_version"]


def run_version(
    run: ProductionRun,
    ts_us: int,
    *,
    source: Literal["erp", "operator"] = "erp",
    actor: str | None = None,
) -> RunVersion:
    """The version record of ``run`` learnt at ``ts_us`` (µs since the epoch) from ``source``."""
    return RunVersion(
        ts_us=ts_us,
        run_number=run.run_number,
        line=run.line,
        status=str(run.status),
        source=source,
        payload=run_to_json(run),
        actor=actor,
    )
