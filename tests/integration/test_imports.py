"""What importing loads: the gateway must start without the operator TUI or the HTTPS client
it does not use, and the TUI without the gateway's uplink and store libraries."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO


def loaded_after(imports: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` a fresh interpreter has in ``sys.modules`` after ``imports``."""
    code = f"import sys, {imports}; print(' '.join(m for m in {watched!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    return result.stdout.split()


SERVICE = "gateway.service, gateway.cli, gateway.composition, adapters.registry"
"""What ``lineside run`` imports before it reads its config."""


def test_the_service_does_not_load_the_tui() -> None:
    assert loaded_after(SERVICE, ("textual",)) == []


def test_a_gateway_syncing_over_mqtt_does_not_load_httpx() -> None:
    # httpx, with the command-line extras it loads when they are installed (rich, click,
    # pygments), costs the running gateway about 6 MiB (docs/benchmarks.md, figure 6): the
    # HTTPS uplink is imported only when [sync.https] is configured.
    assert loaded_after(SERVICE, ("httpx", "rich", "click")) == []


TUI_APP_MAY_NOT_LOAD = ("paho", "aiosqlite")
KNOWN_TUI_APP_LOADS: frozenset[str] = frozenset()
"""What ``import tui.app`` may still load of the above: nothing (the TUI imports gateway.api
alone). The second assertion below keeps the set from holding a name no longer loaded."""


def test_the_tui_does_not_load_the_uplink_or_the_store() -> None:
    loaded = frozenset(loaded_after("tui.app", TUI_APP_MAY_NOT_LOAD))
    assert sorted(loaded - KNOWN_TUI_APP_LOADS) == []
    assert sorted(KNOWN_TUI_APP_LOADS - loaded) == [], "shrink KNOWN_TUI_APP_LOADS"
