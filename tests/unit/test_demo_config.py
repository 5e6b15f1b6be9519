"""Which config ``lineside demo`` runs, and where its state goes, from a checkout and from
anywhere else (an installed wheel): gateway/demo_config.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.shipped import DEMO_CONFIG, EXAMPLE_CONFIG, shipped_path
from gateway.demo_config import demo_config_path, load_demo_config, operator_hint
from tests.support.paths import REPO


def test_the_shipped_files_are_the_repository_files() -> None:
    assert DEMO_CONFIG.read_bytes() == (REPO / "config" / "demo.toml").read_bytes()
    assert EXAMPLE_CONFIG.read_bytes() == (REPO / "config" / "example.toml").read_bytes()
    assert shipped_path("systemd", "lineside-gateway.service").is_file()
    assert shipped_path("config", "mosquitto", "acl").is_file()


def test_from_a_checkout_the_demo_runs_its_config_where_it_always_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    path = demo_config_path(None)
    assert path == Path("config/demo.toml")
    config = load_demo_config(path, None)
    assert config.store.path == REPO / "var" / "demo" / "lineside.db"
    assert "lineside alerts -c config/demo.toml" in operator_hint(path, config)


def test_elsewhere_the_shipped_config_keeps_its_state_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = demo_config_path(None)
    assert path == DEMO_CONFIG
    config = load_demo_config(path, None)
    assert config.store.path == tmp_path / "lineside-demo" / "lineside.db"
    assert config.control_socket_path == tmp_path / "lineside-demo" / "control.sock"
    hint = operator_hint(path, config)
    assert f"--socket {tmp_path / 'lineside-demo' / 'control.sock'}" in hint


def test_a_state_dir_moves_the_store_of_any_config(tmp_path: Path) -> None:
    config = load_demo_config(REPO / "config" / "demo.toml", tmp_path / "here")
    assert config.store.path == tmp_path / "here" / "lineside.db"


def test_a_given_config_is_run_as_given(tmp_path: Path) -> None:
    assert demo_config_path(tmp_path / "mine.toml") == tmp_path / "mine.toml"
