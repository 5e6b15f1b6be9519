"""Credentials in a URL are refused by ``lineside check-config``, with where they go instead.

A URL is logged, shown by ``lineside doctor`` and, over ``http://``, sent in clear; a
password in it (``http://user:pw@host``), a user name where the service takes a token, or a
secret query parameter (``?token=``) leaks. The refusal names the key, never echoes the
secret, and says which secret table takes it. Nothing is started with such a config (exit 3:
systemd does not restart the unit).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import EXIT_CONFIG, EXIT_OK, main
from tests.support.configs import minimal_config_text

SECRET = "hunter2-Pa55"

HTTP_ERP = """
[erp]
kind = "http"
url = "{url}"
"""

SQL_ERP = """
[erp]
kind = "sql"
url = "{url}"
query = "SELECT RunNumber, Line, Updated FROM RunNumber WHERE Updated > :watermark ORDER BY Updated"
"""

HTTPS_SYNC = """
[sync.https]
url = "{url}"
"""

MQTT_SYNC = """
[sync.mqtt]
host = "{url}"
"""

OPCUA = """
[[devices]]
id = "cw1"
kind = "opcua"
line = "L1"
role = "checkweigher"
endpoint = "{url}"
[[devices.groups]]
[[devices.groups.tags]]
name = "net_weight"
node = "ns=2;s=W"
[[devices.groups.tags]]
name = "pack_counter"
node = "ns=2;s=C"
"""


def check(tmp_path: Path, section: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    config = tmp_path / "gw.toml"
    config.write_text(minimal_config_text(tmp_path / "x.db") + section)
    code = main(["check-config", str(config)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(
    ("template", "url", "key", "where"),
    [
        (HTTP_ERP, f"http://lineside:{SECRET}@erp.local/api/runs", "erp.url", "erp-token"),
        (HTTP_ERP, f"https://erp.local/api/runs?api_key={SECRET}", "erp.url", "erp-token"),
        (HTTP_ERP, f"https://{SECRET}@erp.local/api/runs", "erp.url", "erp-token"),
        (
            SQL_ERP,
            f"postgresql://lineside_ro:{SECRET}@erp-db:5432/erp",
            "erp.url",
            "erp-db-password",
        ),
        (
            SQL_ERP,
            f"postgresql://lineside_ro@erp-db:5432/erp?password={SECRET}",
            "erp.url",
            "erp-db-password",
        ),
        (
            HTTPS_SYNC,
            f"https://gw:{SECRET}@ingest.example/v1/ingest",
            "sync.https.url",
            "ingest-token",
        ),
        (
            HTTPS_SYNC,
            f"http://127.0.0.1:8088/v1/ingest?token={SECRET}",
            "sync.https.url",
            "ingest-token",
        ),
        (MQTT_SYNC, f"mqtt://gw:{SECRET}@broker.local", "sync.mqtt.host", "mqtt-password"),
        (OPCUA, f"opc.tcp://op:{SECRET}@10.0.0.5:4840/", "devices[0].endpoint", "opcua-password"),
    ],
)
def test_credentials_in_a_url_are_refused_with_where_they_go(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    template: str,
    url: str,
    key: str,
    where: str,
) -> None:
    code, output = check(tmp_path, template.format(url=url), capsys)
    assert code == EXIT_CONFIG, output
    assert f": {key}: " in output
    assert "credentials in the URL are refused" in output or "not a URL" in output
    assert f'credential = "{where}"' in output, "says where the secret goes"
    assert SECRET not in output, "the secret is never echoed"
    assert "not valid" in output


def test_a_user_name_alone_may_stay_in_a_database_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = SQL_ERP.format(url="postgresql://lineside_ro@erp-db:5432/erp")
    code, output = check(tmp_path, section, capsys)
    assert code == EXIT_OK, output


def test_urls_without_credentials_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    section = HTTP_ERP.format(url="https://erp.local/api/runs?site=hull") + HTTPS_SYNC.format(
        url="https://ingest.example/v1/ingest"
    )
    code, output = check(tmp_path, section, capsys)
    assert code == EXIT_OK, output
