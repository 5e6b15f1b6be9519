"""The ``lineside`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__, modbus_probe, opcua_browse
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.config import LinesideConfig
    from gateway.operator_config import OperatorConfig

log = logging.getLogger("lineside")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3


class CommandFailed(Exception):
    """Ends a sub-command with a message on stderr and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def _config(path: Path) -> LinesideConfig:
    from gateway.config import load_config  # noqa: PLC0415

    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandFailed(str(exc), EXIT_CONFIG) from None


def _printable(text: object) -> str:
    """Text for the terminal: control and format characters (escape sequences, bidi
    overrides) shown as ``\\xNN`` escapes, never passed through."""
    import unicodedata  # noqa: PLC0415

    return "".join(
        ch
        if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
        else ascii(ch)[1:-1]
        for ch in str(text)
    )


def _operator_config(path: Path) -> OperatorConfig:
    """The ``[gateway]`` and ``[store]`` sections only: an operator command never resolves
    the config's secrets (gateway/operator_config.py)."""
    from gateway.operator_config import load_operator_config  # noqa: PLC0415

    try:
        return load_operator_config(path)
    except ConfigError as exc:
        raise CommandFailed(str(exc), EXIT_CONFIG) from None


def _socket_path(args: argparse.Namespace) -> Path:
    """The control socket: ``--socket``, or the one the config names."""
    socket_path: Path | None = getattr(args, "socket", None)
    if socket_path is not None:
        return socket_path
    return _operator_config(args.config).control_socket_path


def _control(target: LinesideConfig | Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send an operator command to the running gateway; its answer when it accepted it."""
    from gateway.control import ControlClientError, send_command  # noqa: PLC0415

    path = target if isinstance(target, Path) else target.control_socket_path
    try:
        answer = asyncio.run(send_command(path, request))
    except ControlClientError as exc:
        raise CommandFailed(f"lineside: {exc}") from None
    except (OSError, TimeoutError) as exc:
        reason = _printable(exc) or type(exc).__name__
        raise CommandFailed(
            f"lineside: cannot reach the gateway at {path}: {reason}; "
            "is `lineside run` running with this config (and may you use its socket: "
            "group lineside-operators)?"
        ) from None
    if not answer.get("ok"):
        raise CommandFailed(f"lineside: refused: {_printable(answer.get('error'))}")
    return answer


def _cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.config import json_schema, load_config  # noqa: PLC0415

    if args.schema:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
        return EXIT_OK
    if args.path is None:
        print("lineside check-config: give a config file (or --schema)", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(exc.path), file=sys.stderr)
        print(f"{exc.path}: {len(exc.problems)} problem(s); not valid", file=sys.stderr)
        return EXIT_CONFIG
    from gateway.config_coverage import coverage_warnings  # noqa: PLC0415

    # Not fatal: the config is valid, but some rules will not see what they judge.
    for warning in coverage_warnings(config):
        print(warning.format(str(args.path)), file=sys.stderr)
    kinds: dict[str, int] = {}
    for device in config.devices:
        kinds[device.kind] = kinds.get(device.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no devices"
    print(
        f"{args.path}: valid: gateway {config.gateway.id} at site {config.gateway.site}, "
        f"{len(config.lines)} line(s), {len(config.devices)} device(s) ({summary}), "
        f"store {config.store.path}"
    )
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from gateway.doctor import diagnose  # noqa: PLC0415

    report = asyncio.run(
        diagnose(args.config, credentials=args.credentials, timeout_s=args.timeout)
    )
    print(report.format())
    return report.exit_code


def _cmd_run(args: argparse.Namespace) -> int:
    from gateway.run_failures import run_and_report  # noqa: PLC0415

    return run_and_report(args.config, log_level=args.log_level)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from adapters.simulators.cli import run_simulate  # noqa: PLC0415
    from gateway.logs import configure_logging  # noqa: PLC0415

    configure_logging(level=args.log_level or "info")
    return run_simulate(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo  # noqa: PLC0415

    return run_demo(args)


def _cmd_run_action(args: argparse.Namespace) -> int:
    request = {"command": args.action, "run_number": args.run, "operator": args.operator}
    if args.action == "start_run":
        request["line"] = args.line
    _control(_socket_path(args), request)
    print(
        f"run {args.run}: {'started' if args.action == 'start_run' else 'ended'} by {args.operator}"
    )
    return EXIT_OK


def _cmd_alerts(args: argparse.Namespace) -> int:
    from gateway.alert_listing import MAX_LIST_ALERTS  # noqa: PLC0415
    from gateway.alerts_command import (  # noqa: PLC0415
        AlertsUnavailable,
        alerts_document,
        format_alerts,
        listing_from_store,
    )
    from gateway.control import ControlClientError, send_command  # noqa: PLC0415

    request = {"command": "alerts", "line": args.line, "rule": args.rule}
    path = _socket_path(args)
    try:
        answer = asyncio.run(send_command(path, {k: v for k, v in request.items() if v}))
        source = "gateway"
    except (OSError, TimeoutError, ControlClientError) as exc:
        if args.config is None:
            reason = _printable(exc) or type(exc).__name__
            raise CommandFailed(
                f"lineside alerts: cannot reach the gateway at {path}: {reason}"
            ) from None
        # A stopped gateway: its store has the same alerts (whoever may read it).
        try:
            answer = listing_from_store(
                _operator_config(args.config).store.path,
                line=args.line,
                rule=args.rule,
                limit=MAX_LIST_ALERTS,
            )
        except AlertsUnavailable as err:
            raise CommandFailed(f"lineside alerts: {err}") from None
        answer["ok"] = True
        source = "store"
        print(f"lineside alerts: no gateway at {path}; read from its store", file=sys.stderr)
    if not answer.get("ok"):
        raise CommandFailed(f"lineside: refused: {_printable(answer.get('error'))}")
    if args.json:
        print(json.dumps(alerts_document(answer, source=source), indent=2, sort_keys=True))
    else:
        print(format_alerts(answer, show_all=args.all, printable=_printable))
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
    request = {
        "command": "acknowledge",
        **_selector(args),
        "operator": args.operator,
        "comment": args.comment,
    }
    answer = _control(_socket_path(args), request)
    count = len(answer.get("alerts") or [])
    print(f"{count} alert(s) acknowledged by {args.operator}")
    return EXIT_OK


def _cmd_shelve(args: argparse.Namespace) -> int:
    request = {
        "command": "shelve",
        **_selector(args),
        "minutes": args.minutes,
        "operator": args.operator,
        "comment": args.comment,
    }
    answer = _control(_socket_path(args), request)
    count = len(answer.get("alerts") or [])
    print(f"{count} alert(s) shelved for {args.minutes:g} min by {args.operator}")
    return EXIT_OK


def _cmd_line_mode(args: argparse.Namespace) -> int:
    _control(
        _socket_path(args),
        {"command": "line_mode", "line": args.line, "mode": args.mode, "operator": args.operator},
    )
    print(f"line {args.line}: {args.mode} (by {args.operator})")
    return EXIT_OK


def _seq_args(values: Sequence[str]) -> list[int | list[int]]:
    """``SEQ`` and ``FIRST-LAST`` arguments as the control request's ``seqs``."""
    seqs: list[int | list[int]] = []
    for value in values:
        first, dash, last = value.partition("-")
        try:
            if dash:
                seqs.append([int(first), int(last)])
            else:
                seqs.append(int(value))
        except ValueError:
            raise CommandFailed(
                f"lineside dead-letter: {_printable(value)!s} is not a sequence number or a "
                "FIRST-LAST range",
                EXIT_USAGE,
            ) from None
    return seqs


def _when(ts_us: object) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    if not isinstance(ts_us, int) or ts_us <= 0:
        return "-"
    return datetime.fromtimestamp(ts_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _cmd_dead_letter(args: argparse.Namespace) -> int:
    path = _socket_path(args)
    if args.action == "list":
        request: dict[str, Any] = {"command": "dead_letter_list", "limit": args.limit}
        if args.after:
            request["after"] = args.after
        answer = _control(path, request)
        records = answer.get("records") or []
        for entry in records:
            print(
                f"{entry.get('seq'):>12}  {_printable(entry.get('stream')):<16} "
                f"{_when(entry.get('ts_us'))}  {_printable(entry.get('reason'))}"
            )
        total = answer.get("total", len(records))
        if not total:
            print("the sync quarantine is empty")
        else:
            more = f"; more after {records[-1].get('seq')} (--after)" if answer.get("more") else ""
            print(f"{total} record(s) in the sync quarantine{more}")
        return EXIT_OK
    if args.action == "show":
        answer = _control(path, {"command": "dead_letter_show", "seq": args.seq})
        entry = answer.get("record") or {}
        print(f"seq          {entry.get('seq')}")
        print(f"stream       {_printable(entry.get('stream'))}")
        print(f"quarantined  {_when(entry.get('ts_us'))}")
        print(f"reason       {_printable(entry.get('reason'))}")
        data = answer.get("data")
        shown = json.dumps(data, indent=2, sort_keys=True) if data is not None else "(gone)"
        print(f"record       {shown}")
        return EXIT_OK
    answer = _control(
        path,
        {
            "command": "dead_letter_requeue",
            "seqs": _seq_args(args.seqs),
            "reason": args.reason,
            "operator": args.operator,
        },
    )
    print(f"re-queued {answer.get('requeued')} record(s): {_printable(answer.get('seqs'))}")
    for why, seqs in (answer.get("not_requeued") or {}).items():
        print(f"not re-queued ({_printable(why)}): {_printable(seqs)}")
    print(f"{answer.get('left')} record(s) left in the sync quarantine")
    return EXIT_OK


def _cmd_shelf_life(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415
    import sqlite3  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from adapters.erp.model import run_from_json  # noqa: PLC0415
    from gateway.rules_engine import run_context  # noqa: PLC0415
    from rules.shelf_life import nearing_date  # noqa: PLC0415

    config = _config(args.config)
    try:
        db = sqlite3.connect(f"file:{config.store.path}?mode=ro", uri=True, timeout=5)
        payloads = [p for (p,) in db.execute("SELECT payload FROM runs")]
        db.close()
    except sqlite3.Error as exc:
        print(f"lineside shelf-life: cannot read {config.store.path}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    runs = [run_context(run_from_json(json.loads(p)), config.rules) for p in payloads]
    today = datetime.now(UTC).date()
    found = nearing_date(
        runs,
        today,
        args.within_days,
        base_days=config.rules.shelf_life_base_days,
        freeze_day=config.rules.freeze_down_day,
    )
    for item in found:
        state = "EXPIRED" if item.expired else f"{item.days_left} day(s) left"
        freeze = "  FREEZE DOWN DUE" if item.freeze_down_due else ""
        print(
            f"{item.run_number:<16} line {item.line:<6} packed {item.pack_date}  "
            f"use-by {item.use_by}  day {item.day}  {state}{freeze}"
        )
    if not found:
        print(f"nothing within {args.within_days} day(s) of its use-by or due to be frozen down")
    return EXIT_OK


def _cmd_erp_check(args: argparse.Namespace) -> int:
    from gateway.erp_check import run_erp_check  # noqa: PLC0415

    text, code = run_erp_check(
        args.url,
        token_file=args.token_file,
        as_json=args.json,
        timezone=args.timezone,
        ca_file=args.ca_file,
    )
    print(text)
    return code


def _cmd_erp_sync(args: argparse.Namespace) -> int:
    from gateway.erp_sync import run_erp_sync_once  # noqa: PLC0415
    from gateway.logs import configure_logging  # noqa: PLC0415

    configure_logging(level="info")
    return run_erp_sync_once(args.config, full=args.full)


def _cmd_report(args: argparse.Namespace) -> int:
    from gateway.report import ReportError, build_report  # noqa: PLC0415
    from gateway.report_output import (  # noqa: PLC0415
        SUMMARY_HINT,
        format_full,
        format_summary,
        report_document,
        run_alerts,
        run_losses,
    )

    if args.socket is not None:
        # From the running gateway: no config, no store access needed (no --all there).
        if args.all:
            raise CommandFailed("lineside report: --all needs --config (it reads the store)")
        document = _control(args.socket, {"command": "report", "run_number": args.run})["report"]
        if args.json:
            print(json.dumps(document, indent=2, sort_keys=True))
        else:
            print(format_summary(document, printable=_printable) + SUMMARY_HINT)
        return EXIT_OK
    store_path = _operator_config(args.config).store.path
    try:
        report = build_report(store_path, args.run)
        losses, alerts = run_losses(store_path, report), run_alerts(store_path, report)
    except ReportError as exc:
        print(f"lineside report: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    document = report_document(report, losses, alerts, with_transitions=args.all)
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True, default=str))
    else:
        text = format_summary(document, printable=_printable)
        print(text + (format_full(report) if args.all else SUMMARY_HINT))
    return EXIT_OK


def _read_secret_file(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        message = f"lineside ingest: cannot read the {what} {path}: {exc}"
        raise CommandFailed(message, EXIT_USAGE) from None


def _cmd_ingest(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging  # noqa: PLC0415
    from sync.ingest import IngestSettings, run_ingest  # noqa: PLC0415
    from sync.ingest.auth import TokenFile, TokenFileError  # noqa: PLC0415

    configure_logging(level=args.log_level)
    dsn = os.environ.get(args.postgres_dsn_env) if args.postgres_dsn_env else None
    if args.postgres_dsn_env and not dsn:
        print(f"lineside ingest: ${args.postgres_dsn_env} is not set", file=sys.stderr)
        return EXIT_USAGE
    if (args.mqtt_username is None) != (args.mqtt_password_file is None):
        raise CommandFailed(
            "lineside ingest: --mqtt-username and --mqtt-password-file go together", EXIT_USAGE
        )
    http = not args.no_http
    if http and args.gateway_tokens is None:
        raise CommandFailed(
            "lineside ingest: HTTP ingest needs --gateway-tokens FILE (who may post), or --no-http",
            EXIT_USAGE,
        )
    password = None
    if args.mqtt_password_file is not None:
        password = _read_secret_file(args.mqtt_password_file, "MQTT password file")
    tokens = None
    if http and args.gateway_tokens is not None:
        try:
            tokens = TokenFile(path=args.gateway_tokens)
        except TokenFileError as exc:
            raise CommandFailed(f"lineside ingest: {exc}", EXIT_USAGE) from None
    options: dict[str, Any] = {}
    if args.ack_keys is not None:
        from sync.ingest.ack_keys import AckKeyFileError, AckKeys  # noqa: PLC0415

        try:
            options["ack_keys"] = AckKeys(path=args.ack_keys)
        except AckKeyFileError as exc:
            raise CommandFailed(f"lineside ingest: {exc}", EXIT_USAGE) from None
    elif not args.no_mqtt:
        log.warning("no --ack-keys: acks go out unsigned, and gateways with an ack_key refuse them")
    if args.client_id is not None:
        options["client_id"] = args.client_id
    if args.max_message_bytes is not None:
        options["max_message_bytes"] = args.max_message_bytes
    try:
        settings = IngestSettings(
            mqtt_host=args.mqtt_host,
            mqtt_port=args.mqtt_port,
            mqtt_enabled=not args.no_mqtt,
            username=args.mqtt_username,
            password=password,
            tls_ca=args.mqtt_tls_ca,
            tls_cert=args.mqtt_tls_cert,
            tls_key=args.mqtt_tls_key,
            http_host=args.http_host,
            http_port=args.http_port,
            http_enabled=http,
            http_tls_cert=args.http_tls_cert,
            http_tls_key=args.http_tls_key,
            http_tls_client_ca=args.http_tls_client_ca,
            gateway_tokens=tokens,
            postgres_dsn=dsn,
            sqlite_path=args.sqlite,
            **options,
        )
    except ValueError as exc:
        raise CommandFailed(f"lineside ingest: {exc}", EXIT_USAGE) from None
    if password is not None and settings.tls_ca is None and not _loopback(settings.mqtt_host):
        log.warning("the MQTT password goes to %s without TLS (--mqtt-tls-ca)", args.mqtt_host)
    if http and settings.http_tls_cert is None and not _loopback(settings.http_host):
        log.warning(
            "HTTP ingest on %s without TLS: bearer tokens cross the network in clear "
            "(--http-tls-cert/--http-tls-key, or a TLS proxy in front)",
            args.http_host,
        )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_ingest(settings))
    return EXIT_OK


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _cmd_ingest_token(args: argparse.Namespace) -> int:
    from sync.ingest.auth import (  # noqa: PLC0415
        TokenFileError,
        hash_token,
        new_token,
        read_tokens,
        write_tokens,
    )

    try:
        tokens = read_tokens(args.tokens)
    except TokenFileError as exc:
        raise CommandFailed(f"lineside ingest-token: {exc}") from None
    if args.action == "list":
        for gateway in sorted(tokens):
            print(f"{gateway}\t{tokens[gateway].scheme}")
        return EXIT_OK
    gateway = args.gateway
    if args.action == "remove":
        if tokens.pop(gateway, None) is None:
            raise CommandFailed(f"lineside ingest-token: {gateway} has no token in {args.tokens}")
        write_tokens(args.tokens, tokens)
        print(f"{gateway}: token revoked (the ingest re-reads {args.tokens} within a second)")
        return EXIT_OK
    try:
        token = new_token(gateway)
    except ValueError as exc:
        raise CommandFailed(f"lineside ingest-token: {exc}", EXIT_USAGE) from None
    if args.token_file is not None:
        # The gateway's copy: only its owner may read it; never overwritten silently.
        try:
            fd = os.open(args.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise CommandFailed(
                f"lineside ingest-token: {args.token_file} exists; remove it first", EXIT_USAGE
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
    tokens[gateway] = hash_token(token, scheme=args.scheme)
    write_tokens(args.tokens, tokens)
    if args.token_file is None:
        print(token)
    else:
        print(f"{gateway}: token written to {args.token_file}; its hash to {args.tokens}")
    return EXIT_OK


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from gateway.reconcile_output import format_reconcile, reconcile_document  # noqa: PLC0415
    from sync.ingest.warehouse import create_warehouse  # noqa: PLC0415
    from sync.reconcile import Reconciliation, reconcile_counts  # noqa: PLC0415

    config = _operator_config(args.config)
    dsn = os.environ.get(args.postgres_dsn_env) if args.postgres_dsn_env else None
    if args.postgres_dsn_env and not dsn:
        raise CommandFailed(f"lineside reconcile: ${args.postgres_dsn_env} is not set", EXIT_USAGE)
    warehouse = create_warehouse(postgres_dsn=dsn, sqlite_path=args.sqlite)

    async def compare() -> Reconciliation:
        await warehouse.open()
        try:
            return await reconcile_counts(config.store.path, warehouse, config.gateway.id)
        finally:
            await warehouse.close()

    result = asyncio.run(compare())
    if args.json:
        document = reconcile_document(result, config.gateway.id)
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(format_reconcile(result, config.gateway.id))
    if result.differences:
        print(f"{len(result.differences)} bucket(s) differ", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import run_tui  # noqa: PLC0415  (Textual loads only for this command)

    socket_path: Path = args.socket or _operator_config(args.config).control_socket_path
    return run_tui(socket_path, operator=args.operator)


def _gateway_target(command: argparse.ArgumentParser) -> None:
    """``--config`` or ``--socket``: where an operator command finds the running gateway."""
    where = command.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", "-c", type=Path, help="the gateway's config file")
    where.add_argument(
        "--socket",
        type=Path,
        help="the gateway's control socket instead of its config (operators in the socket's "
        "group need neither the config nor its secrets)",
    )


def _output_options(command: argparse.ArgumentParser, all_help: str) -> None:
    """``--json`` (docs/command-output.md) and ``--all``."""
    command.add_argument(
        "--json", action="store_true", help="one JSON document on stdout (docs/command-output.md)"
    )
    command.add_argument("--all", "--verbose", action="store_true", dest="all", help=all_help)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="lineside",
        description="Lineside: edge gateway for fish and food packing lines.",
    )
    parser.add_argument("--version", action="version", version=f"lineside {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run the gateway service")
    run.add_argument("--config", "-c", type=Path, required=True, help="config file (TOML)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.set_defaults(handler=_cmd_run)

    check = commands.add_parser(
        "check-config", help="validate a config file and print every problem with its key path"
    )
    check.add_argument("path", type=Path, nargs="?", help="config file (TOML)")
    check.add_argument("--schema", action="store_true", help="print the config JSON Schema")
    check.set_defaults(handler=_cmd_check_config)

    doctor = commands.add_parser(
        "doctor",
        help="check a live installation (config, store, devices, uplink, clock) and say "
        "what to fix",
    )
    doctor.add_argument("--config", "-c", type=Path, required=True, help="config file (TOML)")
    doctor.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="folder of the config's { credential = NAME } secrets "
        "(default: $CREDENTIALS_DIRECTORY, else /etc/credstore)",
    )
    doctor.add_argument(
        "--timeout", type=float, default=3.0, help="seconds allowed for each network check"
    )
    doctor.set_defaults(handler=_cmd_doctor)

    simulate = commands.add_parser(
        "simulate", help="run simulated checkweighers, probes and a label scanner"
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address to listen on")
    simulate.add_argument("--opcua-port", type=int, default=48400)
    simulate.add_argument("--modbus-port", type=int, default=50200)
    simulate.add_argument("--scanner-port", type=int, default=50300)
    simulate.add_argument("--erp-port", type=int, default=48500)
    simulate.add_argument(
        "--scenario",
        default="demo",
        help="normal, underweight_drift, temperature_excursion, label_gap, dropout or demo",
    )
    simulate.add_argument("--seed", type=int, default=1, help="random seed (same seed, same run)")
    simulate.add_argument(
        "--speed", type=float, default=1.0, help="time factor (2 = twice as fast)"
    )
    simulate.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    simulate.set_defaults(handler=_cmd_simulate)

    demo = commands.add_parser(
        "demo", help="simulated devices, the gateway and a live view, all on this machine"
    )
    demo.add_argument(
        "--config",
        type=Path,
        default=None,
        help="demo config (default: config/demo.toml here, else the one shipped in the package)",
    )
    demo.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the demo keeps its store and log (default for the shipped config: "
        "./lineside-demo)",
    )
    demo.add_argument("--seconds", type=float, default=None, help="stop after this long")
    demo.add_argument(
        "--headless",
        action="store_true",
        help="no TUI: print a status line a second instead (also when not on a terminal)",
    )
    demo.add_argument(
        "--keep-store",
        action="store_true",
        help="keep the last demo's store and warehouse (by default each demo starts afresh)",
    )
    # The back end that `lineside demo` starts for its TUI: it stops when its stdin closes.
    demo.add_argument("--backend", action="store_true", help=argparse.SUPPRESS)
    demo.set_defaults(handler=_cmd_demo)

    for action, verb in (("start_run", "start"), ("end_run", "end")):
        command = commands.add_parser(
            f"run-{verb}", help=f"{verb} a production run from the line (ERP lagging)"
        )
        _gateway_target(command)
        if action == "start_run":
            command.add_argument("--line", required=True, help="line id")
        command.add_argument("--run", required=True, help="run number")
        command.add_argument("--operator", required=True, help="who does it (recorded)")
        command.set_defaults(handler=_cmd_run_action, action=action)

    erp = commands.add_parser(
        "erp-sync", help="poll the ERP once into the store (stop the gateway first)"
    )
    erp.add_argument("--config", "-c", type=Path, required=True, help="config file")
    erp.add_argument("--full", action="store_true", help="ignore the watermark: reload all runs")
    erp.set_defaults(handler=_cmd_erp_sync)

    erp_check = commands.add_parser(
        "erp-check", help="fetch one page from an ERP endpoint and check it against the contract"
    )
    erp_check.add_argument("url", help="the ERP's run endpoint, e.g. https://erp/api/runs")
    erp_check.add_argument("--token-file", type=Path, help="file holding the bearer token")
    erp_check.add_argument("--ca-file", type=Path, help="CA bundle for the ERP's certificate")
    erp_check.add_argument("--timezone", default="Europe/London", help="the ERP's time zone")
    erp_check.add_argument("--json", action="store_true", help="print the findings as JSON")
    erp_check.set_defaults(handler=_cmd_erp_check)

    alerts = commands.add_parser(
        "alerts", help="list the active alerts and those awaiting acknowledgement, with refs"
    )
    _gateway_target(alerts)
    alerts.add_argument("--line", help="only this line's")
    alerts.add_argument("--rule", help="only this rule's")
    _output_options(alerts, "list every cleared alert awaiting acknowledgement, not a count")
    alerts.set_defaults(handler=_cmd_alerts)

    for name, verb in (("ack", "acknowledge"), ("shelve", "shelve")):
        command = commands.add_parser(
            name, help=f"{verb} an alert, or every alert of a rule and/or a line"
        )
        command.add_argument(
            "alert", nargs="?", help="the alert's short reference or id (see lineside alerts)"
        )
        command.add_argument("--rule", help=f"{verb} every alert of this rule (e.g. label_weight)")
        command.add_argument("--line", help=f"{verb} every alert of this line")
        _gateway_target(command)
        command.add_argument("--operator", required=True, help="who does it (recorded)")
        command.add_argument(
            "--comment", default="", help="what was done, or why (500 characters at most)"
        )
        if name == "shelve":
            command.add_argument(
                "--minutes", type=float, required=True, help="how long (1 to 1440)"
            )
        command.set_defaults(handler=_cmd_ack if name == "ack" else _cmd_shelve)

    mode = commands.add_parser("line-mode", help="set a line to production, changeover or washdown")
    _gateway_target(mode)
    mode.add_argument("--line", required=True, help="line id")
    mode.add_argument("--operator", required=True, help="who changes it (recorded)")
    mode.add_argument("mode", choices=["production", "changeover", "washdown"])
    mode.set_defaults(handler=_cmd_line_mode)

    dead = commands.add_parser(
        "dead-letter",
        help="records the warehouse refused (the sync quarantine): list, show, re-queue",
    )
    dead_actions = dead.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = dead_actions.add_parser("list", help="list the quarantined records")
    _gateway_target(listing)
    listing.add_argument("--after", type=int, default=0, help="only those after this seq")
    listing.add_argument("--limit", type=int, default=200, help="at most this many (1000)")
    show = dead_actions.add_parser("show", help="one quarantined record, with its data")
    show.add_argument("seq", type=int, help="its sequence number")
    _gateway_target(show)
    requeue = dead_actions.add_parser(
        "requeue", help="send quarantined records again (recorded with who and why)"
    )
    requeue.add_argument("seqs", nargs="+", metavar="SEQ", help="sequence numbers or FIRST-LAST")
    _gateway_target(requeue)
    requeue.add_argument("--reason", required=True, help="why they can go now (recorded)")
    requeue.add_argument("--operator", required=True, help="who re-queues them (recorded)")
    dead.set_defaults(handler=_cmd_dead_letter)

    shelf = commands.add_parser(
        "shelf-life", help="product nearing its use-by or due to be frozen down"
    )
    shelf.add_argument("--config", "-c", type=Path, required=True, help="config file")
    shelf.add_argument("--within-days", type=int, default=2, help="how close to the use-by")
    shelf.set_defaults(handler=_cmd_shelf_life)

    report = commands.add_parser("report", help="print the report of a production run")
    report.add_argument("run", help="run number")
    _gateway_target(report)
    _output_options(report, "also every ℮ batch and every alert transition")
    report.set_defaults(handler=_cmd_report)

    rec = commands.add_parser(
        "reconcile", help="compare this gateway's counts with the warehouse's"
    )
    rec.add_argument("--config", "-c", type=Path, required=True, help="gateway config file")
    rec.add_argument("--postgres-dsn-env", metavar="VAR", help="env var with the warehouse DSN")
    rec.add_argument("--sqlite", type=Path, default=None, help="warehouse SQLite file instead")
    rec.add_argument(
        "--json", action="store_true", help="one JSON document on stdout (docs/command-output.md)"
    )
    rec.set_defaults(handler=_cmd_reconcile)

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
    ingest = commands.add_parser(
        "ingest", help="central ingest: MQTT and HTTPS batches into the warehouse"
    )
    ingest.add_argument("--mqtt-host", default="127.0.0.1", help="broker host")
    ingest.add_argument("--mqtt-port", type=int, default=1883, help="broker port")
    ingest.add_argument(
        "--client-id",
        help="MQTT client id (default lineside-ingest-<host name>: stable across restarts, "
        "so the broker keeps the ingest's session; give each instance on one host its own)",
    )
    ingest.add_argument("--mqtt-username", help="the ingest's broker user name")
    ingest.add_argument(
        "--mqtt-password-file",
        type=Path,
        metavar="FILE",
        help="file holding the broker password (e.g. a systemd credential, %%d/mqtt-password)",
    )
    ingest.add_argument("--mqtt-tls-ca", type=Path, metavar="FILE", help="CA of the broker: TLS")
    ingest.add_argument(
        "--mqtt-tls-cert", type=Path, metavar="FILE", help="client certificate for the broker"
    )
    ingest.add_argument("--mqtt-tls-key", type=Path, metavar="FILE", help="its private key")
    ingest.add_argument(
        "--max-message-bytes",
        type=int,
        metavar="N",
        help="largest MQTT message accepted (default: a full 4 MiB batch plus headroom)",
    )
    ingest.add_argument(
        "--ack-keys",
        type=Path,
        metavar="FILE",
        help="the gateways' ack keys, one <gateway id>:<key> a line: acks are signed with them "
        "(a gateway with [sync.mqtt] ack_key refuses unsigned acks)",
    )
    ingest.add_argument("--no-mqtt", action="store_true", help="HTTPS ingest only")
    ingest.add_argument("--http-host", default="127.0.0.1", help="HTTP listen address")
    ingest.add_argument("--http-port", type=int, default=8088, help="HTTP port")
    ingest.add_argument("--no-http", action="store_true", help="MQTT ingest only")
    ingest.add_argument(
        "--gateway-tokens",
        type=Path,
        metavar="FILE",
        help="the gateways' token hashes (lineside ingest-token); required with HTTP",
    )
    ingest.add_argument(
        "--http-tls-cert", type=Path, metavar="FILE", help="serve HTTPS with this certificate"
    )
    ingest.add_argument("--http-tls-key", type=Path, metavar="FILE", help="its private key")
    ingest.add_argument(
        "--http-tls-client-ca",
        type=Path,
        metavar="FILE",
        help="also require client certificates signed by this CA (mutual TLS)",
    )
    ingest.add_argument(
        "--postgres-dsn-env",
        metavar="VAR",
        help="environment variable holding the PostgreSQL DSN (default: a SQLite file)",
    )
    ingest.add_argument(
        "--sqlite",
        type=Path,
        default=Path("var/ingest.db"),
        help="warehouse file without PostgreSQL",
    )
    ingest.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    ingest.set_defaults(handler=_cmd_ingest)
    token = commands.add_parser(
        "ingest-token", help="manage the gateways' HTTPS ingest tokens (stored as hashes)"
    )
    token_actions = token.add_subparsers(dest="action", required=True)
    add = token_actions.add_parser(
        "add", help="make a new token for a gateway (replaces its old one)"
    )
    add.add_argument("gateway", help="the gateway id ([gateway] id in its config)")
    add.add_argument(
        "--scheme", choices=["sha256", "scrypt"], default="sha256", help="how the hash is made"
    )
    add.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="write the token here (mode 0600) for the gateway's credential, instead of stdout",
    )
    remove = token_actions.add_parser("remove", help="revoke a gateway's token")
    remove.add_argument("gateway")
    listing = token_actions.add_parser("list", help="the gateways that have a token")
    for sub in (add, remove, listing):
        sub.add_argument(
            "--tokens",
            type=Path,
            required=True,
            metavar="FILE",
            help="the ingest's tokens file (--gateway-tokens of lineside ingest)",
        )
    token.set_defaults(handler=_cmd_ingest_token)
    modbus_probe.add_parser(commands)
    opcua_browse.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lineside`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except CommandFailed as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
