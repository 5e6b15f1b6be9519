"""Run the suite's Python processes under ``faketime`` (the date-independence check).

libfaketime 0.9.10 (Debian 12) with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` answers EINVAL to
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, …)``, which CPython's ``time.sleep`` uses:
every ``time.sleep``, and every ``Popen.wait(timeout=…)`` (it polls with ``time.sleep``),
would fail, in the suite and in every Python child it starts. ``select`` with a timeout is
not affected, so while libfaketime is preloaded, ``time.sleep`` waits with ``select``.

``tests/conftest.py`` applies this to the test process and puts this folder on the
``PYTHONPATH`` of its children, where Python imports ``sitecustomize`` at start-up. Without
libfaketime it does nothing.
"""

from __future__ import annotations

import os
import select
import time

if "libfaketime" in os.environ.get("LD_PRELOAD", "") and time.sleep.__module__ == "time":

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            select.select([], [], [], remaining)

    time.sleep = _sleep  # type: ignore[assignment]
