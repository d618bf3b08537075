"""The ``mailio-trio`` command: ``serve``, ``send``, ``config check``, ``config show``.

Errors an operator can fix are one line on stderr, never a traceback: a bad
flag or configuration value exits with 2, a port that cannot be bound with 1.
Configuration is layered: the CLI's defaults, then the ``--config`` TOML file,
then flags — a flag always wins.
"""

from __future__ import annotations

import argparse
import contextlib
import email.policy
import functools
import json
import logging
import os
import signal
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from mailio_trio import __version__, _cli_queue, workers
from mailio_trio._cli_tls import (
    add_passwd_command,
    add_tls_arguments,
    apply_tls_arguments,
    reload_tls,
    run_passwd,
    start_smtps,
)
from mailio_trio.config import Config, ConfigError, parse_listen, show
from mailio_trio.plugins.capture import add_capture_arguments, install_capture
from mailio_trio.server import Server

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["build_parser", "effective_config", "main"]

PROG = "mailio-trio"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# What `mailio-trio serve` runs with when neither a file nor a flag says
# otherwise: a loopback-only server that keeps mail for "localhost" in ./mail.
CLI_DEFAULTS: dict[str, dict[str, Any]] = {
    "server": {"domains": ["localhost"], "listen": ["127.0.0.1:2525"], "spool_dir": "spool"},
    "maildir": {"enabled": True, "root": "mail"},
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def _listen_arg(value: str) -> str:
    try:
        parse_listen(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} {exc}") from None
    return value


def _host_port(value: str) -> tuple[str, int]:
    return parse_listen(_listen_arg(value))


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number greater than 0")
    return int(value)


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a number of seconds greater than 0")
    return number


def _server_flags() -> _Parser:
    flags = _Parser(add_help=False)
    group = flags.add_argument_group("server options (a flag overrides the config file)")
    group.add_argument("--config", metavar="FILE", help="TOML configuration file")
    group.add_argument(
        "--listen",
        metavar="HOST:PORT",
        type=_listen_arg,
        action="append",
        help="address to listen on, repeatable (default 127.0.0.1:2525; port 0 picks one)",
    )
    group.add_argument(
        "--domain", action="append", metavar="DOMAIN", help="a local domain, repeatable"
    )
    group.add_argument("--hostname", help="our name in the greeting and Received: lines")
    group.add_argument("--maildir", metavar="ROOT", help="maildir root (default ./mail)")
    group.add_argument("--spool", metavar="DIR", help="spool directory (default ./spool)")
    group.add_argument("--max-message-size", type=_positive_int, metavar="BYTES")
    group.add_argument("--idle-timeout", type=_positive_float, metavar="SECONDS")
    _add_relay_flags(group)
    return flags


def _smart_host_arg(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value!r} must be HOST:PORT with a port from 1 to 65535, e.g. smtp.example.net:587"
        )
    return value


def _dns_server_arg(value: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` (a bare IPv6 address has no port)."""
    import ipaddress

    host, port = value, "53"
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else ("53" if not rest else "x")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        address = ""
    if not address or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value!r} must be an IP address with an optional port, e.g. 127.0.0.1:5353 "
            "or [::1]:5353"
        )
    return address, int(port)


def _add_relay_flags(group: argparse._ArgumentGroup) -> None:
    # Relaying's common cases; everything else (credentials above all) is [relay] in the file.
    group.add_argument(
        "--relay",
        action="store_true",
        default=None,
        help="relay mail for other domains (authenticated local senders only; "
        "spool in ./spool/relay unless relay.spool_dir is set)",
    )
    group.add_argument(
        "--smart-host",
        metavar="HOST:PORT",
        type=_smart_host_arg,
        help="relay everything through this server (implies --relay; TLS is required and "
        "verified; relay.smart_host_user/smart_host_password come from the config file)",
    )
    group.add_argument(
        "--dns-server",
        metavar="IP[:PORT]",
        type=_dns_server_arg,
        action="append",
        help="DNS resolver for MX and other lookups, repeatable (all on one port; default 53)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="A Trio SMTP server with a plugin handler chain.",
        epilog="Run `mailio-trio COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        parents=[_server_flags()],
        help="run the SMTP server",
        description="Receive mail for the local domains into maildirs until Ctrl-C / SIGTERM.",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="text", choices=["text", "json"])
    add_capture_arguments(serve)
    workers.add_arguments(serve)
    add_tls_arguments(serve, _host_port)

    send = commands.add_parser(
        "send",
        help="submit one message to an SMTP server",
        description="Send one message; the body comes from --body, --file or stdin.",
    )
    send.add_argument(
        "--server",
        metavar="HOST:PORT",
        type=_listen_arg,
        default="127.0.0.1:2525",
        help="where to send (default 127.0.0.1:2525)",
    )
    send.add_argument("--from", dest="sender", required=True, metavar="ADDRESS")
    send.add_argument("--to", dest="recipients", required=True, action="append", metavar="ADDRESS")
    send.add_argument("--subject", default="", help="the Subject: header")
    body = send.add_mutually_exclusive_group()
    body.add_argument("--body", help="the message text")
    body.add_argument("--file", metavar="PATH", help="read the message text from PATH")
    send.add_argument("--timeout", type=_positive_float, default=30.0, metavar="SECONDS")
    send.add_argument(
        "--starttls", action="store_true", help="require STARTTLS and check the certificate"
    )
    send.add_argument("--cafile", metavar="PEM", help="trust this CA bundle for --starttls")
    send.add_argument(
        "--user",
        metavar="NAME",
        help=f"AUTH as NAME (needs --starttls); the password comes from ${PASSWORD_ENV} "
        "or, with --password-stdin, the first line of stdin — never from a flag",
    )
    send.add_argument(
        "--password-stdin", action="store_true", help="read the --user password from stdin"
    )

    config = commands.add_parser("config", help="check or show configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser("check", help="validate a TOML configuration file")
    check.add_argument("file", metavar="FILE")
    config_commands.add_parser(
        "show",
        parents=[_server_flags()],
        help="print the effective configuration as TOML",
        description="Print what `serve` with the same options would run with.",
    )
    add_passwd_command(commands)
    _cli_queue.add_parser(commands)
    return parser


# --- configuration -----------------------------------------------------------


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            out[key] = _merge(old, value)
        else:
            out[key] = value
    return out


def _flags_table(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    server: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    maildir: dict[str, Any] = {}
    if args.listen:
        server["listen"] = args.listen
    if args.domain:
        server["domains"] = args.domain
    if args.hostname:
        server["hostname"] = args.hostname
    if args.spool:
        server["spool_dir"] = args.spool
    if args.maildir:
        maildir.update(enabled=True, root=args.maildir)
    if args.max_message_size is not None:
        limits["message_size"] = args.max_message_size
    if args.idle_timeout is not None:
        limits["idle_timeout"] = args.idle_timeout
    relay: dict[str, Any] = {}
    dns: dict[str, Any] = {}
    if args.relay or args.smart_host:
        relay["enabled"] = True
    if args.smart_host:
        relay["smart_host"] = args.smart_host
    if args.dns_server:
        ports = sorted({port for _, port in args.dns_server})
        if len(ports) > 1:
            raise ConfigError(
                f"--dns-server: servers on ports {', '.join(map(str, ports))}; "
                "all must use one port (dns.port)"
            )
        dns.update(nameservers=[ip for ip, _ in args.dns_server], port=ports[0])
    tables = {
        "server": server,
        "limits": limits,
        "maildir": maildir,
        "relay": relay,
        "dns": dns,
    }
    return {name: table for name, table in tables.items() if table}


def effective_config(args: argparse.Namespace) -> Config:
    """Defaults < ``--config`` file < flags.

    Raises:
      ConfigError: One line; a file's errors start with its name.
    """
    table: dict[str, Any] = dict(CLI_DEFAULTS)
    if args.config:
        from mailio_trio._config_toml import load_toml

        file_table = load_toml(args.config)
        try:
            Config.from_mapping(file_table)  # the file alone must be valid
        except ConfigError as exc:  # named with the file, as Config.from_toml does
            raise ConfigError(f"{args.config}: {exc}") from None
        table = _merge(table, file_table)
    table = _merge(table, _flags_table(args))
    relay = table.get("relay", {})
    if relay.get("enabled") and relay.get("spool_dir") is None:
        # `serve --relay` needs a durable queue; keep it beside the DATA spool.
        server_spool = table.get("server", {}).get("spool_dir") or "spool"
        table = _merge(table, {"relay": {"spool_dir": str(Path(server_spool) / "relay")}})
    return Config.from_mapping(table)


def _prepare_directory(key: str, path: Path) -> Path:
    """Create ``path`` if needed and check we can write there; one-line error otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{key} = {show(str(path))}: cannot create the directory: {exc.strerror or exc}"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{key} = {show(str(path))}: the directory is not writable")
    return path.absolute()


# --- serve -------------------------------------------------------------------


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("session", "transaction", "handler"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


class _CannotListen(Exception):
    pass


def _show_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _watch_signals(signals: Any, server: Server, cancel_scope: trio.CancelScope) -> None:
    """First signal: graceful shutdown (``limits.shutdown_grace``); a second: stop now."""
    stopping = False
    async for signum in signals:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            reload_tls(server)
            continue
        if stopping:
            print(f"{PROG}: {name} again, stopping now", flush=True)
            cancel_scope.cancel()
            return
        print(f"{PROG}: {name}, shutting down (send it again to stop at once)", flush=True)
        server.shutdown()
        stopping = True


def _where_mail_goes(config: Config) -> str:
    if not config.maildir.enabled:
        return "maildir delivery is off: accepted mail is not kept"
    mailboxes = Path(config.maildir.root) / config.maildir.path
    domains = "any domain" if config.maildir.any_domain else ", ".join(config.domains)
    return f"mail for {domains} goes to {mailboxes}"


async def _serve(
    server: Server, config: Config, smtps_listen: Sequence[tuple[str, int]] = ()
) -> None:
    listeners: list[trio.SocketListener] = []
    try:
        for item in config.listen:
            host, port = parse_listen(item)
            listeners += await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        for listener in listeners:
            await listener.aclose()
        raise _CannotListen(f"cannot listen on {item}: {exc.strerror or exc}") from None
    # Signals are caught before the "listening" line, so a supervisor (or a
    # test) that signals as soon as it reads the line gets a clean shutdown.
    signals_wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    with trio.open_signal_receiver(*signals_wanted) as signals:
        async with trio.open_nursery() as nursery:
            bound: list[tuple[str, int]] = await nursery.start(server.serve_listeners, listeners)
            try:
                smtps = await start_smtps(nursery, server, smtps_listen)
            except OSError as exc:
                raise _CannotListen(f"cannot listen for SMTPS: {exc.strerror or exc}") from None
            where = ", ".join(
                [_show_address(h, p) for h, p in bound]
                + [f"{_show_address(h, p)} (SMTPS)" for h, p in smtps]
            )
            print(f"{PROG}: listening on {where}; {_where_mail_goes(config)}", flush=True)
            nursery.start_soon(_watch_signals, signals, server, nursery.cancel_scope)
            await server.wait_stopped()
            nursery.cancel_scope.cancel()


def _cmd_serve(args: argparse.Namespace) -> int:
    config = effective_config(args)
    import attrs

    maildir = config.maildir
    if args.capture or args.print_messages or args.discard:
        # A development or benchmark sink takes mail for any domain; it stores
        # only when asked to (never with --discard, which reads and drops bodies).
        keep = args.maildir is not None and not args.discard
        maildir = attrs.evolve(maildir, enabled=keep, any_domain=True)
    if maildir.enabled:
        maildir = attrs.evolve(maildir, root=_prepare_directory("maildir.root", maildir.root))
    spool = config.spool_dir
    if spool is not None:
        spool = _prepare_directory("server.spool_dir", spool)
    config = attrs.evolve(config, maildir=maildir, spool_dir=spool)
    if config.relay.enabled and config.relay.spool_dir is not None:
        relay_spool = _prepare_directory("relay.spool_dir", config.relay.spool_dir)
        config = attrs.evolve(config, relay=attrs.evolve(config.relay, spool_dir=relay_spool))
    if args.workers > 1:
        _check_workers(args, config)
    _setup_logging(args.log_level, args.log_format)
    with contextlib.ExitStack() as stack:  # holds a --tls-self-signed certificate's directory
        config = apply_tls_arguments(args, config, stack)

        def build() -> Server:
            server = Server(config, discard=args.discard)
            install_capture(server.chain, args)
            return server

        try:
            if args.workers > 1:
                return _serve_workers(args, config, build)
            trio.run(_serve, build(), config, args.smtps_listen or ())
        except _CannotListen as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    print(f"{PROG}: stopped", flush=True)
    return EXIT_OK


def _check_workers(args: argparse.Namespace, config: Config) -> None:
    """What one process owns cannot be split over ``--workers`` processes."""
    if config.relay.enabled:
        raise ConfigError(
            f"--workers {args.workers}: relay.enabled needs one process (the relay spool "
            "has one owner); use --workers 1"
        )
    if args.smtps_listen:
        raise ConfigError(f"--workers {args.workers}: --smtps-listen needs --workers 1")


def _serve_workers(args: argparse.Namespace, config: Config, build: Callable[[], Server]) -> int:
    listen = [parse_listen(item) for item in config.listen]
    try:
        code = workers.serve(
            config,
            listen,
            workers=args.workers,
            make_server=build,
            announce=lambda line: print(
                f"{PROG}: {line} ({args.workers} workers); {_where_mail_goes(config)}", flush=True
            ),
        )
    except OSError as exc:
        raise _CannotListen(f"cannot listen: {exc.strerror or exc}") from None
    print(f"{PROG}: stopped", flush=True)
    return code


# --- send ----------------------------------------------------------------------

# A password on the command line is visible to every user (ps, /proc): the
# environment or stdin only, as `docker login --password-stdin` does.
PASSWORD_ENV = "MAILIO_PASSWORD"


def _send_password(args: argparse.Namespace) -> str | None:
    if args.cafile is not None and not args.starttls:
        raise ConfigError(f"--cafile {args.cafile}: needs --starttls")
    if args.user is not None and not args.starttls:
        raise ConfigError(f"--user {args.user}: needs --starttls (a password never goes in clear)")
    if args.user is None:
        if args.password_stdin:
            raise ConfigError("--password-stdin: needs --user")
        return None
    if args.password_stdin:
        if args.body is None and (args.file is None or args.file == "-"):
            raise ConfigError(
                "--password-stdin: stdin would carry both the password and the message; "
                "give the message with --body or --file"
            )
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        raise ConfigError(f"--user {args.user}: set ${PASSWORD_ENV} or use --password-stdin")
    return password


def _one_line(reply: object) -> str:
    return " ".join(str(reply).split())


def _cmd_send(args: argparse.Namespace) -> int:
    from mailio_trio import client

    password = _send_password(args)
    if args.body is not None:
        text = args.body
    elif args.file is not None and args.file != "-":
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--file {args.file}: cannot read: {exc}") from None
    else:
        text = sys.stdin.read()
    message = EmailMessage()
    message["From"] = args.sender
    message["To"] = ", ".join(args.recipients)
    message["Subject"] = args.subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=args.sender.rpartition("@")[2] or None)
    message.set_content(text)
    host, port = parse_listen(args.server)
    context = None
    if args.cafile is not None:
        import ssl

        try:
            context = ssl.create_default_context(cafile=args.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--cafile {args.cafile}: cannot load: {exc}") from None
    try:
        result = trio.run(
            functools.partial(
                client.send,
                host,
                port,
                args.sender,
                args.recipients,
                message.as_bytes(policy=email.policy.SMTP),
                # Plain by default, as before; --starttls insists on verified TLS.
                tls=client.TLSMode.REQUIRE if args.starttls else client.TLSMode.NEVER,
                ssl_context=context,
                username=args.user,
                password=password,
                connect_timeout=args.timeout,
                command_timeout=args.timeout,
                data_timeout=args.timeout,
            )
        )
    except client.SMTPReplyError as exc:
        print(f"{PROG}: {args.server} refused the message: {_one_line(exc.reply)}", file=sys.stderr)
        return EXIT_FAILURE
    except client.SMTPError as exc:
        print(f"{PROG}: cannot send via {args.server}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if result.accepted:
        print(f"{PROG}: sent to {', '.join(result.accepted)} via {args.server}")
    if result.refused:
        reasons = "; ".join(f"{r}: {_one_line(reply)}" for r, reply in result.refused.items())
        print(f"{PROG}: refused: {reasons}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


# --- config ----------------------------------------------------------------------


def _cmd_config(args: argparse.Namespace) -> int:
    if args.config_command == "check":
        from mailio_trio.tls import build_server_context

        config = Config.from_toml(args.file)
        build_server_context(config.tls)  # the certificate files must load, not only be named
        print(f"{args.file}: OK")
        return EXIT_OK
    sys.stdout.write(effective_config(args).to_toml())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    commands = {
        "serve": _cmd_serve,
        "send": _cmd_send,
        "config": _cmd_config,
        "passwd": run_passwd,
        "queue": _cli_queue.run,
    }
    try:
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
