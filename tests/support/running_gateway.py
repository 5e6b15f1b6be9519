"""A gateway with its health endpoint, run in the test's event loop or as a process.

Shared by the health, metrics, doctor and secret tests::

    async with gateway_in_process(config_path) as status:
        response = await http_get(f"http://127.0.0.1:{port}/readyz")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx

from gateway.config import load_config
from gateway.sdnotify import Notifier
from gateway.service import run_gateway
from gateway.status import GatewayStatus
from tests.support.paths import REPO
from tests.support.processes import reap


def health_toml(port: int, **options: bool) -> str:
    """A ``[health]`` section on loopback ``port``."""
    extra = "".join(f"{key} = {str(value).lower()}\n" for key, value in options.items())
    return f'\n[health]\nhost = "127.0.0.1"\nport = {port}\n{extra}'


async def http_get(url: str, *, method: str = "GET") -> httpx.Response:
    """One request; connection errors propagate."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.request(method, url)


async def answers(url: str, status: int | None = None) -> bool:
    """Whether ``url`` answers (with ``status``, if given); for ``wait_for``."""
    try:
        response = await http_get(url)
    except httpx.HTTPError:
        return False
    return status is None or response.status_code == status


@contextlib.asynccontextmanager
async def gateway_in_process(
    config_path: Path, *, notifier: Notifier | None = None
) -> AsyncIterator[GatewayStatus]:
    """Run the gateway in this event loop until the block ends; yields its live status."""
    stop = asyncio.Event()
    started: asyncio.Future[GatewayStatus] = asyncio.get_running_loop().create_future()
    runner = asyncio.create_task(
        run_gateway(
            load_config(config_path), stop=stop, notifier=notifier, on_status=started.set_result
        )
    )
    try:
        first: set[asyncio.Future[Any]] = {started, runner}
        done, _ = await asyncio.wait(first, timeout=30, return_when="FIRST_COMPLETED")
        if runner in done:
            runner.result()  # the gateway failed at start: show why
        if started not in done:
            raise AssertionError("the gateway did not start within 30 s")
        yield started.result()
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)


@contextlib.contextmanager
def gateway_process(
    config_path: Path, *, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``lineside run`` as a child process (stderr captured); SIGTERM and wait on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        reap(proc)
