"""``lineside ingest`` refuses options that cannot work before it opens anything: each
mistake ends with exit code 2 and a sentence naming the options (gateway/commands/ingest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import logs
from gateway.cli import main
from gateway.commands.common import EXIT_USAGE


@pytest.fixture(autouse=True)
def _no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    # The command sets up the process's logging first; a test process keeps its own.
    monkeypatch.setattr(logs, "configure_logging", lambda **_: None)


def _ingest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["ingest", *args])
    return code, capsys.readouterr().err


def test_an_unset_dsn_variable_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LINESIDE_TEST_DSN", raising=False)
    code, err = _ingest(capsys, "--postgres-dsn-env", "LINESIDE_TEST_DSN")
    assert code == EXIT_USAGE
    assert "$LINESIDE_TEST_DSN is not set" in err


def test_a_broker_user_needs_its_password_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _ingest(capsys, "--no-http", "--mqtt-username", "ingest")
    assert code == EXIT_USAGE
    assert "--mqtt-username and --mqtt-password-file go together" in err


def test_http_ingest_needs_the_gateways_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _ingest(capsys)
    assert code == EXIT_USAGE
    assert "HTTP ingest needs --gateway-tokens FILE" in err


def test_an_unreadable_password_file_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "mqtt-password"
    code, err = _ingest(
        capsys, "--no-http", "--mqtt-username", "ingest", "--mqtt-password-file", str(missing)
    )
    assert code == EXIT_USAGE
    assert f"cannot read the MQTT password file {missing}" in err


def test_a_bad_tokens_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("not a token line\n", encoding="utf-8")
    code, err = _ingest(capsys, "--no-mqtt", "--gateway-tokens", str(tokens))
    assert code == EXIT_USAGE
    assert f"lineside ingest: {tokens}:1: expected <gateway id>:<scheme>:<hash>" in err


def test_neither_mqtt_nor_http_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _ingest(capsys, "--no-mqtt", "--no-http")
    assert code == EXIT_USAGE
    assert "lineside ingest: enable MQTT, HTTP or both" in err
