"""What importing loads: the gateway must start without the operator TUI, and the TUI without
the gateway's uplink and store libraries."""

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


TUI_APP_MAY_NOT_LOAD = ("paho", "aiosqlite")
KNOWN_TUI_APP_LOADS: frozenset[str] = frozenset()
"""What ``import tui.app`` may still load of the above: nothing (the TUI imports gateway.api
alone). The second assertion below keeps the set from holding a name no longer loaded."""


def test_the_tui_does_not_load_the_uplink_or_the_store() -> None:
    code = (
        "import sys, tui.app; "
        f"print(' '.join(m for m in {TUI_APP_MAY_NOT_LOAD!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    loaded = frozenset(result.stdout.split())
    assert sorted(loaded - KNOWN_TUI_APP_LOADS) == []
    assert sorted(KNOWN_TUI_APP_LOADS - loaded) == [], "shrink KNOWN_TUI_APP_LOADS"
