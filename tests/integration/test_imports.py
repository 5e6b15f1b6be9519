"""What importing the service loads: the gateway must start without the operator TUI."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO


def test_the_service_does_not_load_the_tui() -> None:
    code = (
        "import sys, gateway.service, gateway.cli, adapters.registry; "
        "print('textual' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "False"
