"""``lineside warehouse serve`` (the read API and the dashboard), ``lineside warehouse
token`` (its read tokens) and ``lineside warehouse grant-readonly`` (a PostgreSQL role for
BI tools): docs/warehouse-api.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    SubCommands,
    print_json,
)

if TYPE_CHECKING:
    from central.api import ApiSettings

log = logging.getLogger("lineside")

TOKENS_HEADER = "# name:hash of a warehouse API read token (lineside warehouse token add ...)"


def warehouse_target(args: argparse.Namespace, command: str) -> str:
    """The warehouse to read: the DSN in ``--postgres-dsn-env``'s variable, or ``--sqlite``."""
    if args.postgres_dsn_env:
        dsn = os.environ.get(args.postgres_dsn_env)
        if not dsn:
            raise CommandFailed(f"{command}: ${args.postgres_dsn_env} is not set", EXIT_USAGE)
        return dsn
    return str(args.sqlite)


def add_target_options(command: argparse.ArgumentParser) -> None:
    """``--postgres-dsn-env VAR`` or ``--sqlite PATH``, as ``lineside ingest`` takes them."""
    command.add_argument(
        "--postgres-dsn-env",
        metavar="VAR",
        help="environment variable holding the PostgreSQL DSN (default: a SQLite file)",
    )
    command.add_argument(
        "--sqlite",
        type=Path,
        default=Path("var/ingest.db"),
        help="warehouse file without PostgreSQL",
    )


def _settings(args: argparse.Namespace) -> ApiSettings:
    from central.api import ApiSettings  # noqa: PLC0415
    from sync.ingest.auth import TokenFile, TokenFileError  # noqa: PLC0415

    tokens = None
    if args.tokens is not None:
        try:
            tokens = TokenFile(path=args.tokens)
        except TokenFileError as exc:
            raise CommandFailed(f"lineside warehouse serve: {exc}", EXIT_USAGE) from None
    try:
        return ApiSettings(
            tokens=tokens,
            client_certificates=args.tls_client_ca is not None,
            host=args.host,
            port=args.port,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            max_rows=args.max_rows,
            default_rows=min(1000, args.max_rows),
        )
    except ValueError as exc:
        raise CommandFailed(f"lineside warehouse serve: {exc}", EXIT_USAGE) from None


def _cmd_serve(args: argparse.Namespace) -> int:
    from central.api.server import serve  # noqa: PLC0415
    from central.reader import WarehouseReader  # noqa: PLC0415
    from gateway.logs import configure_logging  # noqa: PLC0415

    configure_logging(level=args.log_level)
    target = warehouse_target(args, "lineside warehouse serve")
    settings = _settings(args)
    if (
        settings.tls_cert is None
        and not settings.host.startswith("127.")
        and (settings.host not in ("localhost", "::1"))
    ):
        log.warning(
            "warehouse API on %s without TLS: read tokens cross the network in clear "
            "(--tls-cert/--tls-key, or a TLS proxy in front)",
            settings.host,
        )

    def reader() -> WarehouseReader:
        return WarehouseReader.open(target)

    async def main() -> None:
        task = asyncio.current_task()
        if task is not None:  # SIGTERM (systemd, a test) ends the server like Ctrl-C
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await serve(reader, settings)

    try:
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            asyncio.run(main())
    except OSError as exc:  # the port is taken, a TLS file is unreadable
        raise CommandFailed(f"lineside warehouse serve: {exc}") from None
    return EXIT_OK


def _cmd_token(args: argparse.Namespace) -> int:
    from gateway.commands.token_files import TokenFile  # noqa: PLC0415

    tokens_file = TokenFile("lineside warehouse token", args.tokens, "the server", TOKENS_HEADER)
    if args.tokens_chore == "list":
        tokens_file.list()
    elif args.tokens_chore == "remove":
        tokens_file.revoke(args.name)
    else:
        token, tokens = tokens_file.mint(args.name, args.scheme)
        tokens_file.save(tokens)
        print(token)  # once: only its hash is kept
    return EXIT_OK


def _cmd_grant_readonly(args: argparse.Namespace) -> int:
    import psycopg  # noqa: PLC0415

    from central.readonly_role import (  # noqa: PLC0415
        create_login_role,
        grant_readonly,
        role_exists,
    )

    if not args.postgres_dsn_env:
        raise CommandFailed(
            "lineside warehouse grant-readonly: needs --postgres-dsn-env (a PostgreSQL "
            "warehouse; a SQLite file has no roles)",
            EXIT_USAGE,
        )
    dsn = warehouse_target(args, "lineside warehouse grant-readonly")
    password = None
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandFailed(f"lineside warehouse grant-readonly: {exc}", EXIT_USAGE) from None
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            created = False
            if not role_exists(conn, args.role):
                if not args.create:
                    raise CommandFailed(
                        f"lineside warehouse grant-readonly: role {args.role!r} does not "
                        "exist (--create makes it)"
                    )
                create_login_role(conn, args.role, password)
                created = True
            relations = grant_readonly(conn, args.role, schema=args.schema)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CommandFailed(f"lineside warehouse grant-readonly: {reason}", EXIT_FAILURE) from None
    document: dict[str, Any] = {
        "version": 1,
        "role": args.role,
        "created": created,
        "relations": relations,
    }
    if args.json:
        print_json(document)
    else:
        what = "created and granted" if created else "granted"
        print(f"{args.role}: {what} SELECT on {len(relations)} relation(s) of {args.schema}")
    return EXIT_OK


def add_warehouse_serve(actions: SubCommands) -> None:
    """``serve``, ``token`` and ``grant-readonly`` under ``lineside warehouse``."""
    _add_serve(actions)
    _add_token(actions)
    grant = actions.add_parser(
        "grant-readonly", help="let a PostgreSQL role read the facts, views and dimensions"
    )
    grant.add_argument("role", help="the role (e.g. bi_reader)")
    add_target_options(grant)
    grant.add_argument("--schema", default="public", help="the warehouse's schema")
    grant.add_argument("--create", action="store_true", help="create the role (LOGIN) if missing")
    grant.add_argument(
        "--password-file", type=Path, metavar="FILE", help="with --create: the role's password"
    )
    grant.add_argument(
        "--json", action="store_true", help="one JSON document on stdout (docs/command-output.md)"
    )
    grant.set_defaults(handler=_cmd_grant_readonly)


def _add_serve(actions: SubCommands) -> None:
    serve = actions.add_parser(
        "serve", help="serve the read-only API (/api/v1) and the dashboard over HTTP(S)"
    )
    add_target_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="listen address")
    serve.add_argument("--port", type=int, default=8090, help="port")
    serve.add_argument(
        "--tokens",
        type=Path,
        metavar="FILE",
        help="the read tokens' hashes (lineside warehouse token); not the ingest's tokens",
    )
    serve.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve HTTPS with this")
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key")
    serve.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="FILE",
        help="require client certificates signed by this CA (then a token is optional)",
    )
    serve.add_argument(
        "--max-rows", type=int, default=10_000, metavar="N", help="the largest ?limit= accepted"
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(handler=_cmd_serve)


def _add_token(actions: SubCommands) -> None:
    token = actions.add_parser(
        "token", help="manage the API's read tokens (stored as hashes; not ingest tokens)"
    )
    tokens_chores = token.add_subparsers(dest="tokens_chore", required=True)
    add = tokens_chores.add_parser("add", help="make a token for a reader (printed once)")
    add.add_argument("name", help="who reads with it (e.g. powerbi, grafana)")
    add.add_argument(
        "--scheme", choices=["sha256", "scrypt"], default="sha256", help="how the hash is made"
    )
    remove = tokens_chores.add_parser("remove", help="revoke a reader's token")
    remove.add_argument("name")
    listing = tokens_chores.add_parser("list", help="the readers that have a token")
    for sub in (add, remove, listing):
        sub.add_argument(
            "--tokens", type=Path, required=True, metavar="FILE", help="the API's tokens file"
        )
    token.set_defaults(handler=_cmd_token)


__all__ = ["add_target_options", "add_warehouse_serve", "warehouse_target"]
