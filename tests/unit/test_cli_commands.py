"""The ``lineside`` parser is assembled from the command modules: each sub-command's
handler lives in gateway/commands/ (or in the device tool that adds itself), and
gateway/cli.py keeps only the assembly and ``main``."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from gateway.commands.common import EXIT_CONFIG
from tests.support.configs import minimal_config_text

_DEVICE_TOOLS = {"gateway.modbus_probe", "gateway.opcua_browse"}


def _commands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_sub_command_is_handled_by_a_command_module() -> None:
    commands = _commands()
    assert len(commands) == 23
    for name, parser in commands.items():
        handler = parser.get_default("handler")
        assert callable(handler), name
        module = handler.__module__
        assert module.startswith("gateway.commands.") or module in _DEVICE_TOOLS, (name, module)


def test_the_help_lists_the_commands_in_their_usual_order() -> None:
    names = list(_commands())
    assert names[:6] == ["run", "check-config", "doctor", "simulate", "demo", "run-start"]
    assert names[-5:] == ["ingest", "ingest-token", "warehouse", "modbus-probe", "browse"]


def test_erp_sync_with_an_invalid_config_prints_its_problems_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its log handler would outlive this test on the captured stderr.
    monkeypatch.setattr("gateway.logs.configure_logging", lambda **_: None)
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "db")
        + '[erp]\nkind = "http"\nurl = "https://erp.example/api/runs"\n'
        + 'token = { credential = "erp-token" }\n'
    )
    assert main(["erp-sync", "--config", str(config)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "erp.token" in err
    assert "CREDENTIALS_DIRECTORY" in err
    assert "Traceback" not in err


def test_browse_with_a_config_finds_its_credentials_where_doctor_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """From a shell (no $CREDENTIALS_DIRECTORY) the config's secrets are read from the
    credential store, as `lineside doctor` reads them, not refused."""
    diagnose = importlib.import_module("gateway.doctor.diagnose")  # the module, not its function
    credstore = tmp_path / "credstore"
    credstore.mkdir()
    (credstore / "erp-token").write_text("t")
    monkeypatch.setattr(diagnose, "CREDSTORE", credstore)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "db")
        + '[erp]\nkind = "http"\nurl = "https://erp.example/api/runs"\n'
        + 'token = { credential = "erp-token" }\n'
    )
    code = main(["browse", "--config", str(config), "--device", "cw9"])
    err = capsys.readouterr().err
    assert "CREDENTIALS_DIRECTORY" not in err
    assert "no OPC UA device 'cw9'" in err
    assert code == 2
