"""The fleet generator's pure parts: the records each gateway produces, its identities and
options (bench/fleet_records.py, bench/fleet_gateways.py, bench/fleet_cli.py)."""

from __future__ import annotations

import socket
from collections import Counter
from pathlib import Path

import pytest

from bench.fleet_cli import parser, spec_from
from bench.fleet_credentials import fleet_credentials, fleet_tokens, write_ack_keys
from bench.fleet_descriptors import SELECT_LIMIT, descriptors_kept_low, sockets_below
from bench.fleet_gateways import FleetSpec
from bench.fleet_records import (
    SIMULATED_START_US,
    STREAM_OF_KIND,
    TimeBase,
    expected_streams,
    fleet_record,
    kind_of,
)
from gateway.core.records import AlertRecord, LabelScan, PackEvent, TemperatureReading
from sync.ingest.ack_keys import read_ack_keys
from sync.ingest.auth import read_tokens


def test_every_kind_of_record_comes_in_a_hundred() -> None:
    kinds = Counter(kind_of(i) for i in range(100))
    assert kinds == {"alert": 2, "scan": 8, "temperature": 20, "pack": 70}
    assert expected_streams(100) == {STREAM_OF_KIND[kind]: n for kind, n in kinds.items()}


def test_records_are_real_gateway_records_on_the_simulated_time_base() -> None:
    time_base = TimeBase(start_us=1_000_000, step_us=10)
    records = [fleet_record(i, time_base) for i in range(100)]
    types = {type(r) for r in records}
    assert types == {PackEvent, TemperatureReading, LabelScan, AlertRecord}
    assert [r.ts_us for r in records] == [1_000_000 + 10 * i for i in range(100)]
    alerts = [r for r in records if isinstance(r, AlertRecord)]
    assert [a.state for a in alerts] == ["raised", "cleared"]
    assert TimeBase().at(0) == SIMULATED_START_US


def test_the_same_index_gives_the_same_record() -> None:
    assert fleet_record(49, TimeBase()) == fleet_record(49, TimeBase())


def test_gateways_are_spread_over_the_sites_with_ids_of_their_own() -> None:
    identities = FleetSpec(gateways=5, sites=2).identities()
    assert identities == [
        ("fleet-gw0001", "fleet-site01"),
        ("fleet-gw0002", "fleet-site02"),
        ("fleet-gw0003", "fleet-site01"),
        ("fleet-gw0004", "fleet-site02"),
        ("fleet-gw0005", "fleet-site01"),
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"gateways": 0},
        {"gateways": 2, "sites": 3},
        {"gateways": 2, "records_per_s": -1.0},
        {"gateways": 2, "transport": "https"},
    ],
)
def test_impossible_fleets_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FleetSpec(**options)  # type: ignore[arg-type]


def test_credentials_give_every_gateway_its_own_user_and_ack_key(tmp_path: Path) -> None:
    spec = fleet_credentials(FleetSpec(gateways=3))
    gateways = [gw for gw, _ in spec.identities()]
    assert sorted(spec.mqtt_passwords) == sorted(spec.ack_keys) == gateways
    assert len(set(spec.ack_keys.values())) == 3
    path = write_ack_keys(tmp_path / "ack-keys", spec.ack_keys)
    assert read_ack_keys(path) == dict(spec.ack_keys)
    assert path.stat().st_mode & 0o077 == 0


def test_tokens_name_their_gateway() -> None:
    tokens = fleet_tokens(FleetSpec(gateways=2, transport="https", ingest_url="https://x"))
    assert all(token.startswith(f"{gw}.") for gw, token in tokens.items())


def test_the_cli_writes_what_the_ingest_and_the_broker_need(tmp_path: Path) -> None:
    https = spec_from(
        parser().parse_args(
            [
                "--gateways",
                "4",
                "--ingest-url",
                "https://ingest:8443/v1/ingest",
                "--ingest-tokens",
                str(tmp_path / "tokens"),
            ]
        )
    )
    assert https.transport == "https"
    assert sorted(read_tokens(tmp_path / "tokens")) == sorted(https.tokens)
    mqtt = spec_from(
        parser().parse_args(
            ["--broker", "10.0.0.5:8883", "--rate", "5", "--credentials", str(tmp_path / "c")]
        )
    )
    assert (mqtt.broker_host, mqtt.broker_port, mqtt.records_per_s) == ("10.0.0.5", 8883, 5.0)
    assert read_ack_keys(tmp_path / "c" / "ack-keys") == dict(mqtt.ack_keys)
    users = (tmp_path / "c" / "gateways.passwd").read_text().splitlines()
    assert sorted(line.split(":", 1)[0] for line in users) == sorted(mqtt.mqtt_passwords)


def test_files_opened_while_the_low_descriptors_are_held_sit_above_them(tmp_path: Path) -> None:
    below = sockets_below(40)  # 40 clients' sockets
    with descriptors_kept_low(below):
        kept = (tmp_path / "store").open("w")
    try:
        assert kept.fileno() >= below - 1
        with socket.socket() as sock:
            assert sock.fileno() < below  # the lowest free number again
    finally:
        kept.close()
    assert sockets_below(10_000) < SELECT_LIMIT
