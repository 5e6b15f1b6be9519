"""``lineside ... | head``: a reader that goes away ends a command quietly."""

from __future__ import annotations

import subprocess
import sys

from gateway.commands.common import EXIT_FAILURE
from tests.support.paths import REPO


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "check-config", "--schema"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # before it writes a byte
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_FAILURE
    assert b"Traceback" not in err
    assert b"BrokenPipeError" not in err
