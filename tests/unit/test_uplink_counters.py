"""Both uplinks keep the shared counters of sync.uplink.UplinkCounters under the same names."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from sync.https_uplink import HttpsUplink, HttpsUplinkStats
from sync.mqtt_uplink import MqttUplink, UplinkStats
from sync.uplink import Uplink, UplinkCounters


def _members(protocol: type) -> set[str]:
    return {
        name
        for name, value in vars(protocol).items()
        if isinstance(value, property) or inspect.iscoroutinefunction(value)
    }


SHARED = _members(UplinkCounters)


def test_the_shared_counters_are_the_ones_the_metrics_export() -> None:
    assert {
        "batches_sent",
        "batches_resent",
        "records_acked",
        "records_quarantined",
        "last_error",
    } == SHARED


@pytest.mark.parametrize("stats", [UplinkStats, HttpsUplinkStats])
def test_each_uplinks_counters_carry_the_shared_names(stats: type) -> None:
    names = {field.name for field in dataclasses.fields(stats)}
    assert names >= SHARED, f"{stats.__name__} lacks {sorted(SHARED - names)}"
    fresh = stats()
    assert all(getattr(fresh, name) in (0, "") for name in SHARED)


@pytest.mark.parametrize(("uplink", "kind"), [(MqttUplink, "mqtt"), (HttpsUplink, "https")])
def test_each_uplink_names_its_transport(
    uplink: type[MqttUplink] | type[HttpsUplink], kind: str
) -> None:
    # The snapshot's uplink "kind" and the metrics' label come from here, not the config.
    assert uplink.kind == kind
    assert inspect.iscoroutinefunction(uplink.run)
    assert "run" in _members(Uplink)
