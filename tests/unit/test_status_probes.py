"""What the status snapshot says about each probe's tag: where it sits, and how often a
reading is expected (the TUI shows a reading's age once it is older than that)."""

from __future__ import annotations

from gateway.config import load_config
from gateway.status_views import probe_tags
from tests.support.paths import REPO


def test_probe_tags_carry_their_location_and_expected_interval() -> None:
    tags = probe_tags(load_config(REPO / "config" / "demo.toml"))
    assert tags["probes-opcua", "P1"] == ("product core", None), "subscribed: on change"
    assert tags["probes-opcua", "P2"] == ("chill room", None)
    assert tags["tt-modbus", "T1"] == ("infeed", 1.0), "polled every 1000 ms"
    assert tags["cw1", "net_weight"] == ("", None)
