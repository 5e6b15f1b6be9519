"""One gateway per store: a second ``lineside run`` or an ``lineside erp-sync`` beside the
running service refuses, naming the running one, reserves no sequence numbers and leaves
the running gateway's control socket alone."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.support.configs import minimal_config_text
from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.processes import reap
from tests.support.running_gateway import gateway_process
from tests.support.waiting import wait_for_sync


def control_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def lineside(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_second_gateway_and_erp_sync_refuse_while_one_runs(tmp_path: Path) -> None:
    db_path = tmp_path / "one.db"
    config = tmp_path / "gw.toml"
    config.write_text(
        minimal_config_text(db_path)
        + f'[erp]\nkind = "http"\nurl = "http://127.0.0.1:{free_port()}/api/runs"\n'
        "retries = 0\npoll_interval_s = 1\n"
    )
    control = tmp_path / "control.sock"
    seq_file = tmp_path / "one.db.seq"
    with gateway_process(config) as running:
        wait_for_sync(lambda: control_answers(control), timeout=30, what="the control socket")
        reserved = seq_file.read_bytes()

        second = lineside("run", "--config", str(config))
        assert second.returncode != 0
        assert f"in use by process {running.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr

        erp_sync = lineside("erp-sync", "--config", str(config))
        assert erp_sync.returncode == 1
        assert f"in use by process {running.pid}" in erp_sync.stderr, erp_sync.stderr

        assert seq_file.read_bytes() == reserved, "no sequence numbers reserved by either"
        assert control_answers(control), "the running gateway's control socket is still there"
        assert running.poll() is None, "the running gateway carries on"
        assert reap(running) == 0
    assert not control.exists(), "the gateway removed its own socket on a clean stop"


def test_a_live_control_socket_is_never_taken_over(tmp_path: Path) -> None:
    control = tmp_path / "shared.sock"
    configs = []
    for name in ("a", "b"):
        config = tmp_path / f"{name}.toml"
        config.write_text(
            minimal_config_text(tmp_path / f"{name}.db").replace(
                'site = "test-site"', f'site = "test-site"\ncontrol_socket = "{control}"'
            )
        )
        configs.append(config)
    with gateway_process(configs[0]) as first:
        wait_for_sync(lambda: control_answers(control), timeout=30, what="the control socket")
        ours = control.stat().st_ino
        second = lineside("run", "--config", str(configs[1]))
        assert second.returncode != 0
        assert f"control socket {control} is in use" in second.stderr, second.stderr
        assert control.stat().st_ino == ours, "the live socket was not replaced or removed"
        assert control_answers(control)
        assert reap(first) == 0
