"""``lineside warehouse``: the central warehouse's commands, one sub-command group.

Each part of the central side adds its own sub-commands to the group (``serve``,
``token`` and ``grant-readonly`` come from :mod:`gateway.commands.warehouse_serve`).
"""

from __future__ import annotations

import argparse

from gateway.commands import warehouse_serve
from gateway.commands.common import EXIT_USAGE, CommandFailed, SubCommands


def add_warehouse(commands: SubCommands) -> None:
    """``lineside warehouse``."""
    group = commands.add_parser("warehouse", help="the central warehouse: API, tokens, roles")
    actions = group.add_subparsers(dest="warehouse_command", metavar="ACTION", required=True)
    group.set_defaults(handler=_no_action)
    warehouse_serve.add_warehouse_serve(actions)


def _no_action(args: argparse.Namespace) -> int:
    """Never reached (an action is required); there so the group has a handler like every
    command."""
    del args
    raise CommandFailed(
        "lineside warehouse: give an action (lineside warehouse --help)", EXIT_USAGE
    )
