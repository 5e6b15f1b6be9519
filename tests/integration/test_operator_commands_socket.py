"""Operator commands work without the config's secrets.

A real gateway runs on a config with two secrets (an OPC UA password in a file, another as a
systemd credential) and a store holding a busy shift's alerts (tests/support/shift_store.py;
the gateway restores them at start). The operator's shell cannot resolve either secret: the
file has become a directory (unreadable, even for root) and its credentials folder is empty.
``alerts``, ``ack``, ``shelve``, ``line-mode`` and ``report`` still work, with ``--socket``
(no config at all) and with ``--config`` (only ``[gateway]`` and ``[store]`` are read).
The ``alerts`` control request validates its fields as every control command does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.control import send_command
from gateway.core.errors import ConfigError
from tests.support.cli_runs import lineside_async
from tests.support.configs import minimal_config_text
from tests.support.ports import free_port
from tests.support.running_gateway import gateway_in_process
from tests.support.shift_store import write_shift


def secret_device(device_id: str, secret: str) -> str:
    """An OPC UA probe device whose server is not there, with a password secret."""
    return (
        f'[[devices]]\nid = "{device_id}"\nkind = "opcua"\nline = "L1"\n'
        f'role = "temperature_probe"\nendpoint = "opc.tcp://127.0.0.1:{free_port()}"\n'
        f'username = "op"\npassword = {secret}\nreconnect_min_s = 0.5\nreconnect_max_s = 2\n'
        '[[devices.groups]]\ntags = [{ name = "P9", node = "ns=2;s=P9" }]\n'
    )


async def run_json(*args: str, env: dict[str, str]) -> dict[str, Any]:
    done = await lineside_async(*args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


async def test_operator_commands_need_neither_the_config_nor_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "gw.db"
    facts = await write_shift(db_path)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "opcua-b").write_text("b-Secret-77\n")
    (tmp_path / "opcua-a").write_text("a-Secret-42\n")
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(db_path)
        + secret_device("opc_a", '{ file = "opcua-a" }')
        + secret_device("opc_b", '{ credential = "opcua-b" }')
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    socket_path = str(tmp_path / "control.sock")
    async with gateway_in_process(config):
        # Now the operator's view: neither secret can be read.
        (tmp_path / "opcua-a").unlink()
        (tmp_path / "opcua-a").mkdir()
        empty = tmp_path / "operator-credentials"
        empty.mkdir()
        operator = {**os.environ, "CREDENTIALS_DIRECTORY": str(empty)}
        with pytest.raises(ConfigError) as refused:
            load_config(config, environ=operator)
        assert {p.location for p in refused.value.problems} == {
            "devices[0].password",
            "devices[1].password",
        }

        listed = await run_json("alerts", "--socket", socket_path, env=operator)
        assert listed["source"] == "gateway"
        assert listed["by_rule"]["label_gap"]["active"] > 0
        assert listed["by_rule"]["emark_mean"]["cleared"] > 0
        same = await run_json("alerts", "-c", str(config), env=operator)
        assert same["source"] == "gateway"
        assert same["total"] == listed["total"]

        gap = next(a for a in listed["alerts"] if a["rule"] == "label_gap")
        done = await lineside_async(
            "ack", gap["ref"], "-c", str(config), "--operator", "Ann", env=operator
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "1 alert(s) acknowledged by Ann"
        cleared = listed["by_rule"]["emark_mean"]["cleared"]
        done = await lineside_async(
            "ack", "--rule", "emark_mean", "--socket", socket_path, "--operator", "Ann",
            env=operator,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{cleared} alert(s) acknowledged by Ann"
        done = await lineside_async(
            "shelve", "--rule", "label_gap", "--minutes", "30", "-c", str(config),
            "--operator", "Ann", env=operator,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        done = await lineside_async(
            "line-mode", "--socket", socket_path, "--line", "L1", "--operator", "Ann",
            "washdown", env=operator,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

        after = await run_json("alerts", "--socket", socket_path, env=operator)
        assert "emark_mean" not in after["by_rule"], "every cleared one acknowledged"
        # A label gap latches until acknowledged: the one acknowledged is gone.
        assert all(a["id"] != gap["id"] for a in after["alerts"])
        gaps = listed["by_rule"]["label_gap"]["active"]
        assert after["by_rule"]["label_gap"] == {"active": gaps - 1, "cleared": 0}
        assert all(
            a["state"] in ("shelved", "suppressed") for a in after["alerts"] if a["active"]
        ), "shelved for 30 min (and the line in washdown)"

        report = await run_json("report", facts.run_number, "-c", str(config), env=operator)
        assert report["figures"]["packs"] == facts.packs
        # The same report from the gateway itself: no config, no store access.
        remote = await run_json("report", facts.run_number, "--socket", socket_path, env=operator)
        assert remote["figures"] == report["figures"]
        assert remote["missed"] == report["missed"]
        assert remote["alerts"]["by_rule"] == report["alerts"]["by_rule"]
        text = await lineside_async("report", facts.run_number, "--socket", socket_path)
        assert text.returncode == 0, text.stderr
        assert text.stdout.startswith(f"Run {facts.run_number}")
        assert len(text.stdout.splitlines()) < 60
        unknown = await lineside_async("report", "R-NONE", "--socket", socket_path)
        assert unknown.returncode == 1
        assert "run 'R-NONE' is not in" in unknown.stderr


async def test_the_alerts_request_validates_its_fields(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(minimal_config_text(tmp_path / "gw.db"))
    async with gateway_in_process(config):
        path = tmp_path / "control.sock"
        answer = await send_command(path, {"command": "alerts"})
        assert answer == {
            "ok": True,
            "alerts": [],
            "total": 0,
            "active": 0,
            "awaiting_acknowledgement": 0,
            "by_rule": {},
            "more": False,
        }
        refusals: dict[str, dict[str, Any]] = {
            "unknown line 'L9'": {"line": "L9"},
            "line contains a control character": {"line": "L1\x1b[2J"},
            "rule is 129 characters long": {"rule": "r" * 129},
            "limit must be a positive integer": {"limit": True},
        }
        for reason, fields in refusals.items():
            answer = await send_command(path, {"command": "alerts", **fields})
            assert answer["ok"] is False
            assert reason in answer["error"], answer
