"""`lineside doctor` against a real running gateway (mosquitto, a simulated scanner, the
health port) and against broken set-ups: it names what is wrong, how to fix it, and exits
non-zero."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from adapters.simulators import ScannerSimulator, ScenarioName
from gateway.doctor import Finding, Report
from gateway.doctor.host_checks import clock_synchronised
from gateway.doctor.probes import tcp_probe
from tests.support.configs import minimal_config_text
from tests.support.mosquitto import Mosquitto
from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.running_gateway import answers, gateway_process, health_toml
from tests.support.waiting import wait_for


def doctor(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "doctor", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def lines_of(output: str) -> dict[str, str]:
    """Check name -> its first line (``ok    store    ...``)."""
    found = {}
    for line in output.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("ok", "WARN", "FAIL"):
            check = rest.strip().split("  ")[0]
            found[check] = line
    return found


def scanner_toml(port: int) -> str:
    return (
        '[[devices]]\nid = "scan1"\nkind = "scanner_tcp"\nline = "L1"\n'
        f'role = "label_scanner"\nhost = "127.0.0.1"\nport = {port}\n'
        "reconnect_min_s = 0.05\nreconnect_max_s = 0.2\n"
    )


async def test_doctor_on_a_healthy_running_gateway(tmp_path: Path) -> None:
    health = free_port()
    async with ScannerSimulator(scenario=ScenarioName.NORMAL, pack_rate_hz=0.001) as scanner:
        with Mosquitto(tmp_path / "broker") as broker:
            config = tmp_path / "gw.toml"
            config.write_text(
                minimal_config_text(tmp_path / "gw.db")
                + scanner_toml(scanner.port)
                + f'[sync.mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                + health_toml(health)
            )
            with gateway_process(config) as gateway:
                await wait_for(
                    lambda: answers(f"http://127.0.0.1:{health}/readyz", 200), timeout=30
                )
                result = await asyncio.to_thread(doctor, config)
                assert gateway.poll() is None, "the doctor leaves the gateway running"

    found = lines_of(result.stdout)
    for check in ("config", "store", "gateway", "device scan1", "uplink", "outbox", "health"):
        assert found[check].startswith("ok "), result.stdout
    assert "connected (127.0.0.1:" in found["device scan1"]
    assert "running: gw-test at test-site" in found["gateway"]
    # The clock is this machine's: the doctor reports what the kernel says.
    synced = clock_synchronised()
    assert found["clock"].startswith("ok " if synced else "FAIL "), result.stdout
    assert result.returncode == (0 if synced else 1), result.stdout + result.stderr
    if not synced:
        assert "fix: enable time sync" in result.stdout


def test_doctor_on_a_broken_setup_says_what_to_fix(tmp_path: Path) -> None:
    nobody, broker_port = free_port(), free_port()
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "never-started.db")
        + scanner_toml(nobody)
        + f'[sync.mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n'
        + health_toml(free_port())
    )
    result = doctor(config, "--timeout", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    found = lines_of(result.stdout)
    assert found["config"].startswith("ok ")
    assert found["store"].startswith("FAIL ")
    assert "no database at" in found["store"]
    assert found["gateway"].startswith("FAIL ")
    assert found["device scan1"].startswith("FAIL ")
    assert f"127.0.0.1:{nobody} unreachable" in found["device scan1"]
    assert found["uplink"].startswith("FAIL ")
    assert f"127.0.0.1:{broker_port} unreachable" in found["uplink"]
    for fix in (
        "fix: the gateway creates it on its first start",
        "fix: start it: `systemctl start lineside-gateway`",
        "fix: check that scan1 at 127.0.0.1:",
        "fix: check the address in [sync.mqtt]",
    ):
        assert fix in result.stdout
    assert "failed" in result.stdout.splitlines()[-1]


def test_doctor_on_an_invalid_config_lists_the_problems(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "x.db").replace('site = "test-site"', 'sitee = "x"')
    )
    result = doctor(config)
    assert result.returncode == 3
    assert "gateway.sitee" in result.stdout
    assert "unknown key" in result.stdout
    assert "fix: correct the keys above" in result.stdout


def test_doctor_reads_credentials_where_the_unit_gets_them(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "x.db")
        + '[sync.mqtt]\nhost = "127.0.0.1"\nport = 1\nusername = "gw"\n'
        'password = { credential = "mqtt-password" }\n'
    )
    credstore = tmp_path / "credstore"
    credstore.mkdir()
    missing = doctor(config, "--credentials", str(credstore))
    assert missing.returncode == 3
    assert "cannot read secret file" in missing.stdout
    assert "fix: put each secret in /etc/credstore/NAME" in missing.stdout
    (credstore / "mqtt-password").write_text("a-real-secret\n")
    found = doctor(config, "--credentials", str(credstore), "--timeout", "1")
    assert lines_of(found.stdout)["config"].startswith("ok "), found.stdout
    assert "a-real-secret" not in found.stdout + found.stderr


def test_exit_status_counts_failures_not_warnings() -> None:
    ok = Finding("store", "ok", "fine")
    warn = Finding("uplink", "warn", "no uplink", "configure one")
    fail = Finding("clock", "fail", "not synchronised", "enable NTP")
    assert Report([ok, warn], config_loaded=True).exit_code == 0
    assert Report([ok, warn, fail], config_loaded=True).exit_code == 1
    assert Report([fail], config_loaded=False).exit_code == 3
    text = Report([ok, warn, fail], config_loaded=True).format()
    assert text.splitlines()[-1] == "1 failed, 1 warning(s): see the fixes above"
    assert "fix: enable NTP" in text


async def test_a_host_name_that_does_not_resolve_is_named_so() -> None:
    # .invalid never resolves (a reserved top-level domain): the resolver's answer is named,
    # not its code ("Unknown error -2" is os.strerror of EAI_NONAME).
    error = await tcp_probe("broker.invalid", 8883, timeout_s=10)
    assert error.startswith("cannot resolve host 'broker.invalid': "), error
    assert "Unknown error" not in error


def test_doctor_prints_the_coverage_warnings(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db") + "[[devices]]\n"
        'id = "tt1"\nkind = "modbus_tcp"\nline = "L1"\nrole = "temperature_probe"\n'
        f'host = "127.0.0.1"\nport = {free_port()}\ntags = [{{ name = "T1", address = 0 }}]\n'
    )
    result = doctor(config, "--timeout", "1")
    found = [line for line in result.stdout.splitlines() if line.startswith("WARN  coverage")]
    assert len(found) == 2, result.stdout
    assert "devices[0].tags[0]: probe tt1/T1 has no HACCP limits" in found[0]
    assert "lines[0]: line L1 has no enabled checkweigher" in found[1]


def test_doctor_names_a_missing_ca_file_not_an_unreachable_uplink(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db")
        + f'[sync.mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\nca_file = "pki/broker-ca.pem"\n'
    )
    result = doctor(config, "--timeout", "1")
    assert result.returncode == 3, result.stdout
    assert (
        f"sync.mqtt.ca_file: value 'pki/broker-ca.pem': file not found: "
        f"{tmp_path / 'pki' / 'broker-ca.pem'}"
    ) in result.stdout
    assert "unreachable" not in result.stdout
