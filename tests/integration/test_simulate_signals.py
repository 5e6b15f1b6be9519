"""``lineside simulate`` stops on SIGINT as on SIGTERM, even started in the background by a
shell (``&`` without job control starts it with SIGINT ignored)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.processes import reap


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_simulate_stops_on_a_signal_even_with_sigint_ignored(sig: signal.Signals) -> None:
    ports = [str(free_port()) for _ in range(4)]
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gateway.cli", "simulate",
            "--opcua-port", ports[0], "--modbus-port", ports[1],
            "--scanner-port", ports[2], "--erp-port", ports[3],
        ],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ignore_sigint,  # noqa: PLW1509  (no threads in the test process here)
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        started = [proc.stdout.readline() for _ in range(5)]
        assert started[-1].startswith("simulators running"), started
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
    finally:
        reap(proc, signal.SIGKILL, timeout=5)
