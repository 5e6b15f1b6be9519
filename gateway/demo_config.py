"""Which config ``lineside demo`` runs and where it keeps its state.

From a checkout (``make demo``) the demo runs ``config/demo.toml`` and keeps its store where
that file says (``var/demo/``), as it always has. Anywhere else, e.g. after
``pipx install lineside-*.whl``, there is no ``config/demo.toml`` under the current directory:
the demo then runs the copy shipped in the package (``gateway/core/shipped.py``) and keeps its
store, warehouse, broker files and log in ``lineside-demo/`` under the current directory
(``--state-dir`` puts them elsewhere), never inside the installed package
(docs/install.md says so).
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import LinesideConfig, load_config
from gateway.core.shipped import DEMO_CONFIG

CHECKOUT_DEMO_CONFIG = Path("config/demo.toml")
"""The demo config of a checkout, relative to the current directory."""
DEFAULT_STATE_DIR = Path("lineside-demo")
"""Where the shipped demo config keeps its state, relative to the current directory."""


def demo_config_path(config: Path | None) -> Path:
    """The config file the demo runs: the one given, the checkout's, or the shipped one."""
    if config is not None:
        return config
    if CHECKOUT_DEMO_CONFIG.is_file():
        return CHECKOUT_DEMO_CONFIG
    return DEMO_CONFIG


def load_demo_config(path: Path, state_dir: Path | None) -> LinesideConfig:
    """``path`` loaded, its store moved to ``state_dir`` when one is given or when ``path`` is
    the shipped config (whose relative store path would point inside the installed package).

    Raises :class:`gateway.core.errors.ConfigError` as :func:`gateway.config.load_config` does.
    """
    config = load_config(path)
    if state_dir is None and path == DEMO_CONFIG:
        state_dir = DEFAULT_STATE_DIR
    if state_dir is None:
        return config
    store = config.store.model_copy(update={"path": state_dir.resolve() / "lineside.db"})
    return config.model_copy(update={"store": store})


def operator_hint(path: Path, config: LinesideConfig) -> str:
    """How to list and acknowledge the demo's alerts from another terminal.

    With the shipped config the store is not where that file says, so commands that read the
    config would look in the wrong place; the control socket is where the demo really is.
    """
    if path == CHECKOUT_DEMO_CONFIG:
        return (
            f"list with 'lineside alerts -c {path}', acknowledge with "
            f"'lineside ack -c {path} REF --operator NAME'"
        )
    return (
        f"acknowledge with 'lineside ack --socket {config.control_socket_path} REF "
        "--operator NAME' (the TUI lists them: 'lineside tui --socket "
        f"{config.control_socket_path}')"
    )
