"""Figure 9: end to end, the way a user measures it, and sustained delivery on the defaults.

The job: an OPC UA server with ``delivery_probes`` variables each changing ``hz`` times a
second, the gateway subscribed to all of them (HACCP limits on every probe, every reading
joined to its run), its MQTT uplink on the default settings, and ``lineside ingest``'s MQTT
consumer committing to a SQLite warehouse. For each rate the window measures what was
offered, stored and delivered (records committed by the warehouse), how the outbox moved
(records per second; flat means delivery keeps up), and CPU per delivered record of the
gateway and of the ingest. Beside it, in the same run, on the same server: the bare relay
(``bench.bare probe-relay``), asyncua → paho, one QoS 1 message per change.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import configs
from bench.common import GatewayProcess, JsonPeer, count, cpu_seconds
from bench.phases import Phase, Sizes, ingest_peer, run_json, slope
from tests.support.mosquitto import Mosquitto

QUEUE_SIZE = 50
RELAY_TOPIC = "bench/relay/probes"
"""Not a Lineside topic: the ingest does not take the bare relay's messages."""


def phase(sizes: Sizes, work: Path) -> Phase:
    """Gateway and ingest CPU per delivered record, and the outbox trend, at each rate."""
    folder = work / "delivery"
    folder.mkdir()
    result = Phase()
    rates = [float(hz) for hz in sizes.delivery_hz.split(",")]
    _, cert, key = configs.make_tls(folder)
    with (
        Mosquitto(folder / "broker") as broker,
        JsonPeer(
            ["bench.peers", "opcua", "--probes", str(sizes.delivery_probes)],
            log=folder / "opcua.log",
        ) as server,
        ingest_peer(folder, broker, cert, key) as ingest,
    ):
        endpoint = server.ready["endpoint"]
        server.call(cmd="probes", hz=rates[0])
        bare = run_json(
            [
                "bench.bare",
                "probe-relay",
                "--endpoint",
                endpoint,
                "--nodes",
                str(sizes.delivery_probes),
                "--publishing-ms",
                str(sizes.publishing_ms),
                "--queue-size",
                str(QUEUE_SIZE),
                "--mqtt-port",
                str(broker.port),
                "--topic",
                RELAY_TOPIC,
                "--warmup",
                str(sizes.warmup_s),
                "--seconds",
                str(sizes.delivery_window_s),
            ],
            log=folder / "relay.log",
        )
        server.call(cmd="probes", hz=0)
        result.bare = {
            "relayed_per_s": bare["per_s"],
            "cpu_us_per_record": bare["cpu_us"],
            "rss_mb": bare["rss_mb"],
        }
        db = folder / "gateway.db"
        configs.probe_gateway(
            folder / "gateway.toml",
            db,
            endpoint,
            sizes.delivery_probes,
            publishing_ms=sizes.publishing_ms,
            queue_size=QUEUE_SIZE,
            sync=_sync(broker.port, sizes.delivery_sync),
        )
        with GatewayProcess(folder / "gateway.toml", folder / "gateway.log") as gateway:
            for hz in rates:
                tag = f"{round(hz * sizes.delivery_probes)}"
                server.call(cmd="probes", hz=hz)
                time.sleep(sizes.warmup_s)
                figures = _window(gateway, ingest, server, db, sizes.delivery_window_s)
                for name, value in figures.items():
                    result.gateway[f"{name}_{tag}"] = value
                result.gateway[f"rss_mb_{tag}"] = gateway.rss_mb()
            server.call(cmd="probes", hz=0)
            gateway.stop()
        stats = ingest.call(cmd="stats")
    result.gateway["rates"] = [round(hz * sizes.delivery_probes) for hz in rates]
    result.gateway["sync"] = sizes.delivery_sync
    result.counts = {
        "readings_stored": count(db, "SELECT count(*) FROM temperatures"),
        "outbox_left": count(db, "SELECT count(*) FROM outbox"),
        "warehouse_inserted": int(stats["inserted"]),
        "warehouse_conflicts": int(stats["conflicts"]),
    }
    result.notes.append(
        f"{sizes.delivery_probes} OPC UA probe variables at "
        f"{', '.join(f'{hz:g}' for hz in rates)} changes per second each, publishing interval "
        f"{sizes.publishing_ms} ms, queue size {QUEUE_SIZE}; the gateway on "
        + (
            f"[sync.mqtt] batch_records, batch_bytes, window = {sizes.delivery_sync}"
            if sizes.delivery_sync
            else "the default [sync.mqtt] settings"
        )
        + "; the ingest's MQTT consumer commits to SQLite; "
        f"{sizes.warmup_s:g} s warm-up and a {sizes.delivery_window_s:g} s window per rate; "
        "bare: asyncua → paho, one QoS 1 message per change, nothing stored"
    )
    return result


def _sync(port: int, override: str) -> str:
    """``[sync.mqtt]`` on the defaults, or with ``RECORDS,BYTES,WINDOW`` when given."""
    if not override:
        return configs.mqtt_sync(port)
    records, size, window = (int(part) for part in override.split(","))
    return configs.mqtt_sync(port, batch_records=records, batch_bytes=size, window=window)


def _window(
    gateway: GatewayProcess, ingest: JsonPeer, server: JsonPeer, db: Path, seconds: float
) -> dict[str, float]:
    """One measurement window: rates, the outbox trend and CPU per delivered record."""
    stored_sql = "SELECT count(*) FROM temperatures"
    outbox_sql = "SELECT count(*) FROM outbox"
    started = time.monotonic()
    writes0 = int(server.call(cmd="stats")["writes"])
    stored0 = count(db, stored_sql)
    delivered0 = int(ingest.call(cmd="stats")["inserted"])
    gateway_cpu0, ingest_cpu0 = gateway.cpu_seconds(), cpu_seconds(ingest.pid)
    outbox: list[tuple[float, float]] = [(0.0, count(db, outbox_sql))]
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(min(0.5, seconds - elapsed))
        outbox.append((time.monotonic() - started, count(db, outbox_sql)))
    elapsed = time.monotonic() - started
    gateway_cpu = gateway.cpu_seconds() - gateway_cpu0
    ingest_cpu = cpu_seconds(ingest.pid) - ingest_cpu0
    delivered = int(ingest.call(cmd="stats")["inserted"]) - delivered0
    stored = count(db, stored_sql) - stored0
    writes = int(server.call(cmd="stats")["writes"]) - writes0
    return {
        "offered_per_s": writes / elapsed,
        "stored_per_s": stored / elapsed,
        "delivered_per_s": delivered / elapsed,
        "outbox_growth_per_s": slope(outbox),
        "outbox_end": outbox[-1][1],
        "gateway_cpu_us_per_record": gateway_cpu * 1e6 / max(delivered, 1),
        "gateway_cpu_pct": gateway_cpu * 100 / elapsed,
        "ingest_cpu_us_per_record": ingest_cpu * 1e6 / max(delivered, 1),
        "ingest_cpu_pct": ingest_cpu * 100 / elapsed,
    }


__all__ = ["phase"]
