"""``lineside run``: load, run, and turn every known failure into one log line and an exit
code systemd can act on (docs/configuration.md, "Exit codes").

    0  stopped cleanly (SIGTERM, SIGINT)
    1  failed while running: restarted by systemd (Restart=on-failure)
    3  the config is invalid, or a file it names is missing or unusable: not restarted
       (RestartPreventExitStatus=3), since a restart cannot fix it
    4  could not start: the store's folder is read-only or full, the store or the control
       socket is in use, or the control socket cannot be created; restarted, as these can
       pass (a disk cleaned, the other gateway stopped), until StartLimitBurst= gives up
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from gateway.commands.common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from gateway.core.errors import (
    ConfigError,
    ControlSocketError,
    LinesideError,
    StartupError,
    StoreInUseError,
)

log = logging.getLogger("lineside")

EXIT_STARTUP = 4
"""Could not start: a folder, file or socket named in the one log line (see above)."""

START_FAILURES = (StartupError, StoreInUseError, ControlSocketError)
"""Failures that name the folder, file or socket at fault: one line, no traceback."""


def run_and_report(config_path: Path, *, log_level: str | None = None) -> int:
    """Run the gateway with the config at ``config_path``; the process's exit code."""
    from gateway.config import load_config  # noqa: PLC0415
    from gateway.logs import configure_logging  # noqa: PLC0415
    from gateway.service import run_gateway  # noqa: PLC0415

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem.format(exc.path)}\n")
        return EXIT_CONFIG
    configure_logging(
        level=log_level or config.gateway.log_level,
        fmt=config.gateway.log_format,
        secrets=config.secrets(),
        gateway_id=config.gateway.id,
    )
    failures: list[LinesideError] = []
    try:
        asyncio.run(run_gateway(config))
    except* LinesideError as group:
        failures.extend(_leaves(group))
    return report_failures(failures, config_path)


def report_failures(failures: list[LinesideError], config_path: Path) -> int:
    """Log each failure (known ones as one line) and return the exit code they add up to."""
    codes = [EXIT_OK]
    for failure in failures:
        if isinstance(failure, ConfigError):
            for problem in failure.problems:
                log.critical("gateway cannot start: %s", problem.format(str(config_path)))
            codes.append(EXIT_CONFIG)
        elif isinstance(failure, START_FAILURES):
            log.critical("gateway cannot start: %s", failure)
            codes.append(EXIT_STARTUP)
        else:
            # Anything else is a fault to trace: it keeps its traceback.
            log.critical("gateway failed: %s", failure, exc_info=failure)
            codes.append(EXIT_FAILURE)
    # A config problem wins: it is the one a restart cannot mend.
    return EXIT_CONFIG if EXIT_CONFIG in codes else max(codes)


def _leaves(group: BaseExceptionGroup[LinesideError]) -> Iterator[LinesideError]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc
