"""/metrics of a gateway with real peers: a label scanner (simulated, restarted once), the
ERP simulator, mosquitto and the central ingest acknowledging every batch. The page parses
with prometheus-client's own parser and carries every metric the operations team uses."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from adapters.erp.simulator import ErpSimulator
from adapters.simulators import ScannerSimulator, ScenarioName
from gateway.config import load_config
from gateway.core.clock import ManualClock
from gateway.core.records import LabelScan, RejectedInput
from gateway.metrics import GatewayMetrics
from gateway.rules_engine import RulesEngine
from gateway.runs import RunIndex
from gateway.shedding import ShedLedger
from gateway.status import GatewayStatus
from gateway.store import Store
from sync.ingest import IngestService, IngestSettings
from tests.support.configs import minimal_config_text
from tests.support.gateway_tokens import token_for, tokens
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.running_gateway import gateway_in_process, health_toml, http_get
from tests.support.waiting import wait_for

VALID = b"]C1010950110153000317261201101234\x1d21000042"
BAD_CHECK_DIGIT = b"]C10109501101530004"

NAMED = {
    # family name (as the parser reports it) -> what the issue calls it
    "lineside_readings": "readings by kind",
    "lineside_rejected_inputs": "rejected inputs by reason",
    "lineside_alerts": "alerts by severity and state",
    "lineside_outbox_depth": "outbox depth",
    "lineside_outbox_oldest_age_seconds": "outbox oldest age",
    "lineside_sync_ack_latency_seconds": "acknowledgement latency",
    "lineside_device_link_state": "device link states",
    "lineside_device_reconnects": "device reconnect counts",
    "lineside_store_size_bytes": "store size",
    "lineside_store_commit_seconds": "store commit latency",
    "lineside_erp_staleness_seconds": "ERP staleness",
    "lineside_alarms_raised_last_10m": "alerts raised per line in the last 10 minutes",
    "lineside_alarm_rate_per_10m": "ISA-18.2 average alarm rate per 10 minutes",
    "lineside_alarm_peak_per_10m": "the busiest 10 minutes",
    "lineside_alarm_flood_periods_ratio": "share of 10-minute periods in flood",
    "lineside_alarms_stale": "stale alarms (active > 24 h)",
}


@pytest.fixture
async def scanner() -> AsyncIterator[ScannerSimulator]:
    # Only the reads the test sends (the scenario's own rate is negligible).
    async with ScannerSimulator(scenario=ScenarioName.NORMAL, pack_rate_hz=0.001) as sim:
        yield sim


def _samples(text: str) -> dict[str, list[Sample]]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    [match] = [s for s in samples if s.name == name and s.labels == labels]
    return match.value


async def test_metrics_page_parses_and_has_every_named_metric(
    tmp_path: Path, scanner: ScannerSimulator
) -> None:
    port = free_port()
    with Mosquitto(tmp_path / "broker") as broker:
        ingest = IngestService(
            IngestSettings(
                mqtt_host=broker.host,
                mqtt_port=broker.port,
                http_port=0,
                sqlite_path=tmp_path / "warehouse.db",
            )
        )
        ingest_task = asyncio.create_task(ingest.run())
        await asyncio.wait_for(ingest.ready.wait(), 15)
        try:
            async with ErpSimulator() as erp:
                config = tmp_path / "gw.toml"
                config.write_text(
                    minimal_config_text(tmp_path / "gw.db", commit_interval_ms=20).replace(
                        'id = "L1"\n', 'id = "L1"\n\n[[lines]]\nid = "L2"\n'
                    )
                    + '[[devices]]\nid = "scan1"\nkind = "scanner_tcp"\nline = "L1"\n'
                    f'role = "label_scanner"\nhost = "127.0.0.1"\nport = {scanner.port}\n'
                    "reconnect_min_s = 0.05\nreconnect_max_s = 0.2\n"
                    f'[erp]\nkind = "http"\nurl = "{erp.url}"\nretries = 0\n'
                    f'[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                    + health_toml(port)
                )
                text = await _exercise_and_scrape(config, scanner, port)
        finally:
            ingest_task.cancel()
            await asyncio.gather(ingest_task, return_exceptions=True)

    families = _samples(text)
    missing = {name: what for name, what in NAMED.items() if name not in families}
    assert not missing, f"missing metrics: {missing}"
    sent = families["lineside_sync_batches_sent"]
    assert _value(sent, "lineside_sync_batches_sent_total") >= 1
    resent = families["lineside_sync_batches_resent"]
    assert _value(resent, "lineside_sync_batches_resent_total") >= 0

    readings = families["lineside_readings"]
    assert _value(readings, "lineside_readings_total", kind="label_scan") == 1
    assert _value(readings, "lineside_readings_total", kind="pack") == 0
    rejected = families["lineside_rejected_inputs"]
    assert (
        _value(
            rejected, "lineside_rejected_inputs_total", device="scan1", reason="gs1_bad_check_digit"
        )
        == 1
    )
    links = families["lineside_device_link_state"]
    assert _value(links, "lineside_device_link_state", device="scan1", line="L1", state="up") == 1
    assert _value(links, "lineside_device_link_state", device="scan1", line="L1", state="down") == 0
    assert (
        _value(
            families["lineside_device_reconnects"],
            "lineside_device_reconnects_total",
            device="scan1",
        )
        == 1
    )
    assert (
        _value(
            families["lineside_device_link_down"], "lineside_device_link_down_total", device="scan1"
        )
        == 1
    )
    latency = families["lineside_sync_ack_latency_seconds"]
    acked_batches = _value(latency, "lineside_sync_ack_latency_seconds_count")
    assert acked_batches >= 1
    assert _value(latency, "lineside_sync_ack_latency_seconds_bucket", le="+Inf") == acked_batches
    assert _value(latency, "lineside_sync_ack_latency_seconds_sum") > 0
    assert _value(families["lineside_outbox_depth"], "lineside_outbox_depth") >= 0
    assert (
        _value(families["lineside_outbox_oldest_age_seconds"], "lineside_outbox_oldest_age_seconds")
        >= 0
    )
    assert _value(families["lineside_store_size_bytes"], "lineside_store_size_bytes") > 0
    assert _value(families["lineside_store_commit_seconds"], "lineside_store_commit_seconds") > 0
    staleness = _value(families["lineside_erp_staleness_seconds"], "lineside_erp_staleness_seconds")
    assert 0 <= staleness < 60, "the ERP simulator answered at start-up"
    # The label's batch (1234) and use-by are not the ERP run's: CRITICAL alerts, counted.
    alerts = families["lineside_alerts"]
    critical_open = _value(
        alerts, "lineside_alerts", severity="critical", state="active-unacknowledged"
    )
    assert critical_open >= 1
    assert len(alerts) == 15, "every severity x state, zeros included"
    assert not math.isnan(sum(s.value for s in alerts))
    # The alarm load (issue 17): the wrong label's alerts, on L1 and for the whole gateway.
    raised = _value(
        families["lineside_alarms_raised_last_10m"], "lineside_alarms_raised_last_10m", line="L1"
    )
    assert raised >= 1
    rate = families["lineside_alarm_rate_per_10m"]
    assert _value(rate, "lineside_alarm_rate_per_10m", line="") > 0
    assert _value(rate, "lineside_alarm_rate_per_10m", line="L2") == 0
    flood = families["lineside_alarm_flood_periods_ratio"]
    assert _value(flood, "lineside_alarm_flood_periods_ratio", line="L1") == 0
    assert _value(families["lineside_alarms_stale"], "lineside_alarms_stale", line="") == 0
    uplink = families["lineside_sync_link_state"]
    assert _value(uplink, "lineside_sync_link_state", kind="mqtt", state="up") == 1


async def _exercise_and_scrape(config: Path, scanner: ScannerSimulator, port: int) -> str:
    async with gateway_in_process(config) as status:
        adapter = status.devices[0]
        await wait_for(lambda: str(adapter.state) == "up", timeout=20)
        await scanner.wait_for_clients(1)
        await scanner.send(VALID + b"\r\n")
        await scanner.send(BAD_CHECK_DIGIT + b"\r\n")
        await wait_for(lambda: status.readings["label_scan"] == 1, timeout=20)
        await wait_for(lambda: sum(status.rejected.values()) == 1, timeout=20)

        # One outage of the scanner and its recovery.
        await scanner.stop()
        await wait_for(lambda: status.link_down["scan1"] == 1, timeout=20)
        await scanner.start()
        await wait_for(lambda: status.reconnects["scan1"] == 1, timeout=30)
        await wait_for(lambda: str(adapter.state) == "up", timeout=20)

        # The label scan and the rest reach the warehouse: acknowledgements are timed.
        await wait_for(lambda: status.ack_latency.total >= 1, timeout=30)
        assert status.engine.book.active(), "the wrong label raised alerts"
        response = await http_get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text


async def test_https_uplink_acknowledgements_are_timed_too(tmp_path: Path) -> None:
    port = free_port()
    ingest = IngestService(
        IngestSettings(
            mqtt_enabled=False,
            http_port=0,
            sqlite_path=tmp_path / "warehouse.db",
            gateway_tokens=tokens("gw-test"),
        )
    )
    ingest_task = asyncio.create_task(ingest.run())
    await asyncio.wait_for(ingest.ready.wait(), 15)
    token = tmp_path / "ingest-token"
    token.write_text(token_for("gw-test") + "\n")
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db", commit_interval_ms=20)
        + f'[sync.https]\nurl = "http://127.0.0.1:{ingest.http_port}/v1/ingest"\n'
        + f'token = {{ file = "{token}" }}\n'
        + health_toml(port)
    )
    try:
        async with gateway_in_process(config) as status:
            # The gateway_started event is the first record: its batch is acknowledged.
            await wait_for(lambda: status.ack_latency.total >= 1, timeout=30)
            await wait_for(lambda: status.counters().records_acked >= 1, timeout=30)
            text = (await http_get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        ingest_task.cancel()
        await asyncio.gather(ingest_task, return_exceptions=True)
    families = _samples(text)
    latency = families["lineside_sync_ack_latency_seconds"]
    assert _value(latency, "lineside_sync_ack_latency_seconds_count") >= 1
    acked = families["lineside_sync_records_acked"]
    assert _value(acked, "lineside_sync_records_acked_total") >= 1
    uplink = families["lineside_sync_link_state"]
    assert _value(uplink, "lineside_sync_link_state", kind="https", state="up") == 1
    # The uplinks' shared counters, under the same names as the MQTT uplink's.
    sent = families["lineside_sync_batches_sent"]
    assert _value(sent, "lineside_sync_batches_sent_total") >= 1
    quarantined = families["lineside_sync_records_quarantined"]
    assert _value(quarantined, "lineside_sync_records_quarantined_total") == 0


async def test_shed_records_are_exported_per_device_and_kind(tmp_path: Path) -> None:
    config_path = tmp_path / "gw.toml"
    config_path.write_text(minimal_config_text(tmp_path / "gw.db", max_pending_rows=1000))
    config = load_config(config_path)
    clock = ManualClock()
    ledger = ShedLedger()
    for i in range(3):
        ledger.shed(LabelScan(ts_us=i, line="L1", device="scan1", raw=b"x"), i, 1000, 1000)
    ledger.shed(
        RejectedInput(ts_us=9, source="PT", tag="P1", raw="nan", reason="non_finite"), 9, 1000, 1000
    )
    async with Store(config.store, clock) as store:
        runs = RunIndex()
        status = GatewayStatus(
            config,
            store=store,
            engine=RulesEngine(config.rules, runs, clock),
            runs=runs,
            clock=clock,
            shedding=ledger,
        )
        text = (await GatewayMetrics(status).render()).decode()
        intake = (await status.snapshot())["system"]["intake"]
    assert intake == {
        "shedding": True,
        "shed_total": 4,
        "shed": {"PT": {"rejected_inputs": 1}, "scan1": {"label_scans": 3}},
        "backpressure_at": 500,
        "max_pending_rows": 1000,
    }
    families = _samples(text)
    shed = families["lineside_intake_shed_records"]
    assert (
        _value(shed, "lineside_intake_shed_records_total", device="scan1", kind="label_scans") == 3
    )
    assert (
        _value(shed, "lineside_intake_shed_records_total", device="PT", kind="rejected_inputs") == 1
    )
    assert _value(families["lineside_intake_shedding"], "lineside_intake_shedding") == 1
    assert _value(families["lineside_store_pending_limit"], "lineside_store_pending_limit") == 1000
