"""Operator commands to the running gateway: runs, alerts, line modes, the TUI."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from gateway import api
from gateway.commands.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    SubCommands,
    add_gateway_target,
    add_output_options,
    control_socket,
    operator_config,
    print_json,
    printable,
    send_control,
)


def _cmd_run_action(args: argparse.Namespace) -> int:
    request: api.Request = api.EndRun.unchecked(run_number=args.run, operator=args.operator)
    if args.action == "start_run":
        request = api.StartRun.unchecked(
            line=args.line, run_number=args.run, operator=args.operator
        )
    send_control(control_socket(args), request.wire())
    print(
        f"run {args.run}: {'started' if args.action == 'start_run' else 'ended'} by {args.operator}"
    )
    return EXIT_OK


def _known_rule(rule: str | None, command: str) -> None:
    """Refuse a ``--rule`` that no alert can carry: the gateway would answer "no alert of
    rule x", which reads as "all clear" when the id is only misspelt."""
    from gateway.config.hints import did_you_mean  # noqa: PLC0415
    from rules.ids import ALL_RULES  # noqa: PLC0415

    if rule and rule not in ALL_RULES:
        raise CommandFailed(
            f"lineside {command}: unknown rule {printable(rule)!r}{did_you_mean(rule, ALL_RULES)}",
            EXIT_USAGE,
        )


def _cmd_alerts(args: argparse.Namespace) -> int:
    from gateway.alerts_command import (  # noqa: PLC0415
        AlertsUnavailable,
        alerts_document,
        format_alerts,
        listing_from_store,
    )
    from gateway.control import ControlClientError, send_command  # noqa: PLC0415

    _known_rule(args.rule, "alerts")
    request = api.Alerts.unchecked(line=args.line or None, rule=args.rule or None)
    path = control_socket(args)
    try:
        answer = asyncio.run(send_command(path, request.wire()))
        source = "gateway"
    except (OSError, TimeoutError, ControlClientError) as exc:
        if args.config is None:
            reason = printable(exc) or type(exc).__name__
            raise CommandFailed(
                f"lineside alerts: cannot reach the gateway at {path}: {reason}"
            ) from None
        # A stopped gateway: its store has the same alerts (whoever may read it).
        try:
            answer = listing_from_store(
                operator_config(args.config).store.path,
                line=args.line,
                rule=args.rule,
                limit=api.MAX_LIST_ALERTS,
            )
        except AlertsUnavailable as err:
            raise CommandFailed(f"lineside alerts: {err}") from None
        answer["ok"] = True
        source = "store"
        print(f"lineside alerts: no gateway at {path}; read from its store", file=sys.stderr)
    if not answer.get("ok"):
        raise CommandFailed(f"lineside: refused: {printable(answer.get('error'))}")
    if args.json:
        print_json(alerts_document(answer, source=source))
    else:
        print(format_alerts(answer, show_all=args.all, printable=printable))
    return EXIT_OK


def _selector(args: argparse.Namespace) -> dict[str, Any]:
    if args.alert is None and args.rule is None and args.line is None:
        raise CommandFailed("lineside: name an alert (its reference or id), --rule or --line")
    if args.alert is not None and (args.rule or args.line):
        raise CommandFailed("lineside: name one alert, or --rule and/or --line, not both")
    return {
        k: v for k, v in (("alert_id", args.alert), ("rule", args.rule), ("line", args.line)) if v
    }


def _cmd_ack(args: argparse.Namespace) -> int:
    _known_rule(args.rule, "ack")
    request = api.Acknowledge.unchecked(
        **_selector(args), operator=args.operator, comment=args.comment
    )
    answer = send_control(control_socket(args), request.wire())
    count = len(answer.get("alerts") or [])
    print(f"{count} alert(s) acknowledged by {args.operator}")
    return EXIT_OK


def _cmd_shelve(args: argparse.Namespace) -> int:
    _known_rule(args.rule, "shelve")
    request = api.Shelve.unchecked(
        **_selector(args), minutes=args.minutes, operator=args.operator, comment=args.comment
    )
    answer = send_control(control_socket(args), request.wire())
    count = len(answer.get("alerts") or [])
    print(f"{count} alert(s) shelved for {args.minutes:g} min by {args.operator}")
    return EXIT_OK


def _cmd_line_mode(args: argparse.Namespace) -> int:
    send_control(
        control_socket(args),
        api.LineMode.unchecked(line=args.line, mode=args.mode, operator=args.operator).wire(),
    )
    print(f"line {args.line}: {args.mode} (by {args.operator})")
    return EXIT_OK


def _cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import run_tui  # noqa: PLC0415  (Textual loads only for this command)

    socket_path: Path = args.socket or operator_config(args.config).control_socket_path
    return run_tui(socket_path, operator=args.operator)


def add_run_actions(commands: SubCommands) -> None:
    """``lineside run-start`` and ``run-end``."""
    for action, verb in (("start_run", "start"), ("end_run", "end")):
        command = commands.add_parser(
            f"run-{verb}", help=f"{verb} a production run from the line (ERP lagging)"
        )
        add_gateway_target(command)
        if action == "start_run":
            command.add_argument("--line", required=True, help="line id")
        command.add_argument("--run", required=True, help="run number")
        command.add_argument("--operator", required=True, help="who does it (recorded)")
        command.set_defaults(handler=_cmd_run_action, action=action)


def add_alerts(commands: SubCommands) -> None:
    """``lineside alerts``."""
    alerts = commands.add_parser(
        "alerts", help="list the active alerts and those awaiting acknowledgement, with refs"
    )
    add_gateway_target(alerts)
    alerts.add_argument("--line", help="only this line's")
    alerts.add_argument("--rule", help="only this rule's")
    add_output_options(alerts, "list every cleared alert awaiting acknowledgement, not a count")
    alerts.set_defaults(handler=_cmd_alerts)


def add_ack_and_shelve(commands: SubCommands) -> None:
    """``lineside ack`` and ``shelve``."""
    for name, verb in (("ack", "acknowledge"), ("shelve", "shelve")):
        command = commands.add_parser(
            name, help=f"{verb} an alert, or every alert of a rule and/or a line"
        )
        command.add_argument(
            "alert", nargs="?", help="the alert's short reference or id (see lineside alerts)"
        )
        command.add_argument("--rule", help=f"{verb} every alert of this rule (e.g. label_weight)")
        command.add_argument("--line", help=f"{verb} every alert of this line")
        add_gateway_target(command)
        command.add_argument("--operator", required=True, help="who does it (recorded)")
        command.add_argument(
            "--comment", default="", help="what was done, or why (500 characters at most)"
        )
        if name == "shelve":
            command.add_argument(
                "--minutes", type=float, required=True, help="how long (1 to 1440)"
            )
        command.set_defaults(handler=_cmd_ack if name == "ack" else _cmd_shelve)


def add_line_mode(commands: SubCommands) -> None:
    """``lineside line-mode``."""
    mode = commands.add_parser("line-mode", help="set a line to production, changeover or washdown")
    add_gateway_target(mode)
    mode.add_argument("--line", required=True, help="line id")
    mode.add_argument("--operator", required=True, help="who changes it (recorded)")
    mode.add_argument("mode", choices=["production", "changeover", "washdown"])
    mode.set_defaults(handler=_cmd_line_mode)


def add_tui(commands: SubCommands) -> None:
    """``lineside tui``."""
    tui = commands.add_parser(
        "tui", help="operator terminal UI (connects to the running gateway's control socket)"
    )
    where = tui.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", "-c", type=Path, help="gateway config file")
    where.add_argument(
        "--socket",
        type=Path,
        help="the gateway's control socket instead of its config (the config may hold "
        "secrets a console user cannot read)",
    )
    tui.add_argument(
        "--operator", default="", help="operator name offered when acknowledging alerts"
    )
    tui.set_defaults(handler=_cmd_tui)
