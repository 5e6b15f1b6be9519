"""The central ingest: ``ingest`` and its gateways' tokens, ``ingest-token``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.commands.common import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    SubCommands,
)

if TYPE_CHECKING:
    from sync.ingest import IngestSettings

log = logging.getLogger("lineside")


def _read_secret_file(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        message = f"lineside ingest: cannot read the {what} {path}: {exc}"
        raise CommandFailed(message, EXIT_USAGE) from None


def _cmd_ingest(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging  # noqa: PLC0415
    from sync.ingest import run_ingest  # noqa: PLC0415
    from sync.ingest.gc_settings import settle_collector  # noqa: PLC0415
    from sync.ingest.mqtt_consumer import IngestSessionTakenOver  # noqa: PLC0415
    from sync.ingest.warehouse import WarehouseError  # noqa: PLC0415

    configure_logging(level=args.log_level)
    dsn = os.environ.get(args.postgres_dsn_env) if args.postgres_dsn_env else None
    if args.postgres_dsn_env and not dsn:
        print(f"lineside ingest: ${args.postgres_dsn_env} is not set", file=sys.stderr)
        return EXIT_USAGE
    _check_pairs(args)
    settings = _ingest_settings(args, dsn)
    _warn_in_clear(args, settings)
    if args.end_session:
        return _end_session(settings)
    settle_collector()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_ingest(settings))
    except IngestSessionTakenOver as exc:
        # Two instances with one client id: a restart would only steal the session back
        # (exit 3: the unit's RestartPreventExitStatus, fix the config first).
        raise CommandFailed(f"lineside ingest: {exc}", EXIT_CONFIG) from None
    except WarehouseError as exc:
        # e.g. a warehouse upgraded by a newer release: refused, said in one line.
        raise CommandFailed(f"lineside ingest: {exc}") from None
    return EXIT_OK


def _end_session(settings: IngestSettings) -> int:
    """``--end-session``: the broker forgets this instance (see sync/ingest/session_end.py)."""
    from sync.ingest.session_end import SessionEndFailed, end_session  # noqa: PLC0415

    try:
        end_session(settings)
    except SessionEndFailed as exc:
        raise CommandFailed(f"lineside ingest --end-session: {exc}") from None
    print(
        f"ended the broker session of {settings.client_id}: the broker no longer queues "
        "batches for it; the gateways resend what it held to the instances that remain"
    )
    return EXIT_OK


def _check_pairs(args: argparse.Namespace) -> None:
    """Options that only make sense together."""
    if (args.mqtt_username is None) != (args.mqtt_password_file is None):
        raise CommandFailed(
            "lineside ingest: --mqtt-username and --mqtt-password-file go together", EXIT_USAGE
        )
    if not args.no_http and args.gateway_tokens is None:
        raise CommandFailed(
            "lineside ingest: HTTP ingest needs --gateway-tokens FILE (who may post), or --no-http",
            EXIT_USAGE,
        )


def _ingest_settings(args: argparse.Namespace, dsn: str | None) -> IngestSettings:
    """The ingest's settings, with its secret files read."""
    from sync.ingest import IngestSettings  # noqa: PLC0415
    from sync.ingest.auth import TokenFile, TokenFileError  # noqa: PLC0415

    http = not args.no_http
    password = None
    if args.mqtt_password_file is not None:
        password = _read_secret_file(args.mqtt_password_file, "MQTT password file")
    tokens = None
    if http and args.gateway_tokens is not None:
        try:
            tokens = TokenFile(path=args.gateway_tokens)
        except TokenFileError as exc:
            raise CommandFailed(f"lineside ingest: {exc}", EXIT_USAGE) from None
    options = _optional_settings(args)
    try:
        return IngestSettings(
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


def _optional_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given only when their option is (the rest keep their defaults)."""
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
    if args.share_group is not None:
        options["share_group"] = args.share_group
    if args.db_pool_size is not None:
        options["db_pool_size"] = args.db_pool_size
    return options


def _warn_in_clear(args: argparse.Namespace, settings: IngestSettings) -> None:
    """Secrets that would cross the network without TLS: allowed, but said."""
    if settings.password is not None and settings.tls_ca is None and not _loopback(args.mqtt_host):
        log.warning("the MQTT password goes to %s without TLS (--mqtt-tls-ca)", args.mqtt_host)
    http_in_clear = settings.http_enabled and settings.http_tls_cert is None
    if http_in_clear and not _loopback(settings.http_host):
        log.warning(
            "HTTP ingest on %s without TLS: bearer tokens cross the network in clear "
            "(--http-tls-cert/--http-tls-key, or a TLS proxy in front)",
            args.http_host,
        )


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _cmd_ingest_token(args: argparse.Namespace) -> int:
    from gateway.commands.token_files import TokenFile  # noqa: PLC0415

    tokens_file = TokenFile("lineside ingest-token", args.tokens, "the ingest")
    if args.action == "list":
        tokens_file.list()
        return EXIT_OK
    gateway = args.gateway
    if args.action == "remove":
        tokens_file.revoke(gateway)
        return EXIT_OK
    token, tokens = tokens_file.mint(gateway, args.scheme)
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
    tokens_file.save(tokens)
    if args.token_file is None:
        print(token)
    else:
        print(f"{gateway}: token written to {args.token_file}; its hash to {args.tokens}")
    return EXIT_OK


def add_ingest(commands: SubCommands) -> None:
    """``lineside ingest``."""
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
    ingest.add_argument(
        "--share-group",
        metavar="NAME",
        help="consume through the shared subscription $share/NAME/... with the other "
        "instances of NAME (1-64 of A-Z a-z 0-9 _ -): the broker gives each batch to one; "
        "each instance needs its own --client-id (and broker user)",
    )
    ingest.add_argument(
        "--end-session",
        action="store_true",
        help="end this client id's broker session and exit, when the instance leaves its "
        "share group for good: the broker stops queuing a share of the batches for it",
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
        "--db-pool-size",
        type=int,
        metavar="N",
        help="PostgreSQL connections of this instance, 1-32 (default 4): as many batches "
        "commit at once",
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


def add_ingest_token(commands: SubCommands) -> None:
    """``lineside ingest-token``."""
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
