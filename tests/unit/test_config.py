"""Configuration: strict models, key-path errors, secrets, the CLI check and the schema."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import LinesideConfig, json_schema, load_config, parse_config
from gateway.core.errors import ConfigError
from tests.support.configs import minimal_config_text
from tests.support.paths import REPO

EXAMPLE = REPO / "config" / "example.toml"
DEMO = REPO / "config" / "demo.toml"
SCHEMA = REPO / "config" / "lineside.schema.json"


def lineside(*args: str) -> subprocess.CompletedProcess[str]:
    """``lineside ARGS`` in this process (the console script's entry point), as a finished
    process: exit code and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["lineside", *args], code, out.getvalue(), err.getvalue())


def problems_of(text: str, tmp_path: Path, **kwargs: object) -> dict[str, str]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)  # type: ignore[arg-type]
    return {p.location: p.reason for p in info.value.problems}


@pytest.mark.parametrize("path", [EXAMPLE, DEMO], ids=["example", "demo"])
def test_shipped_configs_are_valid(path: Path) -> None:
    config = load_config(path)
    assert config.devices, "the shipped configs show devices"
    assert {d.kind for d in load_config(EXAMPLE).devices} == {
        "opcua",
        "modbus_tcp",
        "modbus_rtu",
        "scanner_tcp",
    }


def test_check_config_accepts_the_example_with_a_summary() -> None:
    result = lineside("check-config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert "valid" in result.stdout
    assert "5 device(s)" in result.stdout


def test_check_config_names_misspelt_wrong_type_and_missing_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[gateway]\n"
        'id = "gw1"\n'
        'sitee = "hull"\n'  # misspelt (and so site is missing)
        "[store]\n"
        'path = "x.db"\n'
        'commit_interval_ms = "fast"\n'  # wrong type
        "[[lines]]\n"
        'id = "L1"\n'
    )
    result = lineside("check-config", str(bad))
    assert result.returncode != 0
    err = result.stderr
    assert f"{bad}: gateway.sitee: value 'hull': unknown key" in err
    assert f"{bad}: gateway.site: value (missing): Field required" in err
    assert f"{bad}: store.commit_interval_ms: value 'fast':" in err
    assert "3 problem(s)" in err


def test_check_config_reports_toml_syntax_errors(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text("[gateway\nid = 1\n")
    result = lineside("check-config", str(bad))
    assert result.returncode != 0
    assert f"{bad}: (syntax): TOML: " in result.stderr
    assert "value (missing)" not in result.stderr  # nothing is missing: the file is no TOML


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = lineside("check-config", str(tmp_path / "nope.toml"))
    assert result.returncode != 0
    assert "No such file" in result.stderr


def test_nested_key_paths_point_into_devices(tmp_path: Path) -> None:
    text = minimal_config_text(tmp_path / "db") + (
        "[[devices]]\n"
        'id = "cw1"\nkind = "opcua"\nline = "L1"\nrole = "checkweigher"\n'
        'endpoint = "opc.tcp://127.0.0.1:4840"\n'
        "[[devices.groups]]\n"
        'tags = [{ name = "pack_counter", node = "ns=2;s=C" },\n'
        '        { name = "net_weight", node = "x" }]\n'
    )
    problems = problems_of(text, tmp_path)
    assert list(problems) == ["devices[0].groups[0].tags[1].node"]
    assert "not an OPC UA node id" in problems["devices[0].groups[0].tags[1].node"]


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (
            'id = "t"\nkind = "modbus_tcp"\nline = "L9"\nrole = "temperature_probe"\n'
            'host = "h"\ntags = [{ name = "a", address = 0 }]\n',
            "names line 'L9', which is not in [[lines]]",
        ),
        (
            'id = "t"\nkind = "modbus_tcp"\nline = "L1"\nrole = "temperature_probe"\n'
            'host = "h"\ntags = [{ name = "a", address = 0, min = 5, max = 1 }]\n',
            "min (5.0) must be below max (1.0)",
        ),
        (
            'id = "t"\nkind = "modbus_tcp"\nline = "L1"\nrole = "temperature_probe"\n'
            'host = "h"\ntags = [{ name = "a", table = "coil", address = 0, type = "int16" }]\n',
            "holds bits: type must be bool",
        ),
        (
            'id = "t"\nkind = "modbus_tcp"\nline = "L1"\nrole = "checkweigher"\n'
            'host = "h"\ntags = [{ name = "net_weight", address = 0 }]\n',
            "needs a pack_counter",
        ),
        (
            'id = "t"\nkind = "modbus_tcp"\nline = "L1"\nrole = "temperature_probe"\n'
            'host = "h"\ntags = [{ name = "a", address = 0 }, { name = "a", address = 1 }]\n',
            "tag names must be unique",
        ),
        (
            'id = "t"\nkind = "modbus_tcp"\nline = "L1"\nrole = "temperature_probe"\n'
            'host = "h"\nport = 70000\ntags = [{ name = "a", address = 0 }]\n',
            "less than or equal to 65535",
        ),
        (
            'id = "t"\nkind = "scanner_tcp"\nline = "L1"\nrole = "checkweigher"\n'
            'host = "h"\nport = 1\n',
            "role = 'label_scanner'",
        ),
        (
            'id = "t"\nkind = "profinet"\nline = "L1"\nrole = "checkweigher"\n',
            "does not match any of the expected tags",
        ),
    ],
    ids=[
        "unknown-line",
        "min-above-max",
        "coil-not-bool",
        "checkweigher-without-counter",
        "duplicate-tags",
        "port-range",
        "scanner-role",
        "unknown-kind",
    ],
)
def test_domain_checks_at_load_time(tmp_path: Path, device: str, expected: str) -> None:
    text = minimal_config_text(tmp_path / "db") + "[[devices]]\n" + device
    problems = problems_of(text, tmp_path)
    assert any(expected in reason for reason in problems.values()), problems


def test_modicon_address_is_translated(tmp_path: Path) -> None:
    text = minimal_config_text(tmp_path / "db") + (
        '[[devices]]\nid = "t"\nkind = "modbus_tcp"\nline = "L1"\nrole = "temperature_probe"\n'
        'host = "h"\ntags = [{ name = "a", modicon = "40101", type = "float32" }]\n'
    )
    (tmp_path / "c.toml").write_text(text)
    tag = load_config(tmp_path / "c.toml").devices[0].tags[0]  # type: ignore[union-attr]
    assert (tag.table, tag.address, tag.registers) == ("holding", 100, 2)


def _opcua_with_password(tmp_path: Path, secret: str) -> str:
    return minimal_config_text(tmp_path / "db") + (
        '[[devices]]\nid = "cw1"\nkind = "opcua"\nline = "L1"\nrole = "temperature_probe"\n'
        'endpoint = "opc.tcp://127.0.0.1:4840"\nusername = "u"\n'
        f"password = {secret}\n"
        '[[devices.groups]]\ntags = [{ name = "P1", node = "ns=2;s=P1" }]\n'
    )


def test_secret_in_clear_text_is_refused_and_not_echoed(tmp_path: Path) -> None:
    problems = problems_of(_opcua_with_password(tmp_path, '"hunter2-secret"'), tmp_path)
    assert "clear text" in problems["devices[0].password"]
    path = tmp_path / "c.toml"
    result = lineside("check-config", str(path))
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert "'***'" in result.stderr


@pytest.mark.parametrize(
    "section",
    [
        '[erp]\nkind = "http"\nurl = "https://erp.example/api/runs"\ntoken = "hunter2-secret"\n',
        '[sync.mqtt]\nhost = "broker"\nack_key = "hunter2-secret"\n',
        '[sync.mqtt]\nhost = "broker"\npasword = "hunter2-secret"\n',  # misspelt key
        '[sync.mqt]\nhost = "broker"\npassword = "hunter2-secret"\n',  # misspelt table
    ],
    ids=["erp-token", "ack-key", "misspelt-key", "misspelt-table"],
)
def test_no_secret_is_echoed_by_check_config(tmp_path: Path, section: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(minimal_config_text(tmp_path / "db") + section)
    result = lineside("check-config", str(path))
    assert result.returncode == 3
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert "not valid" in result.stderr


def test_secret_from_env_file_and_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "opcua-password").write_text("from-credential")
    cases = {
        '{ env = "LS_PW" }': ("from-env", {"LS_PW": "from-env"}),
        '{ file = "pw" }': ("from-file", {}),
        '{ credential = "opcua-password" }': (
            "from-credential",
            {"CREDENTIALS_DIRECTORY": str(creds)},
        ),
    }
    for secret, (expected, environ) in cases.items():
        path = tmp_path / "c.toml"
        path.write_text(_opcua_with_password(tmp_path, secret))
        config = load_config(path, environ=environ)
        device = config.devices[0]
        assert device.password is not None  # type: ignore[union-attr]
        assert device.password.get_secret_value() == expected  # type: ignore[union-attr]
        assert expected not in repr(config)
        assert config.secrets() == [expected]


def test_missing_secret_sources_are_named(tmp_path: Path) -> None:
    problems = problems_of(_opcua_with_password(tmp_path, '{ env = "NOPE" }'), tmp_path, environ={})
    assert problems["devices[0].password"] == "environment variable NOPE is not set"
    problems = problems_of(
        _opcua_with_password(tmp_path, '{ credential = "x" }'), tmp_path, environ={}
    )
    assert "$CREDENTIALS_DIRECTORY" in problems["devices[0].password"]


def test_models_are_frozen(tmp_path: Path) -> None:
    config = parse_config(
        {"gateway": {"id": "g", "site": "s"}, "store": {"path": "x.db"}, "lines": [{"id": "L1"}]}
    )
    with pytest.raises(ValueError, match="frozen"):
        config.gateway.id = "other"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.toml"
    path.write_text(minimal_config_text(Path("../state/l.db")))
    assert load_config(path).store.path == tmp_path / "state" / "l.db"


def test_committed_json_schema_matches_the_models() -> None:
    committed = json.loads(SCHEMA.read_text())
    assert committed == json_schema(), (
        "config/lineside.schema.json is stale: regenerate it with "
        "`lineside check-config --schema > config/lineside.schema.json`"
    )


def test_schema_rejects_unknown_keys() -> None:
    schema = LinesideConfig.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["StoreSection"]["additionalProperties"] is False
