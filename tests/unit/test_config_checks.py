"""What `lineside check-config` catches before run time (docs/configuration.md): every file the
config names, exact types, cross-references at their key paths, "did you mean", rule
coverage warnings, and TLS files that cannot be loaded."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.cli import main
from gateway.config import LinesideConfig, ModbusTcpDevice, load_config
from gateway.config.coverage import coverage_warnings
from gateway.core.errors import ConfigError
from gateway.tls_files import client_tls_context
from tests.support.configs import minimal_config_text
from tests.support.paths import REPO

EXAMPLE = REPO / "config" / "example.toml"

TLS_LINES = ("ca_file", "cert_file", "key_file")
"""The example's commented MQTT TLS keys."""

SECURITY_LINES = ("certificate", "private_key", "server_certificate")
"""The example's commented OPC UA security keys naming files (trusted_certificates is the
other choice to server_certificate, so it stays commented)."""


def lineside(*args: str) -> subprocess.CompletedProcess[str]:
    """``lineside ARGS`` in this process, as a finished process: exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["lineside", *args], code, out.getvalue(), err.getvalue())


def problems_of(path: Path) -> dict[str, tuple[object, str]]:
    """Key path -> (value shown, reason) of every problem in the config at ``path``."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return {p.location: (p.value, p.reason) for p in info.value.problems}


def example_with_files(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A copy of the shipped example with its TLS and OPC UA security lines uncommented and
    each file they name present: key path -> the file's resolved path."""
    head, mqtt, tail = EXAMPLE.read_text().partition("[sync.mqtt]")
    for key in TLS_LINES:
        tail, count = re.subn(rf"^# ({key} = )", r"\1", tail, count=1, flags=re.M)
        assert count == 1, key
    text = head + mqtt + tail
    text, count = re.subn(r"^# (\[devices\.security\])", r"\1", text, count=1, flags=re.M)
    assert count == 1
    for key in ("policy", *SECURITY_LINES):
        text, count = re.subn(rf"^# ({key} = )", r"\1", text, count=1, flags=re.M)
        assert count == 1, key
    config = tmp_path / "lineside.toml"
    config.write_text(text)
    named = {f"sync.mqtt.{key}": "" for key in TLS_LINES} | {
        f"devices[0].security.{key}": "" for key in SECURITY_LINES
    }
    files = {}
    for key in named:
        value = re.search(rf'^{key.rsplit(".", 1)[1]} = +"([^"]+)"', text, flags=re.M)
        assert value is not None, key
        files[key] = tmp_path / value.group(1)
        files[key].parent.mkdir(parents=True, exist_ok=True)
        files[key].write_text("not checked for content at load\n")
    return config, files


# ---------------------------------------------------------------------------- the example


def test_the_shipped_example_is_valid_with_no_coverage_warning() -> None:
    result = lineside("check-config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "no problem and no coverage warning"
    assert coverage_warnings(load_config(EXAMPLE)) == []


def test_the_example_with_its_files_present_is_valid(tmp_path: Path) -> None:
    config, files = example_with_files(tmp_path)
    result = lineside("check-config", str(config))
    assert result.returncode == 0, result.stderr
    loaded = load_config(config)
    assert loaded.sync.mqtt is not None
    assert loaded.sync.mqtt.ca_file == files["sync.mqtt.ca_file"]


@pytest.mark.parametrize(
    "key",
    [f"sync.mqtt.{k}" for k in TLS_LINES] + [f"devices[0].security.{k}" for k in SECURITY_LINES],
)
def test_each_file_the_example_names_is_checked(tmp_path: Path, key: str) -> None:
    config, files = example_with_files(tmp_path)
    files[key].unlink()
    result = lineside("check-config", str(config))
    assert result.returncode == 3
    [problem] = [line for line in result.stderr.splitlines() if "problem(s)" not in line]
    assert problem.startswith(f"{config}: {key}: value ")
    assert problem.endswith(f"file not found: {files[key]}"), problem


def test_a_folder_where_a_file_belongs_and_a_missing_trust_folder(tmp_path: Path) -> None:
    (tmp_path / "ca").mkdir()
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + '[sync.https]\nurl = "https://ingest.example/v1"\nca_file = "ca"\n'
        "[[devices]]\n"
        'id = "cw1"\nkind = "opcua"\nline = "L1"\nrole = "temperature_probe"\n'
        'endpoint = "opc.tcp://127.0.0.1:4840"\n'
        '[devices.security]\npolicy = "Basic256Sha256"\ncertificate = "ca"\n'
        'private_key = "ca"\ntrusted_certificates = "pki/trusted"\n'
        "[[devices.groups]]\n"
        'tags = [{ name = "T1", node = "ns=2;s=T1" }]\n'
    )
    problems = problems_of(config)
    assert problems["sync.https.ca_file"] == ("ca", f"not a file: {tmp_path / 'ca'}")
    assert problems["devices[0].security.certificate"][1] == f"not a file: {tmp_path / 'ca'}"
    assert problems["devices[0].security.trusted_certificates"] == (
        "pki/trusted",
        f"folder not found: {tmp_path / 'pki' / 'trusted'}",
    )


def test_the_erp_ca_file_is_checked_relative_to_the_config(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + '[erp]\nkind = "http"\nurl = "https://erp.example/api/runs"\nca_file = "erp-ca.pem"\n'
    )
    assert problems_of(config) == {
        "erp.ca_file": ("erp-ca.pem", f"file not found: {folder / 'erp-ca.pem'}")
    }
    (folder / "erp-ca.pem").write_text("a CA\n")
    erp = load_config(config).erp
    assert erp is not None
    assert getattr(erp, "ca_file", None) == folder / "erp-ca.pem"


# ---------------------------------------------------------------------------- exact types


DEVICE = (
    "[[devices]]\n"
    'id = "tt1"\nkind = "modbus_tcp"\nline = "L1"\nrole = "temperature_probe"\nhost = "h"\n'
)


@pytest.mark.parametrize(
    ("setting", "key", "reason"),
    [
        ('port = "502"', "devices[0].port", "Input should be a valid integer"),
        ("port = 502.0", "devices[0].port", "Input should be a valid integer"),
        ("unit_id = true", "devices[0].unit_id", "Input should be a valid integer"),
        ('enabled = "yes"', "devices[0].enabled", "Input should be a valid boolean"),
        ('timeout_s = "3"', "devices[0].timeout_s", "Input should be a valid number"),
    ],
)
def test_values_must_have_the_keys_type(
    tmp_path: Path, setting: str, key: str, reason: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + DEVICE
        + f"{setting}\ntags = [{{ name = 'T1', address = 0 }}]\n"
    )
    problems = problems_of(config)
    assert list(problems) == [key]
    assert problems[key][1].startswith(reason), problems


@pytest.mark.parametrize(
    ("setting", "key", "hint"),
    [
        ('port = "502"', "devices[0].port", "; write it without quotes: port = 502"),
        ('timeout_s = "2.5"', "devices[0].timeout_s", "; write it without quotes: timeout_s = 2.5"),
        ('timeout_s = " 3 "', "devices[0].timeout_s", "; write it without quotes: timeout_s = 3"),
        ('port = "five"', "devices[0].port", ""),
        ('port = "5.5"', "devices[0].port", ""),
        ('timeout_s = "nan"', "devices[0].timeout_s", ""),
        ('enabled = "true"', "devices[0].enabled", ""),
    ],
)
def test_a_number_in_quotes_is_shown_without_them(
    tmp_path: Path, setting: str, key: str, hint: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + DEVICE
        + f"{setting}\ntags = [{{ name = 'T1', address = 0 }}]\n"
    )
    reason = problems_of(config)[key][1]
    assert reason.endswith(hint) if hint else "without quotes" not in reason, reason


def test_toml_integers_still_fill_number_keys_and_enum_names_still_read(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + DEVICE
        + "timeout_s = 2\nport = 1502\n"
        + 'tags = [{ name = "T1", table = "input", address = 0, type = "int16", '
        'order = "CDAB", scale = 1, min = -40, max = 60 }]\n'
    )
    device = load_config(config).devices[0]
    assert isinstance(device, ModbusTcpDevice)
    assert device.timeout_s == 2.0
    assert device.port == 1502
    [tag] = device.tags
    assert (str(tag.table), str(tag.type), str(tag.order), tag.min) == (
        "input",
        "int16",
        "CDAB",
        -40.0,
    )


# ---------------------------------------------------------------------------- references


def test_cross_references_carry_the_referring_key_path(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + '[[lines]]\nid = "L1"\n'
        + DEVICE.replace('line = "L1"', 'line = "l1"')
        + 'tags = [{ name = "core", address = 0 }]\n'
        + DEVICE.replace('"tt1"', '"tt9"')
        + 'tags = [{ name = "core", address = 0 }]\n'
        + '[[rules.lines]]\nline = "L2"\n'
        + '[[rules.probes]]\ndevice = "tt9"\nprobe = "cor"\nupper_c = 5\n'
        + '[[rules.probes]]\ndevice = "tt8"\nprobe = "core"\nupper_c = 5\n'
    )
    problems = problems_of(config)
    assert "(top level)" not in problems
    assert problems["lines[1].id"] == ("L1", "line ids must be unique")
    assert problems["devices[0].line"] == (
        "l1",
        "device tt1 names line 'l1', which is not in [[lines]]; did you mean 'L1'?",
    )
    assert problems["rules.lines[0].line"][1].startswith("names line 'L2', which is not in")
    assert problems["rules.probes[0].probe"] == (
        "cor",
        "names tt9/cor, which is no device tag: device tt9 has core; did you mean 'core'?",
    )
    assert problems["rules.probes[1].device"] == (
        "tt8",
        "names tt8/core, which is no device tag: no device 'tt8'; did you mean 'tt9'?",
    )


def test_references_are_checked_on_direct_model_validation_too() -> None:
    raw = {
        "gateway": {"id": "gw", "site": "s"},
        "store": {"path": "/tmp/gw.db"},
        "lines": [{"id": "L1"}],
        "rules": {"lines": [{"line": "L9"}]},
    }
    with pytest.raises(ValueError, match=r"rules\.lines\[0\]\.line: names line 'L9'"):
        LinesideConfig.model_validate(raw)


# ---------------------------------------------------------------------------- did you mean


def test_unknown_keys_name_the_nearest_key_at_their_level(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db").replace('site = "test-site"', 'sitee = "x"')
        + "[[devices]]\n"
        'id = "cw1"\nkind = "opcua"\nline = "L1"\nrole = "temperature_probe"\n'
        'endpoint = "opc.tcp://127.0.0.1:4840"\nwatchdog_intreval_s = 5\n'
        "[[devices.groups]]\n"
        'tags = [{ name = "T1", nodee = "ns=2;s=T1" }]\n'
        + DEVICE.replace('"tt1"', '"tt2"')
        + 'tags = [{ name = "T2", adress = 0 }]\n'
        + '[sync.mqtt]\nhost = "b"\ncafile = "x"\n'
        + "[health]\nportt = 9180\nzzz = 1\n"
        + '[erp]\nkind = "http"\nurl = "https://erp.example/api/runs"\npage_sise = 100\n'
    )
    problems = {key: reason for key, (_value, reason) in problems_of(config).items()}
    assert problems["gateway.sitee"] == "unknown key; did you mean 'site'?"
    assert problems["devices[0].watchdog_intreval_s"].endswith("'watchdog_interval_s'?")
    assert problems["devices[0].groups[0].tags[0].nodee"].endswith("did you mean 'node'?")
    assert problems["devices[1].tags[0].adress"].endswith("did you mean 'address'?")
    assert problems["sync.mqtt.cafile"].endswith("did you mean 'ca_file'?")
    assert problems["health.portt"].endswith("did you mean 'port'?")
    assert problems["health.zzz"] == "unknown key (misspelt? see config/example.toml)"
    assert problems["erp.page_sise"].endswith("did you mean 'page_size'?")


# ---------------------------------------------------------------------------- coverage


CHECKWEIGHER = (
    '[[devices]]\nid = "cw1"\nkind = "modbus_tcp"\nline = "L1"\nrole = "checkweigher"\nhost = "h"\n'
)


def test_a_checkweigher_whose_packs_find_no_product_is_warned_about(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + CHECKWEIGHER
        + 'tags = [{ name = "pack_counter", address = 0 }, { name = "net_weight", address = 1 }]\n'
    )
    result = lineside("check-config", str(config))
    assert result.returncode == 0, "a warning is not a problem"
    assert "valid" in result.stdout
    [warning] = result.stderr.splitlines()
    assert warning.startswith(f"{config}: warning: devices[0]: checkweigher cw1: ")
    assert "nominal_weight" in warning
    assert "no ℮ or giveaway rule judges them" in warning


@pytest.mark.parametrize(
    "extra",
    [
        '{ name = "nominal_weight", address = 2 }',
        '{ name = "program", address = 2 }]\nprograms = { "12" = "41240" }\n#',
    ],
    ids=["nominal_weight", "program"],
)
def test_a_checkweigher_with_a_product_source_is_not_warned_about(
    tmp_path: Path, extra: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + CHECKWEIGHER
        + 'tags = [{ name = "pack_counter", address = 0 }, { name = "net_weight", address = 1 }, '
        + extra
        + "]\n"
    )
    assert coverage_warnings(load_config(config)) == []


def test_a_probe_without_limits_and_a_line_without_checkweigher_are_warned_about(
    tmp_path: Path,
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + DEVICE
        + 'tags = [{ name = "T1", address = 0 }, { name = "T2", address = 1 }]\n'
        + '[[rules.probes]]\ndevice = "tt1"\nprobe = "T1"\nupper_c = 5\n'
    )
    warnings = {w.location: w.message for w in coverage_warnings(load_config(config))}
    assert list(warnings) == ["devices[0].tags[1]", "lines[0]"]
    assert warnings["devices[0].tags[1]"].startswith("probe tt1/T2 has no HACCP limits")
    assert warnings["lines[0]"].startswith("line L1 has no enabled checkweigher")


# ---------------------------------------------------------------------------- TLS files


def test_a_tls_file_that_is_no_certificate_is_a_config_problem(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as info:
        client_tls_context("sync.mqtt", garbage)
    [problem] = info.value.problems
    assert (problem.location, problem.value) == ("sync.mqtt.ca_file", str(garbage))
    assert problem.reason.startswith(f"cannot load {garbage}: ")
    with pytest.raises(ConfigError) as info:
        client_tls_context("sync.mqtt", tmp_path / "gone.pem")
    [problem] = info.value.problems
    assert problem.reason == f"file not found: {tmp_path / 'gone.pem'}"


def _certificate_and_keys(directory: Path) -> tuple[Path, Path, Path, Path]:
    """A PEM certificate, its key, the same key passphrase-protected, and another key."""
    key, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "ab")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hull-gw1")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        # Fixed dates: loading a certificate does not look at them, and no test reads the clock.
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    paths = [directory / n for n in ("cert.pem", "key.pem", "encrypted.pem", "other.pem")]
    paths[0].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    paths[1].write_bytes(key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    paths[2].write_bytes(
        key.private_bytes(pem, pkcs8, serialization.BestAvailableEncryption(b"passphrase"))
    )
    paths[3].write_bytes(other.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    return paths[0], paths[1], paths[2], paths[3]


def test_a_key_that_cannot_be_used_names_both_files_and_never_prompts(tmp_path: Path) -> None:
    cert, key, encrypted, other = _certificate_and_keys(tmp_path)
    assert client_tls_context("sync.mqtt", cert, cert, key) is not None
    for bad in (encrypted, other):
        with pytest.raises(ConfigError) as info:
            client_tls_context("sync.mqtt", cert, cert, bad)
        [problem] = info.value.problems
        assert problem.location == "sync.mqtt.cert_file"
        assert problem.reason.startswith(f"cannot load the certificate {cert} with the key {bad}")
    with pytest.raises(ConfigError) as info:
        client_tls_context("sync.mqtt", cert, cert, tmp_path / "gone.key")
    [problem] = info.value.problems
    assert (problem.location, problem.reason) == (
        "sync.mqtt.key_file",
        f"file not found: {tmp_path / 'gone.key'}",
    )


def test_an_unknown_rule_in_actions_names_the_nearest_rule(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db") + '[rules.actions]\nhacp_upper = "Call QA"\n'
    )
    [(key, (_value, reason))] = problems_of(config).items()
    assert key == "rules.actions"
    assert reason.startswith("no such rule: hacp_upper; did you mean 'haccp_upper'? rules: ")
