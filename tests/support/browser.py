"""Debian's chromium, headless, driven by Selenium through Debian's chromium-driver
(installed by ``make test``: the Makefile's SYSTEM_TOOLS), and the app served on a free
loopback port in this process for it to load.

The driver starts in a session of its own, so chromium and every renderer it forks are one
process group, ended together (:func:`browser`); the server's socket is ours (bound on port
0: the kernel's free port) and closed after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from gateway.core.http_server import QuietServer, bind_tcp, server_config
from tests.support.waiting import wait_for_sync

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS_ENV = "LINESIDE_SCREENSHOTS_DIR"
"""When set, the screenshots are also copied to this folder (e.g. bench/results/screenshots)."""


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served over HTTP on a free loopback port; its base URL."""
    sock = bind_tcp("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = QuietServer(server_config(app, graceful_s=2, limit_concurrency=64))
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="dashboard-server"
    )
    thread.start()
    try:
        wait_for_sync(lambda: server.started or not thread.is_alive(), 10, "the server")
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@contextlib.contextmanager
def browser(width: int = 1300, height: int = 900) -> Iterator[WebDriver]:
    """Headless chromium; ended with its whole process group."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    service = Service(CHROMEDRIVER, popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=options)
    group = service.process.pid
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def screenshot(driver: WebDriver, folder: Path, name: str) -> Path:
    """The whole page as ``folder/name.png`` (the window grown to the page's height);
    copied to ``$LINESIDE_SCREENSHOTS_DIR`` when that is set."""
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, 600)  # so a short page is not measured at the last one's height
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(max(height + 120, 600), 6000))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
    copies = os.environ.get(SCREENSHOTS_ENV)
    if copies:
        Path(copies).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(copies) / path.name)
    return path
