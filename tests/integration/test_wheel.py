"""The wheel is the product: built with ``python -m build``, installed with pipx into a
directory of its own, ``lineside demo`` runs from an empty directory (docs/install.md).

Nothing here reaches beyond loopback: the wheel is built without isolation from this venv's
setuptools, and pipx installs its dependencies from ``.wheelhouse/``, which ``make test``
(``make wheelhouse``) fills before pytest runs, as ``make venv`` fills the venv.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import REPO

WHEELHOUSE = REPO / ".wheelhouse"

SHIPPED_FILES = {
    "gateway/share/config/demo.toml",
    "gateway/share/config/example.toml",
    "gateway/share/config/lineside.schema.json",
    "gateway/share/config/mosquitto/acl",
    "gateway/share/config/mosquitto/mosquitto.conf",
    "gateway/share/systemd/lineside-gateway.service",
    "gateway/share/systemd/lineside-ingest.service",
    "gateway/share/systemd/lineside-tui.service",
    "sync/ingest/migrations/versions/v0001_baseline.py",
    "sync/ingest/migrations/versions/v0002_typed_facts.py",
    "sync/ingest/migrations/versions/v0003_analytics.py",
}
"""What the wheel carries besides the code's packages: the demo and example configs, the config
schema, the broker config and ACL, the systemd units (``[tool.setuptools.package-data]``), and
the warehouse's migrations, which Alembic reads as files."""

DEMO_SECONDS = 60.0


def _child_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH: the installed wheel, never this checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(extra)
    return env


class BuiltWheel:
    def __init__(self, path: Path, log: str) -> None:
        self.path = path
        self.log = log


SOURCE_LEFT_OUT = shutil.ignore_patterns(
    ".git", ".venv", ".wheelhouse", "build", "dist", "var", "lineside-demo", "*.egg-info",
    "__pycache__", ".*_cache", ".hypothesis",
)  # fmt: skip
"""What a build does not read: the build works on a copy, so that it neither writes into the
checkout (``build/``, ``*.egg-info``) nor races another copy of the suite doing the same."""


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> BuiltWheel:
    source = tmp_path_factory.mktemp("source") / "lineside"
    shutil.copytree(REPO, source, symlinks=True, ignore=SOURCE_LEFT_OUT)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        # Without --wheel: the sdist first and the wheel from it, as `python -m build` does,
        # so the sdist must carry the shipped files too.
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=_child_env(),
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    (wheel,) = out.glob("lineside-*.whl")
    return BuiltWheel(wheel, log)


@pytest.mark.slow
def test_the_wheel_carries_the_configs_units_and_licence(built_wheel: BuiltWheel) -> None:
    names = set(zipfile.ZipFile(built_wheel.path).namelist())
    assert names >= SHIPPED_FILES, f"missing from the wheel: {sorted(SHIPPED_FILES - names)}"
    assert "lineside-0.1.0.dist-info/licenses/LICENSE" in names
    shipped = zipfile.ZipFile(built_wheel.path).read("gateway/share/config/demo.toml")
    assert shipped == (REPO / "config" / "demo.toml").read_bytes()


@pytest.mark.slow
def test_the_licence_is_declared_without_a_deprecation_warning(built_wheel: BuiltWheel) -> None:
    assert "deprecated" not in built_wheel.log.lower(), built_wheel.log
    metadata = zipfile.ZipFile(built_wheel.path).read("lineside-0.1.0.dist-info/METADATA")
    assert b"License-Expression: LicenseRef-Proprietary" in metadata


def _require_wheelhouse() -> None:
    if not (WHEELHOUSE / ".complete").exists():
        pytest.fail(
            f"{WHEELHOUSE} is missing or incomplete: run `make wheelhouse` (make test does) "
            "so that pipx can install the wheel's dependencies without the network"
        )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pipx_installed_wheel_runs_the_demo_from_an_empty_directory(
    built_wheel: BuiltWheel, tmp_path: Path
) -> None:
    _require_wheelhouse()
    pipx_home, bin_dir, empty = tmp_path / "pipx", tmp_path / "bin", tmp_path / "empty"
    empty.mkdir()
    pipx_env = _child_env(
        PIPX_HOME=str(pipx_home), PIPX_BIN_DIR=str(bin_dir), PIPX_MAN_DIR=str(tmp_path / "man")
    )
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipx",
            "install",
            "--python",
            sys.executable,
            f"--pip-args=--no-index --find-links {WHEELHOUSE}",
            str(built_wheel.path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=pipx_env,
        cwd=empty,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    installed = subprocess.run(
        [str(pipx_home / "venvs" / "lineside" / "bin" / "python"), "-c",
         "import gateway; print(gateway.__file__)"],
        capture_output=True, text=True, timeout=30, check=True, env=_child_env(), cwd=empty,
    )  # fmt: skip
    assert installed.stdout.startswith(str(pipx_home)), "the demo must run the installed wheel"

    output = tmp_path / "demo.out"
    with output.open("wb") as out:
        demo = subprocess.Popen(
            [str(bin_dir / "lineside"), "demo", "--headless"],
            cwd=empty,
            env=_child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: ended as one below, whatever happens
        )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            demo.wait(timeout=DEMO_SECONDS)  # still running after 60 s
        said_before_stop = output.stat().st_size
        # Ctrl-C at a terminal reaches the whole foreground process group, the broker too.
        os.killpg(demo.pid, signal.SIGINT)
        code = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    text = output.read_text(errors="replace")
    assert code == 0, text
    assert "Traceback" not in text, text
    assert text.rstrip().endswith("demo stopped cleanly"), text
    at_stop = output.read_bytes()[said_before_stop:].decode(errors="replace")
    noisy = [line for line in at_stop.splitlines() if re.search(r"WARNING|ERROR|CRITICAL", line)]
    assert not noisy, f"a clean stop is quiet: {noisy}"

    store = empty / "lineside-demo" / "lineside.db"
    assert store.exists(), f"the demo keeps its state under the current directory: {text}"
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        counts = {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("packs", "temperatures", "label_scans")
        }
    finally:
        db.close()
    assert all(count > 0 for count in counts.values()), counts
    assert sorted(path.name for path in empty.iterdir()) == ["lineside-demo"]
