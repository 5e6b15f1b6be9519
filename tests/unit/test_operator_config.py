"""Operator commands read ``[gateway]`` and ``[store]`` only (gateway/operator_config.py): a
config whose secrets cannot be resolved still gives the store and the control socket; a
problem in those two sections is reported with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.core.errors import ConfigError
from gateway.operator_config import load_operator_config

SECRETS = """
[erp]
kind = "http"
url = "https://erp.example/api/runs"
token = { credential = "erp-token" }

[sync.mqtt]
host = "broker.example"
port = 8883
username = "gw"
password = { file = "secrets/mqtt-password" }
"""


def write(tmp_path: Path, gateway: str, store: str = 'path = "var/gw.db"') -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(f'[gateway]\n{gateway}\n\n[store]\n{store}\n\n[[lines]]\nid = "L1"\n{SECRETS}')
    return path


def test_secrets_are_never_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = write(tmp_path, 'id = "gw1"\nsite = "s1"\ncontrol_socket = "run/ctl.sock"')
    with pytest.raises(ConfigError):
        load_config(path)  # the gateway's own load needs them
    config = load_operator_config(path)
    assert config.gateway.id == "gw1"
    assert config.store.path == tmp_path / "var" / "gw.db"
    assert config.control_socket_path == tmp_path / "run" / "ctl.sock"
    default = load_operator_config(write(tmp_path, 'id = "gw1"\nsite = "s1"'))
    assert default.control_socket_path == tmp_path / "var" / "control.sock"


def test_problems_carry_their_key_paths(tmp_path: Path) -> None:
    path = write(tmp_path, 'id = "gw1"\nsite = "s1"\ncontrol_socket_mode = 0o666', store="")
    with pytest.raises(ConfigError) as problem:
        load_operator_config(path)
    assert {p.location for p in problem.value.problems} == {
        "gateway.control_socket_mode",
        "store.path",
    }
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as absent:
        load_operator_config(missing)
    assert absent.value.problems[0].location == "(file)"
