"""`lineside run` failing to start: one clear line naming the file, folder or socket, no
traceback, and the exit code docs/configuration.md documents (3: the config, not restarted;
4: could not start, restarted).

The state directory is made read-only or full for real: the gateway runs in a mount
namespace of its own (``unshare -m``) with a small tmpfs on its state directory, so these
tests need root and ``unshare``/``mount`` and fail (they do not skip) without them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import StoreSection
from gateway.core.clock import SystemClock
from gateway.store import Store
from tests.support.configs import minimal_config_text
from tests.support.paths import REPO, repo_pythonpath
from tests.support.processes import end_group

EXIT_CONFIG = 3
EXIT_STARTUP = 4


def run_once(
    config: Path, *, mount: str | None = None, state: Path | None = None
) -> tuple[int, str]:
    """``lineside run`` until it exits by itself: its exit code and its output (stderr, where
    it logs). With ``mount``, a shell script run first in a private mount namespace with
    ``$1`` the state directory (it mounts the tmpfs there)."""
    command = [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)]
    if mount is not None:
        for tool in ("unshare", "mount"):
            assert shutil.which(tool), f"{tool} is needed to make a read-only or full folder"
        assert os.geteuid() == 0, "mounting a tmpfs in a mount namespace needs root"
        script = f'{mount} && shift && exec "$@"'
        command = [
            *("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"),
            str(state),
            *command,
        ]
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": repo_pythonpath()},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        end_group(proc)
    return proc.returncode, output


def assert_one_clear_line(output: str, *names: str) -> str:
    """The output's one failure line, which names each of ``names``; no traceback."""
    assert "Traceback" not in output, output
    assert "Event loop is closed" not in output, output
    failures = [line for line in output.splitlines() if "CRITICAL" in line or "ERROR" in line]
    assert len(failures) == 1, output
    for name in names:
        assert name in failures[0], output
    return failures[0]


def test_a_missing_ca_file_is_one_line_and_exit_3(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "state" / "gw.db")
        + '[sync.mqtt]\nhost = "127.0.0.1"\nport = 8883\nca_file = "pki/broker-ca.pem"\n'
    )
    code, output = run_once(config)
    assert code == EXIT_CONFIG, output
    [line] = output.splitlines()
    assert line == (
        f"{config}: sync.mqtt.ca_file: value 'pki/broker-ca.pem': file not found: "
        f"{tmp_path / 'pki' / 'broker-ca.pem'}"
    )
    assert not (tmp_path / "state").exists(), "nothing was started"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('[sync.mqtt]\nhost = "127.0.0.1"\nport = 8883\n', "sync.mqtt"),
        ('[sync.https]\nurl = "https://127.0.0.1:8443/v1/ingest"\n', "sync.https"),
        ('[erp]\nkind = "http"\nurl = "https://127.0.0.1:8444/api/runs"\n', "erp"),
    ],
    ids=["mqtt", "https", "erp"],
)
def test_a_ca_file_with_no_certificate_is_one_line_and_exit_3(
    tmp_path: Path, table: str, key: str
) -> None:
    (tmp_path / "ca.pem").write_text("this is not a certificate\n")
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "state" / "gw.db") + table + 'ca_file = "ca.pem"\n'
    )
    code, output = run_once(config)
    assert code == EXIT_CONFIG, output
    line = assert_one_clear_line(output, f"{config}: {key}.ca_file: value ")
    assert f"cannot load {tmp_path / 'ca.pem'}: " in line
    assert not (tmp_path / "state").exists(), "refused before the store was opened"


def test_a_read_only_state_directory_is_one_line_and_exit_4(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "gw.toml"
    config.write_text(minimal_config_text(state / "gw.db"))
    code, output = run_once(config, mount='mount -t tmpfs -o ro,size=1m ro-test "$1"', state=state)
    assert code == EXIT_STARTUP, output
    line = assert_one_clear_line(output, str(state / "gw.db"), "Read-only file system")
    assert "cannot start" in line


@pytest.mark.parametrize(
    ("trouble", "reason"),
    [
        ('mount -o remount,ro "$1"', "Read-only file system"),
        ('{ head -c 2097152 /dev/zero > "$1/filler" 2>/dev/null; true; }', "disk I/O error"),
    ],
    ids=["read-only", "full"],
)
async def test_a_state_directory_with_a_store_in_it(
    tmp_path: Path, trouble: str, reason: str
) -> None:
    # A store left by an earlier run (its database, lock and sequence files), then the file
    # system goes read-only (a failing SD card is remounted so) or fills up.
    seed, state = tmp_path / "seed", tmp_path / "state"
    state.mkdir()
    async with Store(StoreSection(path=seed / "gw.db"), SystemClock()):
        pass
    assert {p.name for p in seed.iterdir()} >= {"gw.db", "gw.db.lock", "gw.db.seq"}
    config = tmp_path / "gw.toml"
    config.write_text(minimal_config_text(state / "gw.db"))
    mount = f'mount -t tmpfs -o size=1m store-test "$1" && cp "{seed}"/* "$1"/ && {trouble}'
    code, output = await asyncio.to_thread(run_once, config, mount=mount, state=state)
    assert code == EXIT_STARTUP, output
    assert_one_clear_line(output, str(state / "gw.db"), reason)


def test_a_full_state_directory_is_one_line_and_exit_4(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "gw.toml"
    config.write_text(minimal_config_text(state / "gw.db"))
    # The filler takes every byte the tmpfs has (head stops at ENOSPC).
    mount = (
        'mount -t tmpfs -o size=256k full-test "$1" && '
        '{ head -c 1048576 /dev/zero > "$1/filler" 2>/dev/null; true; }'
    )
    code, output = run_once(config, mount=mount, state=state)
    assert code == EXIT_STARTUP, output
    assert_one_clear_line(output, str(state / "gw.db"), "No space left on device")


def test_a_control_socket_in_use_is_one_line_and_exit_4(tmp_path: Path) -> None:
    control = tmp_path / "in-use.sock"
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db").replace(
            'site = "test-site"', f'site = "test-site"\ncontrol_socket = "{control}"'
        )
    )
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(control))
        listener.listen()
        code, output = run_once(config)
    assert code == EXIT_STARTUP, output
    assert_one_clear_line(output, f"control socket {control} is in use")


def test_a_control_socket_that_cannot_be_made_is_one_line_and_exit_4(tmp_path: Path) -> None:
    control = tmp_path / "no-such-folder" / "control.sock"
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(tmp_path / "gw.db").replace(
            'site = "test-site"', f'site = "test-site"\ncontrol_socket = "{control}"'
        )
    )
    code, output = run_once(config)
    assert code == EXIT_STARTUP, output
    assert_one_clear_line(output, f"cannot create the control socket {control}")
