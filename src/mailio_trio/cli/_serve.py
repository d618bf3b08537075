"""``mailio-trio serve``: the effective configuration, the listeners, signals, workers.

Configuration is layered: the CLI's defaults, then the ``--config`` TOML file,
then flags — a flag always wins.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio.cli._args import (
    EXIT_FAILURE,
    EXIT_OK,
    PROG,
    Parser,
    host_port,
    listen_arg,
    positive_float,
    positive_int,
)
from mailio_trio.cli._capture import (
    add_capture_arguments,
    capturing,
    install_capture,
    open_capture_inbox,
)
from mailio_trio.cli._chaos import add_chaos_arguments, chaos_from_table, chaos_settings
from mailio_trio.cli._lmtp import (
    UnixSocket,
    add_lmtp_arguments,
    open_lmtp_socket,
    serves_tcp,
    unix_socket,
)
from mailio_trio.cli._logging import setup_logging
from mailio_trio.cli._tls import add_tls_arguments, apply_tls_arguments, reload_tls, start_smtps
from mailio_trio.cli._workers import add_workers_arguments
from mailio_trio.config import Config, ConfigError, parse_listen
from mailio_trio.server import Server, workers
from mailio_trio.server._spool import prepare_directory
from mailio_trio.server._unix import close_unix_listener

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from mailio_trio.inbox import Inbox
    from mailio_trio.testing import Faults
    from mailio_trio.testing._chaos import ChaosSettings

__all__ = [
    "add_parser",
    "build_server",
    "checked_file",
    "effective_config",
    "prepared_config",
    "run",
    "server_flags",
]

# What `mailio-trio serve` runs with when neither a file nor a flag says
# otherwise: a loopback-only server that keeps mail for "localhost" in ./mail.
CLI_DEFAULTS: dict[str, dict[str, Any]] = {
    "server": {"domains": ["localhost"], "listen": ["127.0.0.1:2525"], "spool_dir": "spool"},
    "maildir": {"enabled": True, "root": "mail"},
}


def server_flags() -> Parser:
    flags = Parser(add_help=False)
    group = flags.add_argument_group("server options (a flag overrides the config file)")
    group.add_argument("--config", metavar="FILE", help="TOML configuration file")
    group.add_argument(
        "--listen",
        metavar="HOST:PORT",
        type=listen_arg,
        action="append",
        help="address to listen on, repeatable (default 127.0.0.1:2525; port 0 picks one)",
    )
    group.add_argument(
        "--domain", action="append", metavar="DOMAIN", help="a local domain, repeatable"
    )
    group.add_argument("--hostname", help="our name in the greeting and Received: lines")
    group.add_argument("--maildir", metavar="ROOT", help="maildir root (default ./mail)")
    group.add_argument("--spool", metavar="DIR", help="spool directory (default ./spool)")
    group.add_argument("--max-message-size", type=positive_int, metavar="BYTES")
    group.add_argument("--idle-timeout", type=positive_float, metavar="SECONDS")
    group.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        type=listen_arg,
        help="serve Prometheus /metrics, /healthz and /readyz over HTTP here "
        "(metrics.listen; needs the metrics extra)",
    )
    _add_relay_flags(group)
    _add_proxy_flags(group)
    return flags


def _cidr_arg(value: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} must be a network in CIDR form (10.0.0.0/8) or an address"
        ) from None


def _add_proxy_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--proxy-protocol",
        action="store_true",
        default=None,
        help="expect a PROXY protocol header (v1 or v2) from the --proxy-trusted balancers",
    )
    group.add_argument(
        "--proxy-trusted",
        metavar="CIDR",
        type=_cidr_arg,
        action="append",
        help="a load balancer's network whose PROXY headers are believed, repeatable",
    )


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


def add_parser(commands: Any) -> None:  # argparse._SubParsersAction is private
    serve = commands.add_parser(
        "serve",
        parents=[server_flags()],
        help="run the SMTP server",
        description="Receive mail for the local domains into maildirs until Ctrl-C / SIGTERM.",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="text", choices=["text", "json"])
    add_capture_arguments(serve)
    add_chaos_arguments(serve)
    add_workers_arguments(serve)
    add_tls_arguments(serve, host_port)
    add_lmtp_arguments(serve)


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
    if getattr(args, "lmtp", None) or getattr(args, "lmtp_socket", None):
        server["lmtp"] = True
    if args.proxy_protocol:
        server["proxy_protocol"] = True
    if args.proxy_trusted:
        server["proxy_trusted"] = args.proxy_trusted
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
    metrics: dict[str, Any] = {}
    if getattr(args, "metrics", None):
        metrics["listen"] = args.metrics
    tables = {
        "metrics": metrics,
        "server": server,
        "limits": limits,
        "maildir": maildir,
        "relay": relay,
        "dns": dns,
    }
    return {name: table for name, table in tables.items() if table}


def checked_file(path: str) -> tuple[dict[str, Any], Config]:
    """The ``--config`` file's table, and the configuration ``serve`` builds from it alone.

    The file is read over the CLI's defaults, as ``serve`` reads it.

    ``config check`` calls this too, so a file it passes is one ``serve`` starts with.

    Raises:
      ConfigError: One line starting with the file name.
    """
    from mailio_trio.config._toml import load_toml
    from mailio_trio.plugins import builtin_keys, check_plugins

    table = load_toml(path)
    try:
        if "chaos" in table:  # serve --capture's own table, not a Config section
            chaos_from_table(table["chaos"])
        # The defaults are valid: whatever is refused here is the file's.
        config = Config.from_mapping(_merge(CLI_DEFAULTS, _without_chaos(table)))
        check_plugins(config.plugins, builtin_keys())  # the CLI registers no handlers of its own
    except ConfigError as exc:  # named with the file, as Config.from_toml does
        raise ConfigError(f"{path}: {exc}") from None
    return table, config


def effective_config(args: argparse.Namespace) -> Config:
    """Defaults < ``--config`` file < flags.

    Raises:
      ConfigError: One line; a file's errors start with its name.
    """
    table: dict[str, Any] = dict(CLI_DEFAULTS)
    if args.config:
        table = _merge(table, checked_file(args.config)[0])
    table = _merge(table, _flags_table(args))
    # relay.spool_dir defaults to <spool_dir>/relay in Config itself, for files and flags alike.
    return Config.from_mapping(_without_chaos(table))


def _without_chaos(table: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in table.items() if key != "chaos"}


def _file_chaos(args: argparse.Namespace) -> Any:
    """The ``--config`` file's ``[chaos]`` table, or ``None`` (the file was checked already)."""
    if not args.config:
        return None
    from mailio_trio.config._toml import load_toml

    return load_toml(args.config).get("chaos")


# --- running -------------------------------------------------------------------


class _CannotListen(Exception):
    pass


def _show_address(host: str, port: int) -> str:
    if port == 0:  # only a Unix socket is bound to no port
        return f"unix:{host}"
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
        from mailio_trio.server._systemd import notify

        notify("STOPPING=1", "STATUS=draining")
        server.shutdown()
        stopping = True


def _where_mail_goes(config: Config, inbox: Inbox | None = None) -> str:
    if inbox is not None:
        store = inbox.store
        kept = (
            f"captured mail is kept in {store.path} "
            f"(newest {store.max_messages}, {store.max_bytes} octets at most)"
        )
        if not config.maildir.enabled:
            return kept
        return f"{_where_mail_goes(config)}; {kept}"
    if not config.maildir.enabled:
        return "maildir delivery is off: accepted mail is not kept"
    mailboxes = Path(config.maildir.root) / config.maildir.path
    domains = "any domain" if config.maildir.any_domain else ", ".join(config.domains)
    return f"mail for {domains} goes to {mailboxes}"


async def _open_listeners(
    addresses: Sequence[tuple[str, int]], kind: str = ""
) -> list[trio.SocketListener]:
    """Bind every address, or none: a port that cannot be bound is one line (exit 1)."""
    listeners: list[trio.SocketListener] = []
    for host, port in addresses:
        try:
            listeners += await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            for listener in listeners:
                await listener.aclose()
            where = _show_address(host, port)
            raise _CannotListen(f"cannot listen on {where}{kind}: {exc.strerror or exc}") from None
    return listeners


def _inherited(
    activated: Mapping[str, Sequence[Any]],
) -> tuple[list[trio.SocketListener], list[trio.SocketListener]]:
    """Plain and implicit-TLS listeners from systemd's sockets (``FileDescriptorName=smtps``)."""
    plain: list[trio.SocketListener] = []
    tls: list[trio.SocketListener] = []
    for name, sockets in activated.items():
        for sock in sockets:
            listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
            (tls if name == "smtps" else plain).append(listener)
    return plain, tls


async def _serve(
    server: Server,
    config: Config,
    smtps_listen: Sequence[tuple[str, int]] = (),
    inbox: Inbox | None = None,
    web: tuple[str, int] | None = None,
    notes: Sequence[str] = (),
    unix: UnixSocket | None = None,
    *,
    tcp: bool = True,
    faults: Faults | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until shut down; ``task_status`` gets the "listening on" line (for tests)."""
    from mailio_trio.server import _systemd

    if activated := _systemd.listen_sockets():
        # Socket activation: systemd bound the ports; --listen/--smtps-listen are its own.
        listeners, tls_listeners = _inherited(activated)
    else:
        tcp_listen = [parse_listen(item) for item in config.listen] if tcp else []
        listeners = await _open_listeners(tcp_listen)
        try:
            tls_listeners = await _open_listeners(smtps_listen, " (SMTPS)")
        except _CannotListen:
            for listener in listeners:
                await listener.aclose()
            raise
    if unix is not None:
        try:
            unix_listener, unix_file = await open_lmtp_socket(unix)
        except OSError as exc:
            for listener in [*listeners, *tls_listeners]:
                await listener.aclose()
            raise _CannotListen(f"cannot listen on {unix[0]}: {exc.strerror or exc}") from None
        listeners.append(unix_listener)
    try:
        await _serve_on(
            server, config, listeners, tls_listeners, inbox, web, notes, task_status, faults
        )
    finally:
        if unix is not None:
            close_unix_listener(unix_listener, unix[0], unix_file)


async def _serve_on(
    server: Server,
    config: Config,
    listeners: list[trio.SocketListener],
    tls_listeners: list[trio.SocketListener],
    inbox: Inbox | None,
    web: tuple[str, int] | None,
    notes: Sequence[str],
    task_status: trio.TaskStatus[str],
    faults: Faults | None = None,
) -> None:
    from mailio_trio.server import _systemd

    # Signals are caught before the "listening" line, so a supervisor (or a
    # test) that signals as soon as it reads the line gets a clean shutdown.
    signals_wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    with trio.open_signal_receiver(*signals_wanted) as signals:
        async with trio.open_nursery() as nursery:
            bound: list[tuple[str, int]] = await nursery.start(server.serve_listeners, listeners)
            smtps = await start_smtps(nursery, server, tls_listeners)
            where = ", ".join(
                [_show_address(h, p) for h, p in bound]
                + [f"{_show_address(h, p)} (SMTPS)" for h, p in smtps]
            )
            scrape = await _start_metrics(nursery, server)
            if inbox is not None and web is not None:
                where += await _start_web(nursery, inbox, web, faults)
            listening = f"{PROG}: listening on {where}; {_where_mail_goes(config, inbox)}"
            print(listening, flush=True)
            if scrape:
                print(f"{PROG}: metrics on {scrape}", flush=True)
            for note in notes:
                print(note, flush=True)
            task_status.started(listening)
            nursery.start_soon(_watch_signals, signals, server, nursery.cancel_scope)
            _systemd.notify("READY=1", f"STATUS=listening on {where}")
            if (interval := _systemd.watchdog_interval()) is not None:
                nursery.start_soon(_systemd.watchdog, interval)
            await server.wait_stopped()
            nursery.cancel_scope.cancel()


async def _start_metrics(nursery: trio.Nursery, server: Server) -> str:
    """Start ``metrics.listen``'s HTTP listener; returns its URLs ("" when off)."""
    if server.config.metrics.listen is None:
        return ""
    try:
        bound: list[tuple[str, int]] = await nursery.start(server.serve_metrics)
    except OSError as exc:
        where = server.config.metrics.listen
        raise _CannotListen(f"cannot listen on {where} (metrics): {exc.strerror or exc}") from None
    return ", ".join(f"http://{_show_address(h, p)}/metrics" for h, p in bound)


async def _start_web(
    nursery: trio.Nursery, inbox: Inbox, web: tuple[str, int], faults: Faults | None = None
) -> str:
    from functools import partial

    from mailio_trio.inbox import serve_web

    host, port = web
    try:
        urls: list[str] = await nursery.start(partial(serve_web, chaos=faults), inbox, host, port)
    except Exception as exc:
        # Hypercorn's nursery wraps the bind error in an exception group.
        error = _os_error(exc)
        if error is None:
            raise
        raise _CannotListen(
            f"cannot listen on {_show_address(host, port)} (web): {error.strerror or error}"
        ) from None
    return "".join(f", web inbox {url}/" for url in urls)


def _os_error(exc: BaseException) -> OSError | None:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _os_error(inner)) is not None:
                return found
    return None


def prepared_config(args: argparse.Namespace) -> Config:
    """The effective configuration with the sink's changes and its directories made.

    Raises:
      ConfigError: One line.
    """
    config = effective_config(args)
    maildir = config.maildir
    if capturing(args) or args.discard:
        # A development or benchmark sink takes mail for any domain; it stores
        # only when asked to (never with --discard, which reads and drops bodies).
        keep = args.maildir is not None and not args.discard
        maildir = attrs.evolve(maildir, enabled=keep, any_domain=True)
    if maildir.enabled:
        maildir = attrs.evolve(maildir, root=prepare_directory("maildir.root", maildir.root))
    spool = config.spool_dir
    if spool is not None:
        spool = prepare_directory("server.spool_dir", spool)
    config = attrs.evolve(config, maildir=maildir, spool_dir=spool)
    if config.relay.enabled and config.relay.spool_dir is not None:
        relay_spool = prepare_directory("relay.spool_dir", config.relay.spool_dir)
        config = attrs.evolve(config, relay=attrs.evolve(config.relay, spool_dir=relay_spool))
    return config


def build_server(
    args: argparse.Namespace,
    config: Config,
    inbox: Inbox | None,
    chaos: ChaosSettings | None,
) -> tuple[Server, Faults | None]:
    """The server ``serve`` runs, and its fault table when chaos is on (``--capture``).

    Raises:
      ConfigError: A fault at a stage whose command this configuration switches off.
    """
    server = Server(config, discard=args.discard)
    faults = None
    if chaos is not None:
        # Before the capture handlers, so a refused message is never kept.
        from mailio_trio.testing import Faults

        faults = Faults()
        faults.install(server)
        try:
            faults.apply(chaos)
        except ValueError as exc:
            raise ConfigError(f"chaos: {exc}") from None
    install_capture(server.chain, args, inbox=inbox)
    return server, faults


def run(args: argparse.Namespace) -> int:
    config = prepared_config(args)
    if args.workers > 1:
        _check_workers(args, config)
    setup_logging(args.log_level, args.log_format)
    with contextlib.ExitStack() as stack:  # holds a --tls-self-signed certificate's directory
        config = apply_tls_arguments(args, config, stack)
        chaos = chaos_settings(args, _file_chaos(args), capturing=capturing(args))
        inbox = open_capture_inbox(args)
        if inbox is not None:
            stack.callback(inbox.close)
        faults: Faults | None = None

        def build() -> Server:
            nonlocal faults
            server, faults = build_server(args, config, inbox, chaos)
            return server

        try:
            notes = []
            if args.tls_self_signed:
                # After the "listening" line, so clients can be told to trust it.
                cert = config.tls.cert
                notes.append(
                    f"{PROG}: self-signed certificate in {cert} (kept while serving); "
                    f"`{PROG} send --cafile {cert}` trusts it"
                )
            if args.workers > 1:
                return _serve_workers(args, config, build, notes)
            server = build()
            _run_serve(
                server,
                config,
                args.smtps_listen or (),
                inbox,
                args.web,
                notes,
                unix_socket(args),
                tcp=serves_tcp(args),
                faults=faults,
            )
        except _CannotListen as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    print(f"{PROG}: stopped", flush=True)
    return EXIT_OK


def _run_serve(
    server: Server,
    config: Config,
    smtps_listen: Sequence[tuple[str, int]],
    inbox: Inbox | None,
    web: tuple[str, int] | None,
    notes: Sequence[str] = (),
    unix: UnixSocket | None = None,
    *,
    tcp: bool = True,
    faults: Faults | None = None,
) -> None:
    """``trio.run(_serve, ...)``; a listener that failed inside the nursery is one line too."""
    try:
        trio.run(
            functools.partial(_serve, tcp=tcp, faults=faults),
            server,
            config,
            smtps_listen,
            inbox,
            web,
            notes,
            unix,
        )
    except BaseExceptionGroup as group:
        # The web inbox binds in the server's nursery, which wraps its error.
        matched, rest = group.split(_CannotListen)
        if matched is None or rest is not None:
            raise
        error: BaseException = matched
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        raise error from None


def _check_workers(args: argparse.Namespace, config: Config) -> None:
    """What one process owns cannot be split over ``--workers`` processes."""
    if config.relay.enabled:
        raise ConfigError(
            f"--workers {args.workers}: relay.enabled needs one process (the relay spool "
            "has one owner); use --workers 1"
        )
    if args.smtps_listen:
        raise ConfigError(f"--workers {args.workers}: --smtps-listen needs --workers 1")
    if unix_socket(args) is not None:
        raise ConfigError(f"--workers {args.workers}: --lmtp-socket needs --workers 1")


def _serve_workers(
    args: argparse.Namespace,
    config: Config,
    build: Callable[[], Server],
    notes: Sequence[str] = (),
) -> int:
    listen = [parse_listen(item) for item in config.listen]

    def announce(line: str) -> None:
        print(f"{PROG}: {line} ({args.workers} workers); {_where_mail_goes(config)}", flush=True)
        for note in notes:
            print(note, flush=True)

    try:
        code = workers.serve(
            config,
            listen,
            workers=args.workers,
            make_server=build,
            announce=announce,
        )
    except OSError as exc:
        raise _CannotListen(f"cannot listen: {exc.strerror or exc}") from None
    print(f"{PROG}: stopped", flush=True)
    return code
