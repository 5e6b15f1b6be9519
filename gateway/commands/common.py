"""What every ``lineside`` sub-command shares: exit codes, the failure that ends a command,
reading the config, terminal-safe text, and reaching the running gateway's control socket."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from gateway.core.errors import CommandLineError, ConfigError

if TYPE_CHECKING:
    from gateway.config import LinesideConfig
    from gateway.operator_config import OperatorConfig

SubCommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The ``lineside`` parser's sub-commands, to which each command module adds its own."""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3


class CommandFailed(CommandLineError):
    """Ends a sub-command with a message on stderr and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def gateway_config(path: Path) -> LinesideConfig:
    """The whole config; an invalid one ends the command with exit code 3."""
    from gateway.config import load_config  # noqa: PLC0415

    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandFailed(str(exc), EXIT_CONFIG) from None


def printable(text: object) -> str:
    """Text for the terminal: control and format characters (escape sequences, bidi
    overrides) shown as ``\\xNN`` escapes, never passed through."""
    import unicodedata  # noqa: PLC0415

    return "".join(
        ch
        if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
        else ascii(ch)[1:-1]
        for ch in str(text)
    )


def operator_config(path: Path) -> OperatorConfig:
    """The ``[gateway]`` and ``[store]`` sections only: an operator command never resolves
    the config's secrets (gateway/operator_config.py)."""
    from gateway.operator_config import load_operator_config  # noqa: PLC0415

    try:
        return load_operator_config(path)
    except ConfigError as exc:
        raise CommandFailed(str(exc), EXIT_CONFIG) from None


def control_socket(args: argparse.Namespace) -> Path:
    """The control socket: ``--socket``, or the one the config names."""
    socket_path: Path | None = getattr(args, "socket", None)
    if socket_path is not None:
        return socket_path
    return operator_config(args.config).control_socket_path


def send_control(target: LinesideConfig | Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send an operator command to the running gateway; its answer when it accepted it."""
    from gateway.control import ControlClientError, send_command  # noqa: PLC0415

    path = target if isinstance(target, Path) else target.control_socket_path
    try:
        answer = asyncio.run(send_command(path, request))
    except ControlClientError as exc:
        raise CommandFailed(f"lineside: {exc}") from None
    except (OSError, TimeoutError) as exc:
        reason = printable(exc) or type(exc).__name__
        raise CommandFailed(
            f"lineside: cannot reach the gateway at {path}: {reason}; "
            "is `lineside run` running with this config (and may you use its socket: "
            "group lineside-operators)?"
        ) from None
    if not answer.get("ok"):
        raise CommandFailed(f"lineside: refused: {printable(answer.get('error'))}")
    return answer


def add_gateway_target(command: argparse.ArgumentParser, *, warehouse: bool = False) -> None:
    """``--config`` or ``--socket``: where an operator command finds the running gateway
    (or, with ``warehouse``, ``--warehouse``: the central warehouse instead)."""
    where = command.add_mutually_exclusive_group(required=True)
    if warehouse:
        where.add_argument(
            "--warehouse",
            action="store_true",
            help="from the central warehouse (--postgres-dsn-env or --sqlite, and --gateway)",
        )
    where.add_argument("--config", "-c", type=Path, help="the gateway's config file")
    where.add_argument(
        "--socket",
        type=Path,
        help="the gateway's control socket instead of its config (operators in the socket's "
        "group need neither the config nor its secrets)",
    )


def add_output_options(command: argparse.ArgumentParser, all_help: str) -> None:
    """``--json`` (docs/command-output.md) and ``--all``."""
    command.add_argument(
        "--json", action="store_true", help="one JSON document on stdout (docs/command-output.md)"
    )
    command.add_argument("--all", "--verbose", action="store_true", dest="all", help=all_help)


def stdout_is_utf8() -> bool:
    """Whether stdout writes UTF-8 (under the C locale Python 3.11 does, PEP 538/540)."""
    import codecs  # noqa: PLC0415

    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def print_json(document: object) -> None:
    """A ``--json`` document on stdout: ℮ and names as UTF-8 text, not ``\\u`` escapes; on a
    stdout that cannot write them (a non-UTF-8 locale), escaped, so it is still valid JSON."""
    print(
        json.dumps(
            document, indent=2, sort_keys=True, default=str, ensure_ascii=not stdout_is_utf8()
        )
    )


def tolerant_stdio() -> None:
    """On a terminal whose encoding cannot write a character (℮ in a non-UTF-8 locale), write
    it as an escape instead of failing the command with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and stream.errors == "strict":
            reconfigure(errors="backslashreplace")
