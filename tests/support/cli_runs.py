"""``lineside`` sub-commands run as child processes, as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.support.paths import REPO, repo_pythonpath


def lineside(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``lineside ARGS`` to its end (60 s at most); stdout and stderr captured."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env={**(os.environ if env is None else env), "PYTHONPATH": repo_pythonpath()},
    )


async def lineside_async(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`lineside` from a test's event loop (a gateway may be running in that loop)."""
    return await asyncio.to_thread(lineside, *args, env=env)
