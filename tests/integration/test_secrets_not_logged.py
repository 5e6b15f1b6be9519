"""No configured secret ever appears in the gateway's log (plain or JSON), on /metrics or on
/readyz: a gateway run at debug level with a broker password (systemd credential), an ERP
token (environment; sent with every poll to the ERP simulator) and an OPC UA password
(file; its server is unreachable, so errors are logged); and the redaction itself, fed the
secrets directly."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from adapters.erp.simulator import ErpSimulator
from gateway.config import load_config
from gateway.logs import configure_logging
from tests.support.configs import minimal_config_text
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.running_gateway import answers, gateway_process, health_toml, http_get
from tests.support.waiting import wait_for

MQTT_PASSWORD = "mqtt-Pa55-7hq2xk"
ERP_TOKEN = "erp-tok-9f8e7d6c5b4a"
OPCUA_PASSWORD = "opc-pw-Zx81Lk"
SECRETS = (MQTT_PASSWORD, ERP_TOKEN, OPCUA_PASSWORD)

PLAIN_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR)")


def secret_config(tmp_path: Path, broker: Mosquitto, erp_url: str, fmt: str, health: int) -> Path:
    (tmp_path / "opcua-pw").write_text(OPCUA_PASSWORD + "\n")
    credentials = tmp_path / "credentials"
    credentials.mkdir(exist_ok=True)
    (credentials / "mqtt-password").write_text(MQTT_PASSWORD + "\n")
    gateway = minimal_config_text(tmp_path / "gw.db", commit_interval_ms=20).replace(
        'site = "test-site"', f'site = "test-site"\nlog_format = "{fmt}"\nlog_level = "debug"'
    )
    # An OPC UA server that is not there: link-down errors are logged.
    opcua = (
        '[[devices]]\nid = "cw1"\nkind = "opcua"\nline = "L1"\nrole = "temperature_probe"\n'
        f'endpoint = "opc.tcp://127.0.0.1:{free_port()}"\nusername = "op"\n'
        'password = { file = "opcua-pw" }\nreconnect_min_s = 0.05\nreconnect_max_s = 0.2\n'
        '[[devices.groups]]\ntags = [{ name = "P1", node = "ns=2;s=P1" }]\n'
    )
    # The ERP simulator: the token travels in the headers of every poll.
    erp = (
        f'[erp]\nkind = "http"\nurl = "{erp_url}"\n'
        'token = { env = "LINESIDE_TEST_ERP_TOKEN" }\nretries = 0\npoll_interval_s = 1\n'
    )
    # A broker that accepts the login.
    mqtt = (
        f'[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nusername = "gw"\n'
        'password = { credential = "mqtt-password" }\n'
    )
    config = tmp_path / "gw.toml"
    config.write_text(gateway + opcua + erp + mqtt + health_toml(health))
    return config


@pytest.mark.parametrize("fmt", ["plain", "json"])
async def test_no_secret_in_logs_metrics_or_readiness(
    tmp_path: Path, fmt: Literal["plain", "json"]
) -> None:
    health = free_port()
    base = f"http://127.0.0.1:{health}"
    async with ErpSimulator() as erp:
        with Mosquitto(tmp_path / "broker") as broker:
            config = secret_config(tmp_path, broker, erp.url, fmt, health)
            env = {
                "CREDENTIALS_DIRECTORY": str(tmp_path / "credentials"),
                "LINESIDE_TEST_ERP_TOKEN": ERP_TOKEN,
            }
            loaded = load_config(config, environ=env)
            assert sorted(loaded.secrets()) == sorted(SECRETS), "all three are configured"
            with gateway_process(config, env=env) as gateway:

                async def every_secret_used() -> bool:
                    if not await answers(f"{base}/metrics", 200):
                        return False
                    metrics = (await http_get(f"{base}/metrics")).text
                    return (
                        'lineside_sync_link_state{kind="mqtt",state="up"} 1.0' in metrics
                        and 'lineside_erp_link_state{state="up"} 1.0' in metrics
                        and _link_down_recorded(tmp_path / "gw.db")
                    )

                await wait_for(every_secret_used, timeout=30)
                metrics = (await http_get(f"{base}/metrics")).text
                readiness = (await http_get(f"{base}/readyz")).text
                gateway.terminate()
                _, log = await asyncio.to_thread(gateway.communicate, timeout=20)
        authorizations = {r.authorization for r in erp.requests}
    assert gateway.returncode == 0, log
    assert authorizations == {f"Bearer {ERP_TOKEN}"}, "the token went out with every poll"
    assert "lineside_device_link_state" in metrics
    assert json.loads(readiness)["checks"]["devices"]["not_connected"][0]["id"] == "cw1"
    for secret in SECRETS:
        assert secret not in log
        assert secret not in metrics
        assert secret not in readiness
    lines = [line for line in log.splitlines() if line.strip()]
    assert any("link down" in line for line in lines)
    assert any("uplink up" in line for line in lines)
    if fmt == "json":
        entries = [json.loads(line) for line in lines]  # every line is one JSON object
        assert {"time", "level", "logger", "message"} <= set(entries[0])
    else:
        assert all(PLAIN_LINE.match(line) for line in lines if not line.startswith((" ", "Trace")))


def _link_down_recorded(db_path: Path) -> bool:
    if not db_path.exists():
        return False
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT count(*) FROM device_events WHERE kind = 'link_down'").fetchone()
        return bool(row[0])
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_a_secret_handed_to_the_logger_is_redacted(
    fmt: Literal["plain", "json"], capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging(level="debug", fmt=fmt, secrets=SECRETS)
    log = logging.getLogger("lineside.test")
    log.debug("connecting with password %s", MQTT_PASSWORD)
    log.info(f"header Authorization: Bearer {ERP_TOKEN}")  # noqa: G004  (pre-formatted on purpose)
    try:
        raise ConnectionError(f"login refused for password {OPCUA_PASSWORD!r}")
    except ConnectionError:
        log.exception("device failed")
    err = capsys.readouterr().err
    for secret in SECRETS:
        assert secret not in err
    assert err.count("***") >= 3
    if fmt == "json":
        entries = [json.loads(line) for line in err.splitlines()]
        assert [e["level"] for e in entries] == ["debug", "info", "error"]
        assert "ConnectionError" in entries[2]["exception"]
